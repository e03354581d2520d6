"""What the server does after every round: evaluate centrally, record, checkpoint, report."""

from __future__ import annotations

import math
import time
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from flwr.app import ArrayRecord, MetricRecord
from flwr.supercore import log

from colearn_fl.arrays import arrays_to_state_dict
from colearn_fl.errors import ColearnError
from colearn_fl.server.central_eval import CentralEval
from colearn_fl.server.checkpoint import (
    CHECKPOINT_NAME,
    MODEL_BEST,
    MODEL_FINAL,
    ModelOut,
    save_checkpoint,
)
from colearn_fl.server.history import (
    HISTORY_JSON,
    Row,
    main_metric,
    server_facts,
    write_history,
)
from colearn_fl.server.plots import CURVES_PNG, plot_curves
from colearn_fl.server.tracking import RunTracker
from strategies import CoLearnSchedule
from strategies.query import short_reason
from strategies.server_optimizers import optimizer_state

SERVER_OPTIMIZER_STATE = "server-optimizer-state"  # the checkpoint's key for it


class RoundRecorder:
    """The ``evaluate_fn`` given to ``Strategy.start``: called before round 1 and after each.

    After round ``r`` it evaluates the global model on the server's test data (when there is
    any), appends a history row (schedule sent, train loss, federated and central metrics,
    sites, bytes, wall time), checkpoints atomically, logs one line and writes the evaluated
    model as ``model-final`` and, when the round is the best so far, ``model-best``
    (``ModelOut``).

    Parameters
    ----------
    strategy : CoLearnSchedule
        The running strategy; its ``rounds`` hold what each round sent and received.
    module : pl.LightningModule
        A module of the federated architecture, used to evaluate and to checkpoint.
    folder : Path
        The run folder (history, checkpoint, curves).
    run_config : dict
        Stored in the history and the checkpoint, so a run can be resumed and audited.
    tracker : RunTracker
        The run's experiment trackers (the ``logger`` key's and the user's own): every round
        goes to them, and the run's files when it ends.
    central_eval : Callable or None
        Evaluates a module on the server's test split and returns its metrics.
    history : list of rows
        Rows of rounds completed before this start (resume); new rows are appended.
    total_rounds : int
        The run's last round, for the log line.
    max_failed_rounds : int
        Rounds in a row in which no site's model could be averaged before the run stops
        (default: 1).
    server : dict, optional
        run-log.json's facts about the server (``history.server_facts``); default: taken now.
    monitor : tuple[str, str]
        The run config's ``monitor`` and ``monitor-mode``: what picks ``model-best``
        (default: the main metric, its mode automatic).
    initial_central : dict, optional
        Round 0's central metrics when they were taken already (``start_central_eval``);
        default: round 0 evaluates like every round.
    """

    def __init__(
        self,
        strategy: CoLearnSchedule,
        module: pl.LightningModule,
        folder: Path,
        run_config: dict[str, Any],
        tracker: RunTracker,
        central_eval: CentralEval | None,
        history: list[Row],
        total_rounds: int,
        max_failed_rounds: int = 1,
        server: dict[str, Any] | None = None,
        monitor: tuple[str, str] = ("", "auto"),
        initial_central: dict[str, float] | None = None,
    ) -> None:
        self.strategy, self.module, self.folder = strategy, module, folder
        self.run_config, self.central_eval = run_config, central_eval
        self.history, self.total_rounds = history, total_rounds
        self.max_failed_rounds, self._failed_in_a_row = max_failed_rounds, 0
        self.server = server if server is not None else server_facts(folder, bool(history))
        self._elapsed_before = float(history[-1]["elapsed-s"]) if history else 0.0
        self.models = ModelOut(folder, *monitor, fresh=not history)
        self.tracker = tracker
        self._initial_central = initial_central
        tracker.start(history)  # resumed: the rounds of the earlier start
        self._started = time.monotonic()
        self._last = self._started

    def __call__(self, loop_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        server_round = loop_round + self.strategy.round_offset
        if loop_round == 0 and server_round > 0:
            return None  # resumed: this model was evaluated when its round ended
        if loop_round >= 1:
            self._count_failed_round(self.strategy.rounds.get(server_round, {}), server_round)
        model = self.strategy.evaluation_model(arrays)  # the SWA average once it has begun
        self.module.load_state_dict(arrays_to_state_dict(model), strict=True)
        if server_round == 0 and self._initial_central is not None:
            central = self._initial_central  # evaluated while the sites checked their data
        else:
            central = self.central_eval(self.module) if self.central_eval else {}
        row = self._row(server_round, central)
        self.history.append(row)
        if server_round > 0:
            payload = {"round": server_round, "state_dict": self.module.state_dict(),
                       "history": self.history, "run-config": self.run_config}
            if model is not arrays:  # SWA: the sites train on from the global model
                payload["training-state-dict"] = arrays_to_state_dict(arrays)
                payload["swa"] = self.strategy.swa.state_dict()
            optimizer = optimizer_state(self.strategy.strategy)  # FedAvgM's momentum, ...
            if optimizer:
                payload[SERVER_OPTIMIZER_STATE] = optimizer
            save_checkpoint(self.folder / CHECKPOINT_NAME, payload)
        write_history(self.folder, self.history, self.run_config, server=self.server)
        self.tracker.round(self.history)
        plot_curves(self.folder / CURVES_PNG, self.history, main_metric(self.history[-1]))
        log(INFO, "%s", _round_line(row, self.total_rounds))
        _stop_if_diverged(row)
        self.models.after_round(self.module, self.history)  # the model just evaluated
        return MetricRecord(central) if central else None

    def _count_failed_round(self, record: dict[str, Any], server_round: int) -> None:
        """A round in which no site's model could be averaged leaves the global model as it
        was: the run stops after ``max_failed_rounds`` of them in a row, naming the sites'
        reasons (a first round like that is a setup error), and warns before."""
        if record.get("sites-averaged"):
            self._failed_in_a_row = 0
            return
        self._failed_in_a_row += 1
        reasons = "; ".join(dict.fromkeys(short_reason(r) for r in record.get("errors", [])))
        said = (f"round {server_round}: none of the {record.get('sites-sent', 0)} sites "
                f"returned a usable model (the sites reported: {reasons or 'see the log'})")
        if self._failed_in_a_row >= self.max_failed_rounds:
            raise ColearnError(f"{said}, {self._failed_in_a_row} round(s) in a row "
                               f"(max-failed-rounds={self.max_failed_rounds}), so the run "
                               "stops here; the global model is the last round's that trained")
        log(WARNING, "[colearn] %s; the global model is unchanged (%d of max-failed-rounds=%d)",
            said, self._failed_in_a_row, self.max_failed_rounds)

    def finish(self, status: str, reason: str = "") -> None:
        """Record how the run ended (``completed``, or ``failed``/``stopped`` and why) in
        history.json, and close the trackers (MLflow gets the curves, the history and the
        final model)."""
        write_history(self.folder, self.history, self.run_config, status, reason, self.server)
        self.tracker.finish(status, [self.folder / name for name in
                                     (CURVES_PNG, HISTORY_JSON, f"{MODEL_FINAL}.ckpt",
                                      f"{MODEL_BEST}.ckpt")])

    def _row(self, server_round: int, central: dict[str, float]) -> Row:
        now = time.monotonic()
        record = self.strategy.rounds.get(server_round, {})
        row: Row = {"round": server_round, **record.get("schedule", {})}
        row.update({k: v for k, v in record.get("train-metrics", {}).items()})
        row.update({f"federated-{k}": v for k, v in record.get("federated-metrics", {}).items()})
        row.update({f"central-{k}": v for k, v in central.items()})
        row.update({k: v for k, v in record.items()
                    if k.startswith(("sites-", "site-", "model-", "bytes-", "swa-", "lr-", "dp-"))})
        for key in ("errors", "evaluation-errors"):  # the sites' texts: run-log.json only
            if record.get(key):
                row[key] = list(record[key])
        row["round-s"] = round(now - self._last, 3)
        row["elapsed-s"] = round(self._elapsed_before + now - self._started, 3)
        self._last = now
        return row


def _stop_if_diverged(row: dict[str, Any]) -> None:
    """A non-finite central loss means training diverged: stop and name the LR."""
    loss = row.get("central-loss")
    if isinstance(loss, float) and not math.isfinite(loss):
        top = row.get("lr-max")
        raise ColearnError(
            f"round {row['round']}: the global model's central loss is {loss}: training "
            f"diverged. Lower lr-max (this round's cycle top: {top}), or use lr-max='auto'.")


def _round_line(row: Row, total_rounds: int) -> str:
    """One line per round: round, epochs, LR range, metrics, elapsed time."""
    parts = [f"[colearn] round {row['round']}/{total_rounds}"]
    if "local-epochs" in row:
        parts.append(f"epochs {row['local-epochs']}")
        parts.append(f"lr {row['lr-schedule']} {row['lr-max']:.4g}->{row['lr-min']:.4g}")
    if "sites-sent" in row:
        parts.append("sites: " + ", ".join(f"{row.get(f'sites-{k}', 0)} {k}" for k in
                                           ("sent", "failed", "dropped", "averaged")))
    failed = {k: row.get(f"sites-evaluation-{k}", 0) for k in ("failed", "dropped")}
    if any(failed.values()):
        parts.append("evaluation: " + ", ".join(f"{v} {k}" for k, v in failed.items()))
    if isinstance(row.get("train-loss"), float):
        parts.append(f"train-loss {row['train-loss']:.4f}")
    parts += [f"{k} {v:.4f}" for k, v in row.items()
              if k.startswith(("central-", "federated-")) and isinstance(v, float)]
    if isinstance(row.get("dp-epsilon"), float):
        parts.append(f"epsilon {row['dp-epsilon']:.4g}")
    parts.append(f"{row['elapsed-s']:.1f} s")
    return " | ".join(parts)
