"""The server side: a Flower ServerApp that runs co-learning for a user's LightningModule."""

from __future__ import annotations

from collections.abc import Callable
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result
from flwr.supercore import log

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.checkpoint import CHECKPOINT_NAME, load_checkpoint
from colearn_fl.config import AUTO, LR_FIND_RANGE, RunConfig
from colearn_fl.dp_strategy import with_privacy
from colearn_fl.errors import ConfigError, DataError
from colearn_fl.failure_line import LOGGED, one_line_failures
from colearn_fl.grid import ResponsiveGrid
from colearn_fl.recorder import RoundRecorder
from colearn_fl.results import COMPLETED, FAILED, HISTORY_JSON, run_folder
from colearn_fl.task_adapter import describe_unknown, unknown_keys
from colearn_fl.trainer import make_trainer
from strategies import CoLearnSchedule, ScheduleError, server_optimizer
from strategies.data_check import check_site_data
from strategies.lr_range import federated_range_test, wait_for_nodes
from tasks.registry import PROJECT_LR

ModuleFn = Callable[[dict[str, Any]], pl.LightningModule]
CentralDataFn = Callable[[dict[str, Any]], pl.LightningDataModule | None]
DefaultLrFn = Callable[[dict[str, Any]], float | str]
LR_RANGE_TEST = "lr-range-test"  # history row 0: what lr-max='auto' found, and each site
# Run-config keys whose change on resume is worth a warning (the schedule the run follows).
RESUME_CHECKED_KEYS = ("lr-schedule", "lr-max", "lr-min", "lr-gamma", "epochs-schedule",
                       "epochs-initial", "epochs-mult", "epochs-step", "epochs-budget",
                       "budget-shape", "server-optimizer", "swa-start")


def server_app(
    module_fn: ModuleFn, central_datamodule_fn: CentralDataFn | None = None,
    default_lr: DefaultLrFn | None = None,
) -> ServerApp:
    """A ServerApp that runs co-learning: the round schedule over the run config's
    ``server-optimizer`` (``fedavg`` by default: the ``CoLearn`` strategy).

    With ``dp-noise-multiplier > 0``, the strategy runs inside Flower's client-side
    fixed-clipping DP wrapper (``colearn_fl.dp_strategy``); the sites need colearn-fl's clipping
    mod, which ``client_app`` installs.

    Parameters
    ----------
    module_fn : Callable[[dict], LightningModule]
        Builds the federated model from the run config (the same function the sites use).
    central_datamodule_fn : Callable[[dict], LightningDataModule or None], optional
        Builds the server's test data; when given, the global model is evaluated on its
        ``test_dataloader`` before round 1 and after every round (``central-*`` metrics).
    default_lr : Callable[[dict], float or str], optional
        The LR cycle's top when ``lr-max='default'`` (a number, or ``'auto'``); default: the
        module's ``hparams.lr``, else ``PROJECT_LR`` (0.05).

    Returns
    -------
    ServerApp
        Writes ``history.json``, ``history.csv``, ``checkpoint.pt`` and ``curves.png`` to
        ``<output-dir>/<run-name>/`` every round, and resumes from the checkpoint when the run
        config says ``resume=true``.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_colearning(grid, context, module_fn, central_datamodule_fn, default_lr)

    return app


def check_data_dir(config: RunConfig) -> None:
    """Raise ``ConfigError`` when the run config's ``data-dir`` names a path that does not
    exist here: the server would otherwise build the model for the task's default data."""
    if config.data_dir and not Path(config.data_dir).expanduser().exists():
        raise ConfigError(
            f"data-dir={config.data_dir!r} does not exist on the server, which reads it for "
            "the model's input shape and its central test split. Point data-dir at the "
            "server's copy of the data, or leave it empty (the task's default location; with "
            "no data there, set the task's shape keys, e.g. dataset='cifar10', and "
            "central-eval=false). Sites in a deployment read their own node-config data-dir.")


def run_colearning(
    grid: Grid, context: Context, module_fn: ModuleFn,
    central_datamodule_fn: CentralDataFn | None = None,
    default_lr: DefaultLrFn | None = None,
) -> Result | None:
    """Run (or resume) the co-learning rounds the run config asks for.

    ``default_lr(run_config)`` gives the cycle's top for ``lr-max='default'`` (a task's number
    for its model, or ``'auto'``); without it, the module's ``hparams.lr``, else
    ``PROJECT_LR``. With ``'auto'`` the federated LR range test runs before round 1 (once: a
    resumed run reuses the LR its history recorded).
    """
    one_line_failures()
    raw = dict(context.run_config)
    config = RunConfig.from_dict(raw)
    check_data_dir(config)
    if config.resume and not config.run_name:
        raise ConfigError("resume=true needs run-name: the name of the run folder to continue "
                          "(e.g. --run-config \"resume=true run-name='exp1'\").")
    folder = run_folder(config, context.run_id)
    _refuse_to_overwrite(folder, config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"output-dir={config.output_dir!r}: cannot create the run folder "
                          f"{folder} ({error.strerror}). Point output-dir at a folder this "
                          "user can write.") from None
    unknown = unknown_keys(raw)
    if unknown:
        log(WARNING, "[colearn] run-config keys that no colearn-fl part reads: %s; they reach "
            "your module_fn as they are (a typo changes nothing)", describe_unknown(unknown))
    torch.manual_seed(config.seed)  # the same seed, the same initial global model
    module = module_fn(raw)
    done, history, initial, swa = 0, [], module.state_dict(), None
    if config.resume:
        checkpoint = load_checkpoint(folder / CHECKPOINT_NAME)
        done, history = checkpoint["round"], checkpoint["history"]
        # With SWA, "state_dict" is the average; the sites train on from the global model.
        initial = checkpoint.get("training-state-dict", checkpoint["state_dict"])
        swa = checkpoint.get("swa")
        _warn_schedule_change(checkpoint["run-config"], raw)
        log(INFO, "[colearn] resuming %s after round %d", folder, done)
    if done >= config.num_server_rounds:
        log(INFO, "[colearn] %s already completed %d rounds: nothing to do", folder, done)
        return None
    nodes = _joined(grid, config)
    sizes = _check_data(grid, nodes, config)
    top, bottom = config.cycle(default_lr(raw) if default_lr else module_lr(module))
    found = None
    if top == AUTO:
        found = (history[0].get(LR_RANGE_TEST) if history else None) or _range_test(
            grid, state_dict_to_arrays(initial), config, nodes)
        top = float(found["lr-max"])
        bottom = top * config.lr_min_ratio if bottom is None else bottom
    colearn = build_strategy(config.with_cycle(top, bottom), round_offset=done)
    if not history:
        colearn.rounds[0] = {"site-data": sizes}
        if found is not None:
            colearn.rounds[0].update({LR_RANGE_TEST: found, "lr-auto": top})
    if swa is not None and colearn.swa.start:
        colearn.swa.load_state_dict(swa)  # the average continues where the run stopped
    # With DP, Flower's wrapper runs the rounds and calls the schedule's configure/aggregate;
    # the recorder reads the schedule's per-round records either way.
    strategy = with_privacy(colearn, config)
    central = central_evaluator(central_datamodule_fn, raw) if config.central_eval else None
    recorder = RoundRecorder(colearn, module, folder, raw, central, history,
                             config.num_server_rounds)
    log(INFO, "[colearn] results in %s", folder)
    try:
        result = strategy.start(
            grid=ResponsiveGrid(grid),  # flwr 1.41's HttpGrid waits 3 s between reply polls
            initial_arrays=state_dict_to_arrays(initial),
            num_rounds=config.num_server_rounds - done,
            # The schedule's keys, so Flower's summary shows what is sent (the first round's
            # values; every round's configure_train replaces them with its own)
            train_config=ConfigRecord(colearn.round_schedule(done + 1)),
            # Bounds each train and evaluate phase: a site that has not replied by then is
            # left out of that round. A SuperNode that died is reported by the SuperLink
            # sooner (its heartbeats stop: an error reply within 60 s), so this bounds live
            # but stuck sites.
            timeout=config.round_timeout,
            evaluate_fn=recorder,
        )
    except BaseException as error:
        recorder.finish(FAILED, f"{type(error).__name__}: {error}")
        log(ERROR, "[colearn] FAILED: %s (history in %s)", error, folder)
        setattr(error, LOGGED, True)  # Flower's own record of it is then left out
        raise
    recorder.finish(COMPLETED)
    log(INFO, "[colearn] completed %d rounds; results in %s", config.num_server_rounds, folder)
    return result


def _refuse_to_overwrite(folder: Path, config: RunConfig) -> None:
    """A folder that holds a run is continued (resume) or replaced (overwrite), never
    silently overwritten."""
    if config.resume or config.overwrite:
        return
    held = [name for name in (CHECKPOINT_NAME, HISTORY_JSON) if (folder / name).exists()]
    if held:
        raise ConfigError(
            f"run-name={folder.name!r}: {folder} already holds a run ({', '.join(held)}). "
            "Set resume=true to continue it, overwrite=true to replace it, or choose another "
            "run-name.")


def module_lr(module: pl.LightningModule) -> float:
    """A user module's own LR (``hparams.lr``, as ``save_hyperparameters`` stores it), else
    ``PROJECT_LR``: the cycle's top for ``lr-max='default'`` without a task."""
    lr = getattr(module, "hparams", {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) and lr > 0 else PROJECT_LR


def _joined(grid: Grid, config: RunConfig) -> list[int]:
    """The connected sites, once ``min-available-nodes`` have joined; an error naming the
    keys after ``join-timeout`` seconds without them."""
    nodes = wait_for_nodes(grid, config.min_available_nodes, config.join_timeout)
    if len(nodes) < config.min_available_nodes:
        raise ConfigError(
            f"only {len(nodes)} site(s) connected within join-timeout={config.join_timeout:g} "
            f"s, fewer than min-available-nodes={config.min_available_nodes}: start more "
            "SuperNodes (or simulated sites), or lower min-available-nodes.")
    return nodes


def _check_data(grid: Grid, nodes: list[int], config: RunConfig) -> list[dict[str, Any]]:
    """Every connected site opens its data before round 1; one that cannot stops the run."""
    try:
        sizes, notes = check_site_data(ResponsiveGrid(grid), nodes, config.round_timeout)
    except ScheduleError as error:
        raise DataError(f"{error}\nNo site trained. Fix the data (docs/data.md) and start "
                        "the run again.") from None
    for note in notes:
        log(WARNING, "[colearn] data check: %s; the site may still train", note)
    log(INFO, "[colearn] data check: %d site(s), %s training examples", len(sizes),
        sum(s.get("train-examples") or 0 for s in sizes))
    return sizes


def _range_test(grid: Grid, model: ArrayRecord, config: RunConfig,
                nodes: list[int]) -> dict[str, Any]:
    """``lr-max='auto'``: the federated LR range test from the initial model."""
    log(INFO, "[colearn] lr-max='auto': LR range test at %d site(s), %d steps over %g..%g",
        len(nodes), config.lr_find_steps, *LR_FIND_RANGE)
    try:
        found = federated_range_test(
            ResponsiveGrid(grid), model, nodes, min_lr=LR_FIND_RANGE[0],
            max_lr=LR_FIND_RANGE[1], steps=config.lr_find_steps, timeout=config.round_timeout)
    except ScheduleError as error:
        raise ConfigError(str(error)) from None
    for problem in found["problems"]:
        log(WARNING, "[colearn] LR range test: %s", problem)
    log(INFO, "[colearn] lr-max='auto' -> %.4g (median suggestion %.4g of %d site(s), "
        "divergence cap %.4g)", found["lr-max"], found["median-suggestion"],
        len(found["sites"]), found["divergence-cap"])
    return found


def build_strategy(config: RunConfig, round_offset: int = 0,
                   default_top: float = PROJECT_LR) -> CoLearnSchedule:
    """The co-learning schedule over the server optimizer the run config describes
    (``server-optimizer=fedavg``: the paper's ``CoLearn``); ``lr-max='default'`` is
    ``default_top``; ``'auto'`` must be resolved first (``run_colearning`` does)."""
    lr_max, lr_min = config.cycle(default_top)
    if lr_max == AUTO or lr_min is None:
        raise ConfigError("lr-max='auto' is found by the LR range test before round 1 "
                          "(run_colearning); build_strategy needs a number.")
    optimizer = server_optimizer(
        config.server_optimizer, server_lr=config.server_lr,
        server_momentum=config.server_momentum, proximal_mu=config.proximal_mu,
        server_tau=config.server_tau,
        fraction_train=config.fraction_train, fraction_evaluate=config.fraction_evaluate,
        min_train_nodes=1, min_evaluate_nodes=1,
        min_available_nodes=config.min_available_nodes,
    )
    return CoLearnSchedule(
        optimizer, lr_schedule=config.lr_schedule, lr_max=float(lr_max),
        lr_min=lr_min, lr_gamma=config.lr_gamma, epochs_schedule=config.epochs_schedule,
        epochs_initial=config.epochs_initial, epochs_mult=config.epochs_mult,
        epochs_step=config.epochs_step, epochs_budget=config.epochs_budget,
        budget_shape=config.budget_shape, num_rounds=config.num_server_rounds,
        transport_dtype=config.transport_dtype, round_offset=round_offset,
        swa_start=config.swa_start, phase_timeout=config.round_timeout,
        deterministic=config.deterministic,
    )


def central_evaluator(
    datamodule_fn: CentralDataFn | None, raw: dict[str, Any]
) -> Callable[[pl.LightningModule], dict[str, float]] | None:
    """Set up the server's test data once; return a function that evaluates a module on it."""
    datamodule = datamodule_fn(raw) if datamodule_fn else None
    if datamodule is None:
        log(WARNING, "[colearn] the server has no test data: central evaluation is skipped "
            "(only the sites' federated metrics are recorded)")
        return None
    precision = RunConfig.from_dict(raw).precision
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.test_dataloader()

    def evaluate(module: pl.LightningModule) -> dict[str, float]:
        trainer = make_trainer(precision, [], progress_bar=False)
        results = trainer.test(module, dataloaders=loader, verbose=False)
        return {k: float(v) for k, v in (results[0] if results else {}).items()}

    return evaluate


def _warn_schedule_change(saved: dict[str, Any], now: dict[str, Any]) -> None:
    changed = [k for k in RESUME_CHECKED_KEYS if saved.get(k) != now.get(k)]
    if changed:
        log(WARNING, "[colearn] resuming with a different schedule than the checkpoint's run "
            "(%s): the remaining rounds follow the new one", ", ".join(changed))
