"""The server side: a Flower ServerApp that runs co-learning for a user's LightningModule."""

from __future__ import annotations

from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

import torch
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result
from flwr.supercore import log

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import AUTO, RunConfig, changed_keys
from colearn_fl.server.central_eval import start_central_eval
from colearn_fl.server.checkpoint import CHECKPOINT_NAME, load_checkpoint
from colearn_fl.server.failure_line import LOGGED, one_line_failures
from colearn_fl.server.grid import ResponsiveGrid
from colearn_fl.server.history import BUDGET_SPENT, COMPLETED, FAILED, STOPPED, server_facts
from colearn_fl.server.preflight import check_data, joined, range_test, run_folder_ready
from colearn_fl.server.privacy import BudgetSpent, with_privacy
from colearn_fl.server.recorder import SERVER_OPTIMIZER_STATE, RoundRecorder
from colearn_fl.server.strategy import build_strategy, cycle_source, module_lr
from colearn_fl.server.tracking import RunTracker
from colearn_fl.task_adapter import CentralDataFn, DefaultLrFn, LoggerFn, ModuleFn
from strategies.secagg import SecureAggregationGrid, Settings
from strategies.server_optimizers import load_optimizer_state

LR_RANGE_TEST = "lr-range-test"  # history row 0: what lr-max='auto' found, and each site
# The sections whose change on resume is worth a warning: what the remaining rounds follow.
RESUME_CHECKED = ("schedule", "server")


def server_app(
    module_fn: ModuleFn, central_datamodule_fn: CentralDataFn | None = None,
    default_lr: DefaultLrFn | None = None, logger_fn: LoggerFn | None = None,
) -> ServerApp:
    """A ServerApp that runs co-learning: the round schedule over the run config's
    ``server-optimizer`` (``fedavg`` by default: the ``CoLearn`` strategy).

    With ``dp-noise-multiplier > 0``, the strategy runs inside Flower's client-side
    fixed-clipping DP wrapper (``colearn_fl.server.privacy``); the sites need colearn-fl's clipping
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
        Writes ``history.json``, ``history.csv``, ``checkpoint.pt``, ``curves.png`` and
        ``model-final.ckpt`` / ``.pt`` to ``<output-dir>/<run-name>/`` every round
        (``model-best.ckpt`` / ``.pt`` when the round is the best by ``monitor``), and resumes
        from the checkpoint when the run config says ``resume=true``.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_colearning(grid, context, module_fn, central_datamodule_fn, default_lr,
                       logger_fn=logger_fn)

    return app


def run_colearning(
    grid: Grid, context: Context, module_fn: ModuleFn,
    central_datamodule_fn: CentralDataFn | None = None,
    default_lr: DefaultLrFn | None = None, config: RunConfig | None = None,
    logger_fn: LoggerFn | None = None,
) -> Result | None:
    """Run (or resume) the co-learning rounds the run config asks for.

    ``config`` is ``context.run_config`` parsed, when the caller already parsed it;
    ``logger_fn`` the user's own logger (``server_app``).

    ``default_lr(run_config)`` gives the cycle's top for ``lr-max='default'`` (a task's number
    for its model, or ``'auto'``); without it, the module's ``hparams.lr``, else
    ``PROJECT_LR``. With ``'auto'`` the federated LR range test runs before round 1 (once: a
    resumed run reuses the LR its history recorded).
    """
    one_line_failures()
    raw = dict(context.run_config)
    config = config or RunConfig.from_dict(raw)
    rounds = config.rounds
    folder = run_folder_ready(config, context.run_id, raw)
    server = server_facts(folder, config.outputs.resume)  # when the run (first) started
    torch.manual_seed(config.seed)  # the same seed, the same initial global model
    module = module_fn(raw)
    done, history, initial, swa, optimizer_state = 0, [], module.state_dict(), None, {}
    if config.outputs.resume:
        done, history, initial, swa, optimizer_state = _resumed(folder, config)
    if done >= rounds.num_server_rounds:
        log(INFO, "[colearn] %s already completed %d rounds: nothing to do", folder, done)
        return None
    # The server's test data and the initial model's evaluation load while the sites check
    # their data (a resumed run's round 0 was evaluated before it stopped).
    early = (start_central_eval(central_datamodule_fn, raw, config.training.precision,
                                None if done else module)
             if config.outputs.central_eval else None)
    nodes = joined(grid, config)
    sizes = check_data(grid, nodes, config)
    default, source = ((default_lr(raw), getattr(default_lr, "source", "default_lr"))
                       if default_lr else module_lr(module))
    top, bottom = config.schedule.cycle(default)
    found = None
    if top == AUTO:
        found = (history[0].get(LR_RANGE_TEST) if history else None) or range_test(
            grid, state_dict_to_arrays(initial), config, nodes)
        top = float(found["lr-max"])
        bottom = top * config.schedule.lr_min_ratio if bottom is None else bottom
    source = "the LR range test" if found is not None else cycle_source(config, source)
    log(INFO, "[colearn] lr-max %.4g from %s; lr-min %.4g", top, source, bottom)
    colearn = build_strategy(config.with_cycle(top, bottom), round_offset=done)
    colearn.site_names.update({s["node-id"]: s["site-name"] for s in sizes if s.get("site-name")})
    if not history:
        colearn.rounds[0] = {"site-data": sizes}
        if found is not None:
            colearn.rounds[0].update({LR_RANGE_TEST: found, "lr-auto": top})
    if swa is not None and colearn.swa.start:
        colearn.swa.load_state_dict(swa)  # the average continues where the run stopped
    if optimizer_state:  # FedAvgM's momentum, FedAdam's moments: as the run left them
        load_optimizer_state(colearn.strategy, optimizer_state)
    # With DP, Flower's wrapper runs the rounds and calls the schedule's configure/aggregate;
    # the recorder reads the schedule's per-round records either way.
    strategy = with_privacy(colearn, config, history)  # resumed: epsilon goes on
    central, initial_central = early.result() if early else (None, None)
    tracker = RunTracker(config.outputs, folder, raw, logger_fn, resumed=bool(history))
    recorder = RoundRecorder(colearn, module, folder, raw, tracker, central,
                             history, rounds.num_server_rounds, rounds.max_failed_rounds,
                             server, (config.outputs.monitor, config.outputs.monitor_mode),
                             initial_central)
    log(INFO, "[colearn] results in %s", folder)
    try:
        result = strategy.start(
            # flwr 1.41's HttpGrid waits 3 s between reply polls; with secure-aggregation,
            # training rounds run SecAgg+
            grid=_training_grid(ResponsiveGrid(grid), config, colearn.rounds),
            initial_arrays=state_dict_to_arrays(initial),
            num_rounds=rounds.num_server_rounds - done,
            # The schedule's keys, so Flower's summary shows what is sent (the first round's
            # values; every round's configure_train replaces them with its own)
            train_config=ConfigRecord(colearn.round_schedule(done + 1)),
            # Bounds each train and evaluate phase: a site that has not replied by then is
            # left out of that round. A SuperNode that died is reported by the SuperLink
            # sooner (its heartbeats stop: an error reply within 60 s), so this bounds live
            # but stuck sites.
            timeout=rounds.round_timeout,
            evaluate_fn=recorder,
        )
    except BudgetSpent as spent:  # dp-target-epsilon: a normal end, the last round's model kept
        recorder.finish(BUDGET_SPENT, str(spent))
        log(WARNING, "[colearn] %s (history in %s)", spent, folder)
        return None
    except BaseException as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if isinstance(error, Exception):
            recorder.finish(FAILED, reason)
            log(ERROR, "[colearn] FAILED: %s (history in %s)", error, folder)
        else:  # interrupted from outside, not failed: Ctrl-C, SystemExit, a cancelled task,
            # or flwr's RunNotRunningException once `flwr stop` ends the run
            recorder.finish(STOPPED, reason)
            log(WARNING, "[colearn] STOPPED: %s (history in %s; resume=true continues it)",
                reason, folder)
        setattr(error, LOGGED, True)  # Flower's own record of it is then left out
        raise
    recorder.finish(COMPLETED)
    log(INFO, "[colearn] completed %d rounds; results in %s", rounds.num_server_rounds,
        folder)
    return result


def _resumed(folder: Path, config: RunConfig) -> tuple[int, list[Any], Any, Any, dict]:
    """Rounds done, history, the model to train on, the SWA state and the server optimizer's
    state of the run in ``folder``; a warning when the schedule or server optimizer changed
    since."""
    checkpoint = load_checkpoint(folder / CHECKPOINT_NAME)
    try:
        saved = RunConfig.from_dict(checkpoint["run-config"])
        changed = [key for name in RESUME_CHECKED
                   for key in changed_keys(getattr(saved, name), getattr(config, name))]
    except ValueError:  # a run config this version no longer accepts: all of it may differ
        changed = ["the run config no longer parses"]
    if changed:
        log(WARNING, "[colearn] resuming with a different schedule than the checkpoint's run "
            "(%s): the remaining rounds follow the new one", ", ".join(changed))
    log(INFO, "[colearn] resuming %s after round %d", folder, checkpoint["round"])
    # With SWA, "state_dict" is the average; the sites train on from the global model.
    initial = checkpoint.get("training-state-dict", checkpoint["state_dict"])
    return (checkpoint["round"], checkpoint["history"], initial, checkpoint.get("swa"),
            checkpoint.get(SERVER_OPTIMIZER_STATE, {}))


def _training_grid(grid: Grid, config: RunConfig, records: dict[int, dict]) -> Grid:
    """``grid``, wrapped so that training rounds run SecAgg+ when the run config asks (their
    traffic added to ``records``, the schedule's per-round records)."""
    secagg = config.secagg
    if not secagg.secure_aggregation:
        return grid
    log(INFO, "[colearn] secure aggregation (SecAgg+): the server learns only each round's "
        "weighted mean model")
    return SecureAggregationGrid(grid, Settings(
        secagg.secagg_threshold, secagg.secagg_clipping_range, secagg.secagg_quantization_range),
        records)
