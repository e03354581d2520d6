"""The run config's sections: each kebab-case key users type is a field of exactly one.

Each section is a frozen dataclass that checks its own keys (``validate``) when
``colearn_fl.config.parse_section`` builds it; ``RunConfig`` holds one of each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colearn_fl.errors import ConfigError
from strategies.cycles import validate_lr_cycle
from strategies.epochs import validate_epochs
from strategies.errors import ScheduleError
from strategies.server_optimizers import check_server_optimizer
from strategies.transport import check_transport_dtype
from tasks.partition import check_partitioning

DEFAULT, AUTO = "default", "auto"  # the words lr-max (both) and lr-min (the first) accept
LR_KEYS = {"lr-max": (DEFAULT, AUTO), "lr-min": (DEFAULT,)}
LOGGERS = ("csv", "tensorboard", "mlflow", "none")  # the logger key: where metrics go
OPTIMIZER_STATES = ("reset", "keep")  # the optimizer-state key
MONITOR_MODES = ("auto", "min", "max")  # monitor-mode: auto = min for a loss, else max
DP_CLIPPINGS = ("fixed", "adaptive")  # dp-clipping: the clip is set, or follows a quantile
# Lightning Trainer precisions a site may train in (``precision`` key).
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")


@dataclass(frozen=True)
class Schedule:
    """What the server sends each round: the LR cycle (CLR), the local epochs (ILE), and
    server-side SWA over the cycles' ends; ``CoLearnSchedule``'s arguments."""

    lr_schedule: str = "cosine"  # LR cycle shape inside each round (CLR)
    lr_max: float | str = DEFAULT  # top of each round's cycle; "default" (the task's and
    # model's, or the module's own optimizer's), "auto" (the federated LR range test) or a number
    lr_min: float | str = DEFAULT  # bottom of each round's cycle; "default": lr-max x ratio
    lr_min_ratio: float = 0.01  # lr-min = lr-max x this when lr-min is "default"
    lr_gamma: float = 0.5  # exp-range: the cycle's amplitude shrinks by this factor per round
    epochs_schedule: str = "decaying"  # local epochs over rounds (geometric: the paper's ILE)
    epochs_initial: int = 4  # T0: local epochs in round 1 (decaying: 4, 2, 1 over 3 rounds)
    epochs_mult: float = 2.0  # geometric: T0 * mult^(round-1)
    epochs_step: int = 1  # linear: T0 + step * (round-1)
    epochs_budget: int = 0  # budget: pooled epochs spread over num-server-rounds
    budget_shape: str = "geometric"  # budget: geometric, decaying or flat
    swa_start: int = 0  # server-side SWA over cycle ends from this round on; 0 = off

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

    def strategy_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``CoLearnSchedule`` this section sets (numbers only: an
        ``'auto'`` or ``'default'`` bound must be resolved first, ``RunConfig.with_cycle``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "lr_min_ratio"}

    def validate(self) -> None:
        if not 0.0 < self.lr_min_ratio < 1.0:
            raise ConfigError(f"lr-min-ratio={self.lr_min_ratio}: must be in (0, 1) (lr-min = "
                              "lr-max x lr-min-ratio when lr-min is 'default').")
        top, bottom = self.cycle(1.0)
        with _as_config_error():  # the strategy layer's checks raise its own ScheduleError
            if top != AUTO:
                validate_lr_cycle(self.lr_schedule, float(top), float(bottom or 0.0))
            elif bottom is not None:
                validate_lr_cycle(self.lr_schedule, max(bottom, 1e-12), bottom)
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError(f"lr-gamma={self.lr_gamma}: must be in (0, 1].")
        _at_least_zero("swa-start", self.swa_start, "0 = off")

    def validate_rounds(self, num_server_rounds: int) -> None:
        """The checks that need the run's length: the epoch schedule and SWA's start."""
        with _as_config_error():
            validate_epochs(self.epochs_schedule, self.epochs_initial, self.epochs_mult,
                            self.epochs_step, self.epochs_budget, num_server_rounds,
                            self.budget_shape)
        if self.swa_start > num_server_rounds:
            raise ConfigError(f"swa-start={self.swa_start} > num-server-rounds="
                              f"{num_server_rounds}: SWA would never start. Use a round "
                              "<= num-server-rounds, or 0 to turn SWA off.")


@dataclass(frozen=True)
class Rounds:
    """How the server runs the rounds: how many, with which sites, how long it waits."""

    num_server_rounds: int = 3
    fraction_train: float = 1.0  # fraction of connected sites that train each round
    fraction_evaluate: float = 1.0  # fraction of connected sites that evaluate each round
    min_available_nodes: int = 2  # the server waits for this many sites before a round
    round_timeout: float = 3600.0  # seconds the server waits for each phase's replies
    join_timeout: float = 300.0  # seconds the server waits for min-available-nodes to join
    deterministic: bool = True  # average replies in a canonical order (same seed, same run)
    max_failed_rounds: int = 1  # rounds in a row with no site averaged before the run stops

    def validate(self) -> None:
        _positive("num-server-rounds", self.num_server_rounds)
        _positive("max-failed-rounds", self.max_failed_rounds)
        if self.fraction_train <= 0:
            raise ConfigError(f"fraction-train={self.fraction_train}: no site would ever train, "
                              "and the run would end with the untrained model. Use a fraction "
                              "in (0, 1] (1 = every connected site).")
        _positive("min-available-nodes", self.min_available_nodes)
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


@dataclass(frozen=True)
class ServerOptimizer:
    """The Flower strategy under the schedule and its settings (``server_optimizer``'s)."""

    server_optimizer: str = "fedavg"  # the strategy under the schedule (SERVER_OPTIMIZERS)
    server_lr: float = 0.0  # FedAvgM's server LR / FedAdam's eta; 0 = the optimizer's default
    server_momentum: float = 0.0  # FedAvgM's server momentum
    proximal_mu: float = 0.0  # FedProx's proximal weight (sent to the sites)
    server_tau: float = 0.001  # FedAdam / FedYogi / FedAdagrad: degree of adaptivity

    def arguments(self) -> dict[str, Any]:
        """``strategies.server_optimizer``'s arguments: the name, then its settings."""
        return {"name": self.server_optimizer, **{f.name: getattr(self, f.name) for f in
                                                  dataclasses.fields(self)[1:]}}

    def validate(self) -> None:
        with _as_config_error():
            check_server_optimizer(self.server_optimizer, self.server_lr, self.server_momentum,
                                   self.proximal_mu, self.server_tau)


@dataclass(frozen=True)
class Privacy:
    """Central differential privacy: sites clip their updates, the server adds noise."""

    dp_noise_multiplier: float = 0.0  # central DP (client-side clipping); 0 = DP off
    dp_clipping_norm: float = 1.0  # L2 bound of each site's clipped update (adaptive: the first)
    dp_delta: float = 1e-5  # the delta dp-epsilon is reported at
    dp_target_epsilon: float = 0.0  # stop before a round would spend more; 0 = no budget
    dp_clipping: str = "fixed"  # fixed, or adaptive (the clip follows a quantile of the norms)
    dp_clip_quantile: float = 0.5  # adaptive: target fraction of updates within the clip
    dp_clip_lr: float = 0.2  # adaptive: step of the clip's geometric update
    dp_clipped_count_stddev: float = 0.0  # adaptive: noise on the count; 0 = sampled sites / 20

    def validate(self) -> None:
        if not (math.isfinite(self.dp_noise_multiplier) and self.dp_noise_multiplier >= 0):
            raise ConfigError(f"dp-noise-multiplier={self.dp_noise_multiplier}: must be a "
                              "finite number >= 0 (0 turns differential privacy off).")
        if not (math.isfinite(self.dp_clipping_norm) and self.dp_clipping_norm > 0):
            raise ConfigError(f"dp-clipping-norm={self.dp_clipping_norm}: must be a finite "
                              "number > 0 (the L2 bound of each site's update).")
        if not 0.0 < self.dp_delta < 1.0:
            raise ConfigError(f"dp-delta={self.dp_delta}: must be in (0, 1); use less than "
                              "1 / (number of sites), e.g. 1e-5.")
        if not (math.isfinite(self.dp_target_epsilon) and self.dp_target_epsilon >= 0):
            raise ConfigError(f"dp-target-epsilon={self.dp_target_epsilon}: must be a finite "
                              "number >= 0 (0 = no budget).")
        if self.dp_target_epsilon > 0 and self.dp_noise_multiplier <= 0:
            raise ConfigError(f"dp-target-epsilon={self.dp_target_epsilon} with "
                              f"dp-noise-multiplier={self.dp_noise_multiplier}: a budget needs "
                              "DP on; set dp-noise-multiplier > 0, or dp-target-epsilon=0.")
        _one_of("dp-clipping", self.dp_clipping, DP_CLIPPINGS)
        if not 0.0 <= self.dp_clip_quantile <= 1.0:
            raise ConfigError(f"dp-clip-quantile={self.dp_clip_quantile}: must be in [0, 1] "
                              "(the fraction of updates the adaptive clip leaves unclipped).")
        if not (math.isfinite(self.dp_clip_lr) and self.dp_clip_lr > 0):
            raise ConfigError(f"dp-clip-lr={self.dp_clip_lr}: must be a finite number > 0 "
                              "(Andrew et al. use 0.2).")
        if not (math.isfinite(self.dp_clipped_count_stddev)
                and self.dp_clipped_count_stddev >= 0):
            raise ConfigError(f"dp-clipped-count-stddev={self.dp_clipped_count_stddev}: must "
                              "be a finite number >= 0 (0 = sampled sites / 20).")

    def validate_with(self, sampled_sites: int, server_optimizer: str) -> None:
        """The checks that need the sites sampled per round and the server optimizer."""
        if self.dp_target_epsilon > 0 and server_optimizer not in ("fedavg", "fedprox"):
            raise ConfigError(f"dp-target-epsilon={self.dp_target_epsilon} with "
                              f"server-optimizer={server_optimizer!r}: epsilon is accounted "
                              "for fedavg and fedprox only (the noise is added after the "
                              "others' step); use one of them, or dp-target-epsilon=0.")
        stddev = self.dp_clipped_count_stddev or sampled_sites / 20
        if self.dp_clipping == "adaptive" and self.dp_noise_multiplier >= 2 * stddev:
            raise ConfigError(
                f"dp-noise-multiplier={self.dp_noise_multiplier} with dp-clipping='adaptive' "
                f"and dp-clipped-count-stddev={self.dp_clipped_count_stddev} (so {stddev:g}): "
                "the count's noise alone already spends more than the multiplier allows "
                "(it must be < 2 x the count's stddev). Raise dp-clipped-count-stddev above "
                f"{self.dp_noise_multiplier / 2:g}, or lower dp-noise-multiplier.")


@dataclass(frozen=True)
class SecureAggregation:
    """Secure aggregation (SecAgg+): the server learns only the weighted sum of the models."""

    secure_aggregation: bool = False  # training rounds run SecAgg+ (strategies.secagg)
    secagg_threshold: int = 0  # sites whose shares unmask the sum; 0 = a majority, at least 2
    secagg_clipping_range: float = 16.0  # each update value (trained - received) within +-this
    secagg_quantization_range: int = 2**30  # quantisation levels over the clipping range

    def validate(self) -> None:
        if self.secagg_threshold < 0 or self.secagg_threshold == 1:
            raise ConfigError(f"secagg-threshold={self.secagg_threshold}: must be 0 (a "
                              "majority of each round's sites) or >= 2 (the shares that "
                              "unmask the sum).")
        if not (math.isfinite(self.secagg_clipping_range) and self.secagg_clipping_range > 0):
            raise ConfigError(f"secagg-clipping-range={self.secagg_clipping_range}: must be a "
                              "finite number > 0 (the bound of each update value).")
        # strategies.secagg.vectors.MAX_QUANTIZATION_RANGE (not imported: it loads the crypto)
        if not 2 <= self.secagg_quantization_range <= 2**31 - 1:
            raise ConfigError(f"secagg-quantization-range={self.secagg_quantization_range}: "
                              f"must be in [2, {2**31 - 1}] (Flower quantises in int32).")

    def validate_run(self, sampled: int, swa_start: int) -> None:
        """The checks that span sections: ``sampled`` sites a round when
        ``min-available-nodes`` are connected, and SWA (whose statistics round would send
        each site's BatchNorm statistics in the clear)."""
        if not self.secure_aggregation:
            return
        if sampled < 2:
            raise ConfigError(f"secure-aggregation=true needs at least 2 sites a round, and "
                              f"min-available-nodes x fraction-train gives {sampled}: raise "
                              "min-available-nodes.")
        if self.secagg_threshold > sampled:
            raise ConfigError(f"secagg-threshold={self.secagg_threshold} > {sampled} sites a "
                              "round (min-available-nodes x fraction-train): the sum could "
                              "never be unmasked. Use at most that, or 0 (a majority).")
        if swa_start > 0:
            raise ConfigError(f"secure-aggregation=true with swa-start={swa_start}: SWA's "
                              "statistics round sends each site's BatchNorm statistics in the "
                              "clear. Use swa-start=0 with secure aggregation.")


@dataclass(frozen=True)
class Transport:
    """How the model crosses the wire."""

    transport_dtype: str = "float32"  # precision of floating arrays on the wire

    def validate(self) -> None:
        with _as_config_error():
            check_transport_dtype(self.transport_dtype)


@dataclass(frozen=True)
class SiteData:
    """Where and how each site reads its data (``tasks.shared.Site``'s settings)."""

    data_dir: str = ""  # "" = the task's default location
    batch_size: int = 64
    partitioning: str = "iid"  # simulation only: iid or dirichlet
    dirichlet_alpha: float = 0.5
    max_samples: int = 0  # 0 = all; else cap on each split's size, for quick runs
    num_workers: int = 0  # DataLoader workers per site

    def validate(self) -> None:
        check_partitioning(self.partitioning)
        _positive("batch-size", self.batch_size)
        _positive("dirichlet-alpha", self.dirichlet_alpha)
        _at_least_zero("max-samples", self.max_samples, "0 = every sample")
        _at_least_zero("num-workers", self.num_workers, "0 = load in the site's own process")


@dataclass(frozen=True)
class SiteTraining:
    """How each site runs Lightning."""

    precision: str = "32-true"  # Lightning Trainer precision at the sites, e.g. bf16-mixed
    site_threads: int = 0  # torch threads per site; 0 = 1 in simulation, torch's default else
    lr_find_steps: int = 100  # lr-max="auto": steps of each site's LR range test
    optimizer_state: str = "reset"  # reset: a new optimizer each round; keep: its state lives on
    epoch_validation: bool = True  # validate at each local epoch's end (per-epoch site curves)

    def validate(self) -> None:
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("optimizer-state", self.optimizer_state, OPTIMIZER_STATES)
        _positive("lr-find-steps", self.lr_find_steps)
        _at_least_zero("site-threads", self.site_threads, "0 = automatic")


@dataclass(frozen=True)
class Outputs:
    """Where and what the server records."""

    output_dir: str = "outputs"
    run_name: str = ""  # "" = run-<flower run id>
    resume: bool = False  # continue the run in output-dir/run-name from its checkpoint
    overwrite: bool = False  # replace a run already in output-dir/run-name
    central_eval: bool = True  # evaluate the global model on the test split every round
    logger: str = "csv"  # Lightning logger of the sites' rounds and the server's history
    monitor: str = ""  # the history metric model-best follows; "" = the run's main metric
    monitor_mode: str = "auto"  # min, max, or auto (min for a loss or an error, else max)
    mlflow_tracking_uri: str = ""  # logger="mlflow": "" = a SQLite store in the run folder
    mlflow_experiment: str = "colearn-fl"  # logger="mlflow": the MLflow experiment's name

    def folder(self, run_id: int) -> Path:
        """``<output-dir>/<run-name>``; an empty run-name means ``run-<flower run id>``."""
        return Path(self.output_dir).expanduser().resolve() / (self.run_name or f"run-{run_id}")

    def validate(self) -> None:
        _one_of("logger", self.logger, LOGGERS)
        _one_of("monitor-mode", self.monitor_mode, MONITOR_MODES)
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true: choose one (continue the run in "
                              "run-name's folder, or replace it).")


@contextmanager
def _as_config_error() -> Iterator[None]:
    """The strategy layer's ``ScheduleError`` as the project's ``ConfigError``."""
    try:
        yield
    except ScheduleError as error:
        raise ConfigError(str(error)) from None


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not known; use one of: {', '.join(allowed)}.")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}={value}: must be > 0.")


def _at_least_zero(key: str, value: int, zero: str) -> None:
    if value < 0:
        raise ConfigError(f"{key}={value}: must be >= 0 ({zero}).")
