"""The strategy a run config describes: co-learning's schedule over its server optimizer."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.optim import Optimizer

from colearn_fl.config import AUTO, DEFAULT, RunConfig
from colearn_fl.errors import ConfigError
from strategies import CoLearnSchedule, server_optimizer
from tasks.registry import PROJECT_LR


def module_lr(module: pl.LightningModule) -> tuple[float, str]:
    """The cycle's top for ``lr-max='default'`` with a user's own module, and where it came
    from: ``hparams.lr`` (as ``save_hyperparameters`` stores it), else the LR of the first
    param group of the optimizer its ``configure_optimizers`` builds, else ``PROJECT_LR``."""
    name = type(module).__name__
    lr = getattr(module, "hparams", {}).get("lr")
    if _positive(lr):
        return float(lr), f"{name}'s hparams.lr"
    optimizer, why = built_optimizer(module)
    if optimizer is not None and _positive(lr := optimizer.param_groups[0].get("lr")):
        return float(lr), f"{name}'s {type(optimizer).__name__}"
    return PROJECT_LR, (f"the project's default: {name} has no hparams.lr and "
                        f"{why or 'its optimizer has no positive lr'}")


def built_optimizer(module: pl.LightningModule) -> tuple[Optimizer | None, str]:
    """The first optimizer ``module.configure_optimizers()`` returns (in any of the forms
    Lightning accepts), or ``None`` and why not."""
    try:
        built: Any = module.configure_optimizers()
    except Exception as error:  # noqa: BLE001 - e.g. it needs a Trainer: say so, go on
        return None, f"its configure_optimizers() failed outside a Trainer ({error})"
    for _ in range(3):  # ([opt], [sched]) -> [opt] -> opt; {"optimizer": opt}
        if isinstance(built, dict):
            built = built.get("optimizer")
        elif isinstance(built, (list, tuple)) and built:
            built = built[0]
        else:
            break
    if isinstance(built, Optimizer):
        return built, ""
    return None, f"its configure_optimizers() returned {type(built).__name__}, not an optimizer"


def cycle_source(config: RunConfig, default_lr_source: str) -> str:
    """Where the cycle's top comes from, for the log: the run config, or the default's."""
    return "the run config" if config.schedule.lr_max != DEFAULT else default_lr_source


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def build_strategy(config: RunConfig, round_offset: int = 0,
                   default_top: float = PROJECT_LR) -> CoLearnSchedule:
    """The co-learning schedule (the run config's ``Schedule`` section) over the server
    optimizer its ``ServerOptimizer`` section names (``fedavg``: the paper's ``CoLearn``);
    ``lr-max='default'`` is ``default_top``; ``'auto'`` must be resolved first
    (``run_colearning`` does)."""
    lr_max, lr_min = config.schedule.cycle(default_top)
    if lr_max == AUTO or lr_min is None:
        raise ConfigError("lr-max='auto' is found by the LR range test before round 1 "
                          "(run_colearning); build_strategy needs a number.")
    rounds = config.rounds
    optimizer = server_optimizer(
        **config.server.arguments(), fraction_train=rounds.fraction_train,
        fraction_evaluate=rounds.fraction_evaluate, min_train_nodes=1, min_evaluate_nodes=1,
        min_available_nodes=rounds.min_available_nodes)
    schedule = {**config.schedule.strategy_arguments(), "lr_max": float(lr_max),
                "lr_min": float(lr_min)}
    return CoLearnSchedule(
        optimizer, **schedule, num_rounds=rounds.num_server_rounds,
        transport_dtype=config.transport.transport_dtype, round_offset=round_offset,
        phase_timeout=rounds.round_timeout, deterministic=rounds.deterministic)
