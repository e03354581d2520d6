"""Run-config keys, defined once, parsed and validated once into a frozen dataclass.

(The wire keys live in ``strategies.wire``; the node-config keys in ``colearn_fl.task_adapter``.)

Every key is kebab-case on the wire and in ``pyproject.toml``; the dataclass fields are the same
names in snake_case. ``RunConfig.from_dict`` is the only place that reads raw run-config values:
below it, code receives plain, validated arguments.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from colearn_fl.errors import ConfigError
from colearn_fl.trainer import LOGGERS, tensorboard_available
from strategies.errors import ScheduleError
from strategies.schedules import local_epochs, validate_epochs, validate_lr_cycle
from strategies.server_optimizers import check_server_optimizer
from strategies.transport import check_transport_dtype
from tasks.partition import check_partitioning

T = TypeVar("T")

DEFAULT, AUTO = "default", "auto"  # the words lr-max (both) and lr-min (the first) accept
LR_KEYS = {"lr-max": (DEFAULT, AUTO), "lr-min": (DEFAULT,)}
LR_FIND_RANGE = (1e-6, 1.0)  # the LRs each site's range test sweeps (lr-max="auto")

# Lightning Trainer precisions a site may train in (``precision`` key).
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")


@dataclass(frozen=True)
class RunConfig:
    """Validated run configuration (``[tool.flwr.app.config]`` + ``--run-config``)."""

    task: str = "image"  # task registry name (tasks.list_tasks())
    model: str = ""  # model name within the task; "" = the task's default
    data_dir: str = ""  # "" = the task's default location
    num_server_rounds: int = 3
    lr_schedule: str = "cosine"  # LR cycle shape inside each round (CLR)
    lr_max: float | str = DEFAULT  # top of each round's cycle; "default" (the task's and
    # model's), "auto" (the federated LR range test) or a number
    lr_min: float | str = DEFAULT  # bottom of each round's cycle; "default": lr-max x ratio
    lr_min_ratio: float = 0.01  # lr-min = lr-max x this when lr-min is "default"
    lr_find_steps: int = 100  # lr-max="auto": steps of each site's LR range test
    lr_gamma: float = 0.5  # exp-range: the cycle's amplitude shrinks by this factor per round
    epochs_schedule: str = "decaying"  # local epochs over rounds (geometric: the paper's ILE)
    epochs_initial: int = 4  # T0: local epochs in round 1 (decaying: 4, 2, 1 over 3 rounds)
    epochs_mult: float = 2.0  # geometric: T0 * mult^(round-1)
    epochs_step: int = 1  # linear: T0 + step * (round-1)
    epochs_budget: int = 0  # budget: pooled epochs spread over num-server-rounds
    budget_shape: str = "geometric"  # budget: geometric, decaying or flat
    batch_size: int = 64
    fraction_train: float = 1.0  # fraction of connected sites that train each round
    fraction_evaluate: float = 1.0  # fraction of connected sites that evaluate each round
    min_available_nodes: int = 2  # the server waits for this many sites before a round
    round_timeout: float = 3600.0  # seconds the server waits for each phase's replies
    join_timeout: float = 300.0  # seconds the server waits for min-available-nodes to join
    partitioning: Literal["iid", "dirichlet"] = "iid"  # simulation only
    dirichlet_alpha: float = 0.5
    seed: int = 0
    max_samples: int = 0  # 0 = all; else cap on each split's size, for quick runs
    num_workers: int = 0  # DataLoader workers per site
    site_threads: int = 0  # torch threads per site; 0 = 1 in simulation, torch's default else
    deterministic: bool = True  # average replies in a canonical order (same seed, same run)
    precision: str = "32-true"  # Lightning Trainer precision at the sites, e.g. bf16-mixed
    logger: str = "csv"  # Lightning logger of the sites' rounds and the server's history
    output_dir: str = "outputs"
    run_name: str = ""  # "" = run-<flower run id>
    resume: bool = False  # continue the run in output-dir/run-name from its checkpoint
    overwrite: bool = False  # replace a run already in output-dir/run-name
    central_eval: bool = True  # evaluate the global model on the test split every round
    transport_dtype: str = "float32"  # precision of floating arrays on the wire
    dp_noise_multiplier: float = 0.0  # central DP (client-side clipping); 0 = DP off
    dp_clipping_norm: float = 1.0  # L2 bound of each site's clipped update under DP
    server_optimizer: str = "fedavg"  # the strategy under the schedule (SERVER_OPTIMIZERS)
    server_lr: float = 0.0  # FedAvgM's server LR / FedAdam's eta; 0 = the optimizer's default
    server_momentum: float = 0.0  # FedAvgM's server momentum
    proximal_mu: float = 0.0  # FedProx's proximal weight (sent to the sites)
    server_tau: float = 0.001  # FedAdam / FedYogi / FedAdagrad: degree of adaptivity
    swa_start: int = 0  # server-side SWA over cycle ends from this round on; 0 = off
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a task or user app adds

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Parse a run-config mapping (kebab-case keys), validating every known key.

        Unknown keys are kept in ``extra`` so a user's own app can define its own keys.
        """
        known = {f.name.replace("_", "-"): f for f in dataclasses.fields(cls) if f.name != "extra"}
        defaults = cls()  # each field's type is its default's (validated only below)
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key in LR_KEYS:
                values[known[key].name] = _coerce_lr(key, value)
            elif key in known:
                name = known[key].name
                values[name] = _coerce(key, value, type(getattr(defaults, name)))
            else:
                extra[key] = value
        config = cls(**values, extra=extra)
        config.validate()
        return config

    def cycle(self, default_top: float | str) -> tuple[float | str, float | None]:
        """The LR cycle's (top, bottom): ``default_top`` (the task's and model's number, or
        ``"auto"``) where lr-max is ``"default"``; lr-max x lr-min-ratio where lr-min is.
        With ``"auto"`` the top is found at run time and the bottom is ``None`` unless lr-min
        is a number."""
        top = default_top if self.lr_max == DEFAULT else self.lr_max
        if top == AUTO:
            return AUTO, None if self.lr_min == DEFAULT else float(self.lr_min)
        top = float(top)
        return top, top * self.lr_min_ratio if self.lr_min == DEFAULT else float(self.lr_min)

    def with_cycle(self, top: float, bottom: float) -> RunConfig:
        """This config with the LR cycle fixed to numbers."""
        return dataclasses.replace(self, lr_max=top, lr_min=bottom)

    def round_epochs(self) -> list[int]:
        """Local epochs of every round of the run, as the schedule sends them."""
        return [local_epochs(self.epochs_schedule, r, self.epochs_initial, self.epochs_mult,
                             self.epochs_step, self.epochs_budget, self.num_server_rounds,
                             self.budget_shape) for r in range(1, self.num_server_rounds + 1)]

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        if not 0.0 < self.lr_min_ratio < 1.0:
            raise ConfigError(f"lr-min-ratio={self.lr_min_ratio}: must be in (0, 1) (lr-min = "
                              "lr-max x lr-min-ratio when lr-min is 'default').")
        _positive("lr-find-steps", self.lr_find_steps)
        try:  # the strategy layer's checks raise its own ScheduleError
            top, bottom = self.cycle(1.0)
            if top != AUTO:
                validate_lr_cycle(self.lr_schedule, top, bottom)
            elif bottom is not None:
                validate_lr_cycle(self.lr_schedule, max(bottom, 1e-12), bottom)
            validate_epochs(self.epochs_schedule, self.epochs_initial, self.epochs_mult,
                            self.epochs_step, self.epochs_budget, self.num_server_rounds,
                            self.budget_shape)
            check_transport_dtype(self.transport_dtype)
            check_server_optimizer(self.server_optimizer, self.server_lr, self.server_momentum,
                                   self.proximal_mu, self.server_tau)
        except ScheduleError as error:
            raise ConfigError(str(error)) from None
        check_partitioning(self.partitioning)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("logger", self.logger, LOGGERS)
        if self.logger == "tensorboard" and not tensorboard_available():
            raise ConfigError("logger='tensorboard' needs the tensorboard package at the server "
                              "and every site: pip install tensorboard (or logger='csv').")
        _positive("num-server-rounds", self.num_server_rounds)
        _positive("batch-size", self.batch_size)
        _positive("dirichlet-alpha", self.dirichlet_alpha)
        _positive("min-available-nodes", self.min_available_nodes)
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError(f"lr-gamma={self.lr_gamma}: must be in (0, 1].")
        for key, value in (("fraction-train", self.fraction_train),
                           ("fraction-evaluate", self.fraction_evaluate)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key}={value}: must be in [0, 1].")
        if not (math.isfinite(self.join_timeout) and self.join_timeout > 0):
            raise ConfigError(f"join-timeout={self.join_timeout}: must be a finite number of "
                              "seconds > 0 (how long the server waits for "
                              "min-available-nodes sites to connect).")
        if not (math.isfinite(self.round_timeout) and self.round_timeout > 0):
            raise ConfigError(f"round-timeout={self.round_timeout}: must be a finite number of "
                              "seconds > 0 (how long a round waits for the sites' replies).")
        self._validate_privacy()
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true: choose one (continue the run in "
                              "run-name's folder, or replace it).")
        if self.swa_start > self.num_server_rounds:
            raise ConfigError(f"swa-start={self.swa_start} > num-server-rounds="
                              f"{self.num_server_rounds}: SWA would never start. Use a round "
                              "<= num-server-rounds, or 0 to turn SWA off.")
        for key, value, zero in (
                ("max-samples", self.max_samples, "0 = every sample"),
                ("num-workers", self.num_workers, "0 = load in the site's own process"),
                ("seed", self.seed, "any integer >= 0"), ("swa-start", self.swa_start, "0 = off"),
                ("site-threads", self.site_threads, "0 = automatic")):
            if value < 0:
                raise ConfigError(f"{key}={value}: must be >= 0 ({zero}).")

    def _validate_privacy(self) -> None:
        if not (math.isfinite(self.dp_noise_multiplier) and self.dp_noise_multiplier >= 0):
            raise ConfigError(f"dp-noise-multiplier={self.dp_noise_multiplier}: must be a "
                              "finite number >= 0 (0 turns differential privacy off).")
        if not (math.isfinite(self.dp_clipping_norm) and self.dp_clipping_norm > 0):
            raise ConfigError(f"dp-clipping-norm={self.dp_clipping_norm}: must be a finite "
                              "number > 0 (the L2 bound of each site's update).")
        if self.dp_noise_multiplier > 0 and self.transport_dtype != "float32":
            raise ConfigError(f"dp-noise-multiplier > 0 with transport-dtype="
                              f"'{self.transport_dtype}': the clipping is checked at float32 "
                              "only (bfloat16 has no NumPy dtype for Flower's clipping mod); "
                              "use transport-dtype='float32' with DP.")


def parse_section(cls: type[T], raw: Mapping[str, Any]) -> T:
    """Parse a task's own keys (a frozen dataclass, kebab-case on the wire) out of a run config.

    Keys of ``raw`` that are not fields of ``cls`` are ignored; each field's type is its
    default's; ``cls.validate()`` runs when the class has one.
    """
    defaults = cls()
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.name.replace("_", "-")
        if key in raw:
            values[f.name] = _coerce(key, raw[key], type(getattr(defaults, f.name)))
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if callable(validate):
        validate()
    return section


def section_defaults(cls: type) -> dict[str, Any]:
    """The kebab-case keys of a config dataclass and their defaults (for pyproject checks)."""
    return {f.name.replace("_", "-"): getattr(cls(), f.name) for f in dataclasses.fields(cls)
            if f.name != "extra"}


def _coerce(key: str, value: Any, expected: type) -> Any:
    """Cast a TOML/CLI value to the field's type, or raise naming the key."""
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is str and isinstance(value, str):
        return value
    raise ConfigError(
        f"{key}={value!r}: expected {_TYPE_NAMES[expected]}. "
        f"Fix it in [tool.flwr.app.config] or with --run-config '{key}=...'."
    )


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce_lr(key: str, value: Any) -> float | str:
    """An LR key's value: a number, or one of the words it accepts (``LR_KEYS``)."""
    if isinstance(value, str) and value in LR_KEYS[key]:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    words = " or ".join(f"'{w}'" for w in LR_KEYS[key])
    raise ConfigError(f"{key}={value!r}: expected a number or {words}. Fix it in "
                      f"[tool.flwr.app.config] or with --run-config '{key}=0.01'.")


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not known; use one of: {', '.join(allowed)}.")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}={value}: must be > 0.")
