"""Run-config keys, defined once, parsed and validated once into a frozen dataclass of sections.

(The wire keys live in ``strategies.wire``; the node-config keys in ``colearn_fl.node_config``.)

Users type flat kebab-case keys (``pyproject.toml``, ``--run-config``); each key is a field, in
snake_case, of exactly one section (``Schedule``, ``Rounds``, ``ServerOptimizer``, ``Privacy``,
``SecureAggregation``, ``Transport``, ``SiteData``, ``SiteTraining``, ``Outputs``) or of
``RunConfig`` itself (``task``, ``model``, ``seed``). ``RunConfig.from_dict`` is the only place
that reads raw run-config values: each app handler parses the message's run config once and
passes the sections down.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from colearn_fl.errors import ConfigError
from colearn_fl.sections import (
    AUTO,
    DEFAULT,
    LOGGERS,
    LR_KEYS,
    Outputs,
    Privacy,
    Rounds,
    Schedule,
    SecureAggregation,
    ServerOptimizer,
    SiteData,
    SiteTraining,
    Transport,
)
from strategies.epochs import local_epochs

T = TypeVar("T")

__all__ = ["AUTO", "DEFAULT", "LOGGERS", "LR_FIND_RANGE", "RunConfig", "changed_keys",
           "parse_section", "require_logger_package", "section_defaults"]

# The packages a ``logger`` kind writes with (any one of them serves), each an extra of
# colearn-fl's (pip install "colearn-fl[<kind>]").
LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}
LR_FIND_RANGE = (1e-6, 1.0)  # the LRs each site's range test sweeps (lr-max="auto")
SECTIONS = {"schedule": Schedule, "rounds": Rounds, "server": ServerOptimizer,
            "privacy": Privacy, "transport": Transport, "data": SiteData,
            "training": SiteTraining, "outputs": Outputs, "secagg": SecureAggregation}


@dataclass(frozen=True)
class RunConfig:
    """Validated run configuration (``[tool.flwr.app.config]`` + ``--run-config``)."""

    task: str = "image"  # task registry name (tasks.list_tasks())
    model: str = ""  # model name within the task; "" = the task's default
    seed: int = 0  # the initial model, the partition and every site's shuffle
    schedule: Schedule = field(default_factory=Schedule)  # what each round sends (CLR + ILE)
    rounds: Rounds = field(default_factory=Rounds)  # how many rounds, which sites, how long
    server: ServerOptimizer = field(default_factory=ServerOptimizer)  # the averaging strategy
    privacy: Privacy = field(default_factory=Privacy)  # central DP
    secagg: SecureAggregation = field(default_factory=SecureAggregation)  # SecAgg+
    transport: Transport = field(default_factory=Transport)  # precision on the wire
    data: SiteData = field(default_factory=SiteData)  # where and how sites read data
    training: SiteTraining = field(default_factory=SiteTraining)  # how sites run Lightning
    outputs: Outputs = field(default_factory=Outputs)  # where and what the server records
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a task or user app adds

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Parse a run-config mapping (kebab-case keys), validating every known key.

        Unknown keys are kept in ``extra`` so a task or a user's own app can define its own.
        """
        own = {key: coerce(key, raw[key], expected)
               for key, expected in (("task", str), ("model", str), ("seed", int)) if key in raw}
        sections = {name: parse_section(section, raw) for name, section in SECTIONS.items()}
        known = cls.keys()
        config = cls(**own, **sections, extra={k: v for k, v in raw.items() if k not in known})
        config.validate()
        return config

    @classmethod
    def keys(cls) -> set[str]:
        """Every kebab-case key the run config defines."""
        return {"task", "model", "seed"}.union(*(keys_of(s) for s in SECTIONS.values()))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every key with its default (pyproject's ``[tool.flwr.app.config]`` must match)."""
        flat: dict[str, Any] = {"task": "image", "model": "", "seed": 0}
        for section in SECTIONS.values():
            flat.update(section_defaults(section))
        return flat

    def with_cycle(self, top: float, bottom: float) -> RunConfig:
        """This config with the LR cycle fixed to numbers."""
        return dataclasses.replace(
            self, schedule=dataclasses.replace(self.schedule, lr_max=top, lr_min=bottom))

    def round_epochs(self) -> list[int]:
        """Local epochs of every round of the run, as the schedule sends them."""
        s, rounds = self.schedule, self.rounds.num_server_rounds
        return [local_epochs(s.epochs_schedule, r, s.epochs_initial, s.epochs_mult,
                             s.epochs_step, s.epochs_budget, rounds, s.budget_shape)
                for r in range(1, rounds + 1)]

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range (each
        section checks its own keys when parsed; these checks span sections)."""
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed}: must be >= 0 (any integer >= 0).")
        self.schedule.validate_rounds(self.rounds.num_server_rounds)
        self.secagg.validate_run(max(int(self.rounds.min_available_nodes
                                         * self.rounds.fraction_train), 1),
                                 self.schedule.swa_start)
        if self.outputs.logger == "tensorboard":  # mlflow: the server checks (sites log CSV)
            require_logger_package("tensorboard", "at the server and every site")
        if self.privacy.dp_noise_multiplier > 0 and self.transport.transport_dtype != "float32":
            raise ConfigError(f"dp-noise-multiplier > 0 with transport-dtype="
                              f"'{self.transport.transport_dtype}': the clipping is checked at "
                              "float32 only (bfloat16 has no NumPy dtype for Flower's clipping "
                              "mod); use transport-dtype='float32' with DP.")
        if self.privacy.dp_noise_multiplier > 0:
            sampled = max(int(self.rounds.min_available_nodes * self.rounds.fraction_train), 1)
            self.privacy.validate_with(sampled, self.server.server_optimizer)


def changed_keys(before: Any, after: Any) -> list[str]:
    """The kebab-case keys whose values differ between two sections of one kind."""
    return [f.name.replace("_", "-") for f in dataclasses.fields(before)
            if getattr(before, f.name) != getattr(after, f.name)]


def parse_section(cls: type[T], raw: Mapping[str, Any]) -> T:
    """Parse one section (a frozen dataclass, kebab-case on the wire) out of a run config.

    Keys of ``raw`` that are not fields of ``cls`` are ignored; each field's type is its
    default's (the LR keys also take their words, ``LR_KEYS``); ``cls.validate()`` runs when
    the class has one. Tasks parse their own keys with it too.
    """
    defaults = cls()
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.name.replace("_", "-")
        if key in raw:
            expected = float if key in LR_KEYS else type(getattr(defaults, f.name))
            values[f.name] = coerce(key, raw[key], expected)
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if callable(validate):
        validate()
    return section


def section_defaults(cls: type) -> dict[str, Any]:
    """The kebab-case keys of a config dataclass and their defaults (for pyproject checks)."""
    return {f.name.replace("_", "-"): getattr(cls(), f.name) for f in dataclasses.fields(cls)
            if f.name != "extra"}


def require_logger_package(kind: str, where: str) -> None:
    """Raise ``ConfigError`` naming the extra to install when the package the ``logger``
    kind writes with is missing in this process (``LOGGER_PACKAGES``)."""
    modules = LOGGER_PACKAGES.get(kind, ())
    if modules and not any(importlib.util.find_spec(m) is not None for m in modules):
        raise ConfigError(f"logger='{kind}' needs the {modules[0]} package {where}: "
                          f'pip install "colearn-fl[{kind}]" (or logger=\'csv\').')


def coerce(key: str, value: Any, expected: type) -> Any:
    """Cast a TOML/CLI value to the field's type, or raise naming the key (an LR key, whose
    ``expected`` is float, also takes its words: ``LR_KEYS``)."""
    if key in LR_KEYS and isinstance(value, str) and value in LR_KEYS[key]:
        return value
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
    if key in LR_KEYS:
        words = " or ".join(f"'{w}'" for w in LR_KEYS[key])
        raise ConfigError(f"{key}={value!r}: expected a number or {words}. Fix it in "
                          f"[tool.flwr.app.config] or with --run-config '{key}=0.01'.")
    raise ConfigError(
        f"{key}={value!r}: expected {_TYPE_NAMES[expected]}. "
        f"Fix it in [tool.flwr.app.config] or with --run-config '{key}=...'."
    )


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def keys_of(cls: type) -> set[str]:
    """The kebab-case keys of a config dataclass."""
    return {f.name.replace("_", "-") for f in dataclasses.fields(cls)}

