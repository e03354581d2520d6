"""The run's trackers at the server, read back through each package's own reader: MLflow's
client, TensorBoard's event reader, and a user's own Lightning logger."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from pytorch_lightning.loggers import Logger

from colearn_fl.errors import ConfigError
from colearn_fl.server.server_app import run_colearning
from colearn_fl.server.tracking import site_curves
from colearn_fl.simulation import simulate
from tests.colearn_fl.server.test_run_status import KWARGS
from tests.colearn_fl.server.test_server_app import OneSilentSiteGrid
from tests.tiny import TinyClassifier, TinyData

SITES = {1: "site-a", 2: "site-b"}


class CurvesGrid(OneSilentSiteGrid):
    """Two sites that echo the model and report per-epoch curves: epoch e of a round has
    training loss 1/(e+1) at site a (2/(e+1) at site b) and accuracy 0.5 + e/10."""

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        return [self._curves(m) for m in self.pushed if m.metadata.message_id in wanted]

    @staticmethod
    def _curves(msg: Message) -> Message:
        node = msg.metadata.dst_node_id
        if msg.metadata.message_type == "query.data_check":
            return Message(RecordDict({"metrics": MetricRecord({"train-examples": 10}),
                                       "site": ConfigRecord({"site-name": SITES[node]})}),
                           reply_to=msg)
        epochs = int(msg.content["config"]["local-epochs"])
        metrics = MetricRecord({
            "num-examples": 10, "train-loss": 0.5,
            "epoch-train-loss": [node / (e + 1) for e in range(epochs)],
            "epoch-accuracy": [0.5 + e / 10 for e in range(epochs)]})
        return Message(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}),
                       reply_to=msg)


def _run(tmp_path: Path, logger: str, **kwargs: Any) -> Path:
    """Two rounds (2 then 1 local epochs) over CurvesGrid, central evaluation on TinyData."""
    run_config = {"num-server-rounds": 2, "epochs-initial": 2, "fraction-evaluate": 0.0,
                  "output-dir": str(tmp_path), "run-name": "r", "logger": logger}
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    run_colearning(CurvesGrid(), context, lambda raw: TinyClassifier(),  # type: ignore[arg-type]
                   lambda raw: TinyData(), **kwargs)
    return tmp_path / "r"


def test_site_curves_are_stepped_by_cumulative_local_epochs() -> None:
    # Prepare: a round starting after 3 epochs; site b's second epoch has no accuracy
    row = {"round": 2, "site-reports": [
        {"site": "site a/1", "epochs": {"train-loss": [0.9, 0.8]}},
        {"epochs": {"train-loss": [0.7, 0.6], "accuracy": [0.4, None]}}]}
    # Execute / Assert: epoch e at step 3 + e + 1; names made safe; the unnamed site numbered
    assert site_curves(row, 3.0) == {
        4: {"sites/site a_1/train-loss": 0.9, "sites/site 2/train-loss": 0.7,
            "sites/site 2/accuracy": 0.4},
        5: {"sites/site a_1/train-loss": 0.8, "sites/site 2/train-loss": 0.6}}


def test_mlflow_holds_one_run_with_params_rounds_site_curves_and_artifacts(
        tmp_path: Path, flower_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Execute
    folder = _run(tmp_path, "mlflow")

    # Assert: one run in the run folder's own store, named after the run
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("colearn-fl")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "r" and run.info.status == "FINISHED"
    assert run.data.params["num-server-rounds"] == "2" and run.data.params["logger"] == "mlflow"
    assert run.data.params["lr-schedule"] == "cosine"  # a default the run config left out
    steps = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
             for k in ("central-accuracy", "local-epochs", "epochs-done",
                       "sites/site-a/train-loss", "sites/site-b/accuracy")}
    assert [s for s, _ in steps["central-accuracy"]] == [0, 1, 2]
    assert steps["local-epochs"] == [(1, 2.0), (2, 1.0)]
    assert steps["epochs-done"] == [(0, 0.0), (1, 2.0), (2, 3.0)]
    # round 1: epochs 1-2, round 2: epoch 3 (its first epoch again: 1/1)
    assert steps["sites/site-a/train-loss"] == [(1, 1.0), (2, 0.5), (3, 1.0)]
    assert steps["sites/site-b/accuracy"] == [(1, 0.5), (2, 0.6), (3, 0.5)]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"curves.png", "history.json", "model-final.ckpt", "model-best.ckpt"}
    # MLflow exports the URI it ran with; a next run in this process must not inherit it
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.slow
def test_a_simulation_with_mlflow_writes_one_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    # Execute: a real simulation, 2 sites of TinyData, 1 round of 4 epochs
    folder = simulate({"output-dir": str(tmp_path), "run-name": "m", "num-server-rounds": 1,
                       "logger": "mlflow"}, **KWARGS)
    # Assert: the sites' real per-epoch curves (the loss and TinyClassifier's accuracy)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("colearn-fl").experiment_id])
    history = client.get_metric_history(run.info.run_id, "sites/site-1/accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "federated-accuracy")
            ] == [1]
    assert run.info.status == "FINISHED"


def test_a_resumed_run_continues_its_mlflow_run(tmp_path: Path, flower_identity: None) -> None:
    from mlflow.tracking import MlflowClient

    # Prepare: a 2-round run, then resumed to 3 rounds
    folder = _run(tmp_path, "mlflow")
    run_config = {"num-server-rounds": 3, "epochs-initial": 2, "fraction-evaluate": 0.0,
                  "output-dir": str(tmp_path), "run-name": "r", "logger": "mlflow",
                  "resume": True}
    context = Context(run_id=2, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    # Execute
    run_colearning(CurvesGrid(), context, lambda raw: TinyClassifier(),  # type: ignore[arg-type]
                   lambda raw: TinyData())
    # Assert: still one MLflow run, each round logged once
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("colearn-fl").experiment_id])
    history = client.get_metric_history(run.info.run_id, "central-accuracy")
    assert [m.step for m in history] == [0, 1, 2, 3]


def test_tensorboard_event_files_hold_the_same_series(tmp_path: Path,
                                                      flower_identity: None) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Execute
    folder = _run(tmp_path, "tensorboard")

    # Assert: read back with TensorBoard's own reader
    events = EventAccumulator(str(folder / "server"))
    events.Reload()
    scalars = {tag: [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]
               for tag in events.Tags()["scalars"]}
    assert [s for s, _ in scalars["central-accuracy"]] == [0, 1, 2]
    assert scalars["sites/site-a/train-loss"] == [(1, 1.0), (2, 0.5), (3, 1.0)]
    assert scalars["sites/site-b/train-loss"] == [(1, 2.0), (2, 1.0), (3, 2.0)]


class Recording(Logger):
    """A user's own Lightning logger: keeps what it is given."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__()
        self._name, self._version = name, version
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.status = ""

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((int(step or 0), dict(metrics)))

    def finalize(self, status: str) -> None:
        self.status = status


def test_a_users_logger_receives_the_round_metrics(tmp_path: Path,
                                                   flower_identity: None) -> None:
    # Prepare
    made: list[Recording] = []

    def logger_fn(run_config: dict, name: str, version: str) -> Recording:
        made.append(Recording(name, version))
        return made[-1]

    # Execute: logger='none', so the user's logger is the only one
    folder = _run(tmp_path, "none", logger_fn=logger_fn)

    # Assert
    (user,) = made
    assert (user.name, user.version) == ("server", "r")
    assert user.params["num-server-rounds"] == 2
    rounds = [(step, m["central-accuracy"]) for step, m in user.metrics
              if "central-accuracy" in m]
    assert [step for step, _ in rounds] == [0, 1, 2]
    assert any("sites/site-a/accuracy" in m for _, m in user.metrics)
    assert user.status == "success"
    assert not (folder / "server").exists()  # no CSV logger under logger='none'


def test_mlflow_missing_names_the_extra(tmp_path: Path, flower_identity: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"logger='mlflow' needs the mlflow package at the "
                                          r"server: pip install \"colearn-fl\[mlflow\]\""):
        _run(tmp_path, "mlflow")
