"""A run that stops learning says so: a round in which no site's model could be averaged
stops the run after max-failed-rounds of them in a row (default 1), whatever the round."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flwr.serverapp.strategy import FedAvg

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError, ConfigError
from colearn_fl.sections import Outputs
from colearn_fl.server.recorder import RoundRecorder
from colearn_fl.server.tracking import RunTracker
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData

TRAINED = {"sites-sent": 2, "sites-averaged": 2}
DROPPED = {"sites-sent": 2, "sites-averaged": 0,
           "errors": ["'train-loss' is nan: the site's training diverged"] * 2}


class Rounds:
    """What the recorder reads of the running strategy: its per-round records."""

    def __init__(self, rounds: dict[int, dict[str, Any]]) -> None:
        self.rounds, self.round_offset = rounds, 0
        self.strategy = FedAvg()  # the server optimizer under the schedule

    def evaluation_model(self, arrays: Any) -> Any:
        return arrays


def recorder(tmp_path: Path, rounds: dict[int, dict[str, Any]], max_failed: int) -> RoundRecorder:
    return RoundRecorder(Rounds(rounds), TinyClassifier(), tmp_path, {},
                         RunTracker(Outputs(), tmp_path, {}), None, [], 4, max_failed)


def test_an_all_dropped_round_2_stops_the_run_naming_the_reason(tmp_path: Path) -> None:
    # Prepare: round 1 trained; in round 2 every reply was dropped
    record = recorder(tmp_path, {1: TRAINED, 2: DROPPED}, max_failed=1)
    model = state_dict_to_arrays(TinyClassifier().state_dict())
    record(0, model)
    record(1, model)
    # Execute / Assert
    with pytest.raises(ColearnError, match=r"round 2: none of the 2 sites returned a usable "
                                           r"model .*training diverged.*1 round\(s\) in a row "
                                           r"\(max-failed-rounds=1\)"):
        record(2, model)


def test_max_failed_rounds_tolerates_that_many_minus_one_in_a_row(tmp_path: Path) -> None:
    # Prepare: rounds 1 and 3 dropped everything, round 2 trained; then 4 and 5 both dropped
    rounds = {1: DROPPED, 2: TRAINED, 3: DROPPED, 4: DROPPED}
    record = recorder(tmp_path, rounds, max_failed=2)
    model = state_dict_to_arrays(TinyClassifier().state_dict())
    # Execute: rounds 0 to 3 go on (never 2 in a row)
    for server_round in range(4):
        record(server_round, model)
    # Assert: the second in a row stops
    with pytest.raises(ColearnError, match=r"round 4: .*2 round\(s\) in a row"):
        record(4, model)


@pytest.mark.parametrize(("raw", "match"), [
    ({"fraction-train": 0.0}, "fraction-train=0.0: no site would ever train"),
    ({"max-failed-rounds": 0}, "max-failed-rounds=0: must be > 0"),
])
def test_runs_that_cannot_learn_are_refused(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(raw)


class NoOptimizer(TinyClassifier):
    def configure_optimizers(self):
        return None


@pytest.mark.slow  # a 22 s simulation; the callback's own error is a unit test
def test_a_user_module_without_an_optimizer_fails_in_one_line_per_site(tmp_path: Path,
                                                                       caplog) -> None:
    # Execute: a user's module whose configure_optimizers returns None, through simulate()
    with pytest.raises(ColearnError, match=r"round 1: none of the 2 sites returned a usable "
                                           r"model .*\[site-[01]\] NoOptimizer.configure_"
                                           r"optimizers\(\) returned no optimizer"):
        simulate({"output-dir": str(tmp_path), "run-name": "r", "num-server-rounds": 1,
                  "fraction-evaluate": 0.0}, num_sites=2, module_fn=lambda _: NoOptimizer(),
                 datamodule_fn=lambda context: TinyData(n=32))
    # Assert: the sites' reason is said, and no runtime traceback buries it
    logged = [record.getMessage() for record in caplog.records]
    assert not [m for m in logged if "Traceback" in m or "ray::ClientAppActor" in m]
    assert any("returned no optimizer" in m for m in logged)


class TrainOnly(TinyData):
    """A site's data without validation."""

    val_dataloader = None  # type: ignore[assignment]


def test_a_site_without_validation_is_noted_once_and_its_failures_counted(tmp_path: Path,
                                                                          caplog) -> None:
    # Prepare: site 0 has no validation data, site 1 has
    def data(context):
        return TrainOnly(n=32) if context.node_config["partition-id"] == 0 else TinyData(n=32)

    # Execute
    folder = simulate({"output-dir": str(tmp_path), "run-name": "v", "num-server-rounds": 1,
                       "epochs-initial": 1}, num_sites=2, module_fn=lambda _: TinyClassifier(),
                      datamodule_fn=data)
    # Assert: one note at the data check; the round counts the failed evaluation
    logged = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("[colearn] data check: site-0 (node ") and "no validation data" in m
               for m in logged) == 1
    assert any("evaluation: 1 failed, 0 dropped" in m for m in logged)
    row = json.loads((folder / "history.json").read_text())["rounds"][1]
    assert (row["sites-evaluated"], row["sites-evaluation-failed"]) == (1, 1)
    assert not [m for m in logged if "Traceback" in m]
