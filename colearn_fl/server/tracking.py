"""The run's experiment trackers at the server: the ``logger`` key's (CSV, TensorBoard, MLflow)
and the user's own Lightning logger (``server_app(logger_fn=...)``).

Each gets the run config once (as hyper-parameters), every round's figures (step = round:
central and federated metrics, train loss, LR range, epochs, bytes, sites) and every site's
per-epoch curves (``sites/<site>/<name>``, step = cumulative local epochs, the x axis of
``curves.png``; each round's row also logs ``epochs-done``, where that round ended on it).
MLflow also gets ``curves.png``, ``history.json`` and the final model as artifacts, and the
run's status when it ends.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from logging import WARNING
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger, MLFlowLogger

from colearn_fl.config import RunConfig, require_logger_package
from colearn_fl.sections import Outputs
from colearn_fl.server.history import BUDGET_SPENT, COMPLETED, FAILED, STOPPED, Row
from colearn_fl.server.plots import epoch_ends, site_epochs
from colearn_fl.task_adapter import LoggerFn
from colearn_fl.trainer import make_logger

MLFLOW_DB = "mlflow.db"  # the default MLflow store, in the run folder
MLFLOW_ARTIFACTS = "mlartifacts"  # ... and its artifacts
ENV_URI = "MLFLOW_TRACKING_URI"  # MLflow's own variable: the tracking server, when set
FOLDER_TAG = "colearn.folder"  # the MLflow tag that finds a run's MLflow run again on resume
# How a run ended, in the words Lightning's loggers take (MLflow: FINISHED, FAILED, KILLED).
FINAL_STATUS = {COMPLETED: "success", BUDGET_SPENT: "success", FAILED: "failed",
                STOPPED: "KILLED"}


class RunTracker:
    """The run's trackers; every method is a no-op without any.

    Parameters
    ----------
    outputs : Outputs
        The run config's outputs section (``logger``, ``mlflow-tracking-uri``,
        ``mlflow-experiment``).
    folder : Path
        The run folder: CSV and TensorBoard files go to ``<folder>/server``, the default
        MLflow store to ``<folder>/mlflow.db`` and ``<folder>/mlartifacts``.
    run_config : dict
        Logged once, with the defaults of the keys it leaves out, as the run's
        hyper-parameters (MLflow: its params).
    logger_fn : Callable[[dict, str, str], Logger], optional
        The user's own logger, called as ``logger_fn(run_config, "server", folder.name)``.
    resumed : bool
        Whether the run continues an earlier start: its MLflow run continues too.
    """

    def __init__(self, outputs: Outputs, folder: Path, run_config: dict[str, Any],
                 logger_fn: LoggerFn | None = None, resumed: bool = False) -> None:
        self.folder = folder
        self._continued = False  # an MLflow run that already holds the earlier rounds
        if outputs.logger == "mlflow":
            built, self._continued = _mlflow_logger(outputs, folder, resumed)
        else:
            built = make_logger(outputs.logger, folder, "server", "")
        self.loggers: list[Logger] = [built] if built is not None else []
        if logger_fn is not None:
            self.loggers.append(logger_fn(dict(run_config), "server", folder.name))
        # Every key with the value the run used (simulate's run config holds only the
        # overrides; the defaults fill the rest)
        params = {**RunConfig.defaults(), **run_config}
        for logger in self.loggers:
            if not (self._continued and isinstance(logger, MLFlowLogger)):
                logger.log_hyperparams(params)

    def start(self, history: Sequence[Row]) -> None:
        """Log the rounds of an earlier start (resume): a file logger starts its files
        afresh; an MLflow run that continues holds them already."""
        for i in range(len(history)):
            self.round(history[: i + 1], replay=True)

    def round(self, rows: Sequence[Row], replay: bool = False) -> None:
        """Log the last row of ``rows``: its figures at step = round, each site's per-epoch
        curves at step = cumulative local epochs."""
        row, ends = rows[-1], epoch_ends(rows)
        scalars = {k: float(v) for k, v in row.items() if k != "round" and
                   isinstance(v, (int, float)) and not isinstance(v, bool)}
        scalars["epochs-done"] = ends[row["round"]]
        curves = site_curves(row, ends[row["round"]] - row.get("local-epochs", 0))
        for logger in self.loggers:
            if replay and self._continued and isinstance(logger, MLFlowLogger):
                continue
            logger.log_metrics(scalars, step=int(row["round"]))
            for step, values in sorted(curves.items()):
                logger.log_metrics(values, step=step)
            logger.save()

    def finish(self, status: str, artifacts: Sequence[Path]) -> None:
        """Hand MLflow the run's files (those that exist) and close every logger with the
        run's status (``stopped`` and ``budget spent`` end an MLflow run as KILLED and
        FINISHED)."""
        for logger in self.loggers:
            if isinstance(logger, MLFlowLogger):
                for path in artifacts:
                    if path.is_file():
                        logger.experiment.log_artifact(logger.run_id, str(path))
            logger.finalize(FINAL_STATUS.get(status, "success"))


def site_curves(row: Row, start: float) -> dict[int, dict[str, float]]:
    """The row's per-epoch site curves as ``{step: {"sites/<site>/<name>": value}}``, epoch
    ``e`` of the round at step ``start + e + 1``; values that are missing are left out."""
    steps: dict[int, dict[str, float]] = defaultdict(dict)
    for _, name_of_site, curves in site_epochs([row]):
        site = _tag(name_of_site)
        for name, values in curves.items():
            for epoch, value in enumerate(values):
                if value is not None and math.isfinite(value):
                    steps[int(start) + epoch + 1][f"sites/{site}/{name}"] = float(value)
    return dict(steps)


def _tag(name: str) -> str:
    """A site name as a metric name accepts it (MLflow: letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_\-. ]", "_", name.replace("#", "")).strip("_ ") or "site"


def _mlflow_logger(outputs: Outputs, folder: Path, resumed: bool) -> tuple[MLFlowLogger, bool]:
    """The run's MLflow run: in ``mlflow-tracking-uri`` (else ``$MLFLOW_TRACKING_URI``, else
    a SQLite store in the run folder), named after the run folder; a resumed run continues
    its MLflow run (found by the folder tag), and says so (the second value)."""
    require_logger_package("mlflow", "at the server")
    for name in ("mlflow", "alembic"):  # their INFO lines (creating tables...) are noise here
        logging.getLogger(name).setLevel(WARNING)
    uri = outputs.mlflow_tracking_uri or os.environ.get(ENV_URI, "")
    local = not uri
    if local:
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / MLFLOW_DB}"
    run_id = _earlier_run(uri, outputs.mlflow_experiment, folder) if resumed else None
    logger = MLFlowLogger(
        experiment_name=outputs.mlflow_experiment, run_name=folder.name, tracking_uri=uri,
        tags={FOLDER_TAG: str(folder)}, run_id=run_id,
        artifact_location=(folder / MLFLOW_ARTIFACTS).as_uri() if local else None)
    before = os.environ.get(ENV_URI)
    _ = logger.experiment  # starts the MLflow run, which exports its URI to the environment:
    if before is None:  # a later run in this process (simulate, compare) must not inherit it
        os.environ.pop(ENV_URI, None)
    else:
        os.environ[ENV_URI] = before
    return logger, run_id is not None


def _earlier_run(uri: str, experiment: str, folder: Path) -> str | None:
    """The id of the MLflow run this run folder logged to before, if any."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id],
                              filter_string=f"tags.`{FOLDER_TAG}` = '{folder}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None
