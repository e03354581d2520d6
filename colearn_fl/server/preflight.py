"""What the server checks and does before round 1: the data-dir and run folder, the sites
joining, their data, and (``lr-max='auto'``) the federated LR range test."""

from __future__ import annotations

from logging import INFO, WARNING
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord
from flwr.serverapp import Grid
from flwr.supercore import log

from colearn_fl.config import LR_FIND_RANGE, RunConfig
from colearn_fl.errors import ConfigError, DataError
from colearn_fl.server.checkpoint import CHECKPOINT_NAME
from colearn_fl.server.grid import ResponsiveGrid
from colearn_fl.server.history import HISTORY_JSON
from colearn_fl.task_adapter import describe_unknown, unknown_keys
from strategies import ScheduleError
from strategies.data_check import check_site_data
from strategies.lr_range import federated_range_test
from strategies.query import wait_for_nodes


def run_folder_ready(config: RunConfig, run_id: int, raw: dict[str, Any]) -> Path:
    """The run's folder, created; a ``ConfigError`` naming the key when data-dir, resume,
    run-name or output-dir cannot work. Warns once about keys nothing reads."""
    check_data_dir(config)
    outputs = config.outputs
    if outputs.resume and not outputs.run_name:
        raise ConfigError("resume=true needs run-name: the name of the run folder to continue "
                          "(e.g. --run-config \"resume=true run-name='exp1'\").")
    folder = outputs.folder(run_id)
    refuse_to_overwrite(folder, config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"output-dir={outputs.output_dir!r}: cannot create the run folder "
                          f"{folder} ({error.strerror}). Point output-dir at a folder this "
                          "user can write.") from None
    unknown = unknown_keys(raw)
    if unknown:
        log(WARNING, "[colearn] run-config keys that no colearn-fl part reads: %s; they reach "
            "your module_fn as they are (a typo changes nothing)", describe_unknown(unknown))
    return folder


def check_data_dir(config: RunConfig) -> None:
    """Raise ``ConfigError`` when the run config's ``data-dir`` names a path that does not
    exist here: the server would otherwise build the model for the task's default data."""
    if config.data.data_dir and not Path(config.data.data_dir).expanduser().exists():
        raise ConfigError(
            f"data-dir={config.data.data_dir!r} does not exist on the server, which reads it for "
            "the model's input shape and its central test split. Point data-dir at the "
            "server's copy of the data, or leave it empty (the task's default location; with "
            "no data there, set the task's shape keys, e.g. dataset='cifar10', and "
            "central-eval=false). Sites in a deployment read their own node-config data-dir.")


def refuse_to_overwrite(folder: Path, config: RunConfig) -> None:
    """A folder that holds a run is continued (resume) or replaced (overwrite), never
    silently overwritten."""
    if config.outputs.resume or config.outputs.overwrite:
        return
    held = [name for name in (CHECKPOINT_NAME, HISTORY_JSON) if (folder / name).exists()]
    if held:
        raise ConfigError(
            f"run-name={folder.name!r}: {folder} already holds a run ({', '.join(held)}). "
            "Set resume=true to continue it, overwrite=true to replace it, or choose another "
            "run-name.")


def joined(grid: Grid, config: RunConfig) -> list[int]:
    """The connected sites, once ``min-available-nodes`` have joined; an error naming the
    keys after ``join-timeout`` seconds without them."""
    rounds = config.rounds
    nodes = wait_for_nodes(grid, rounds.min_available_nodes, rounds.join_timeout)
    if len(nodes) < rounds.min_available_nodes:
        raise ConfigError(
            f"only {len(nodes)} site(s) connected within join-timeout={rounds.join_timeout:g} "
            f"s, fewer than min-available-nodes={rounds.min_available_nodes}: start more "
            "SuperNodes (or simulated sites), or lower min-available-nodes.")
    return nodes


def check_data(grid: Grid, nodes: list[int], config: RunConfig) -> list[dict[str, Any]]:
    """Every connected site opens its data before round 1; one that cannot stops the run."""
    try:
        sizes, notes = check_site_data(ResponsiveGrid(grid), nodes, config.rounds.round_timeout,
                                       evaluates=config.rounds.fraction_evaluate > 0)
    except ScheduleError as error:
        raise DataError(f"{error}\nNo site trained. Fix the data (docs/data.md) and start "
                        "the run again.") from None
    for note in notes:
        log(WARNING, "[colearn] data check: %s", note)
    log(INFO, "[colearn] data check: %d site(s), %s training examples", len(sizes),
        sum(s.get("train-examples") or 0 for s in sizes))
    return sizes


def range_test(grid: Grid, model: ArrayRecord, config: RunConfig,
                nodes: list[int]) -> dict[str, Any]:
    """``lr-max='auto'``: the federated LR range test from the initial model."""
    log(INFO, "[colearn] lr-max='auto': LR range test at %d site(s), %d steps over %g..%g",
        len(nodes), config.training.lr_find_steps, *LR_FIND_RANGE)
    try:
        found = federated_range_test(
            ResponsiveGrid(grid), model, nodes, min_lr=LR_FIND_RANGE[0],
            max_lr=LR_FIND_RANGE[1], steps=config.training.lr_find_steps,
            timeout=config.rounds.round_timeout)
    except ScheduleError as error:
        raise ConfigError(str(error)) from None
    for problem in found["problems"]:
        log(WARNING, "[colearn] LR range test: %s", problem)
    log(INFO, "[colearn] lr-max='auto' -> %.4g (median suggestion %.4g of %d site(s), "
        "divergence cap %.4g)", found["lr-max"], found["median-suggestion"],
        len(found["sites"]), found["divergence-cap"])
    return found
