"""Nothing lost, nothing silent: a finished run is never overwritten, and history.json says
how a run ended, in valid JSON, even when training diverged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from flwr.app import Context

from colearn_fl.errors import ColearnError, ConfigError
from colearn_fl.server.history import write_history
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData


def site_data(context: Context) -> TinyData:
    return TinyData(n=64, seed=int(context.node_config["partition-id"]))


KWARGS = {"num_sites": 2, "cpus_per_site": 1, "module_fn": lambda cfg: TinyClassifier(),
          "datamodule_fn": site_data, "central_datamodule_fn": lambda cfg: TinyData()}


def strict_json(path: Path) -> dict:
    """Parse as the strict JSON readers do: NaN and Infinity are errors."""
    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_a_finished_run_is_never_overwritten(tmp_path: Path) -> None:
    # Prepare: a completed 1-round run named "x"
    run = {"output-dir": str(tmp_path), "run-name": "x", "num-server-rounds": 1,
           "fraction-evaluate": 0.0}
    folder = simulate(run, **KWARGS)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert strict_json(folder / "history.json")["status"] == "completed"
    # Execute: the same run-name again, without resume
    with pytest.raises(ColearnError, match="run-name='x'.*already holds a run.*resume=true.*"
                                           "overwrite=true"):
        simulate(run, **KWARGS)
    # Assert: not one file changed; overwrite=true replaces the run
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    simulate({**run, "overwrite": True}, **KWARGS)
    assert strict_json(folder / "history.json")["status"] == "completed"


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_a_diverged_run_fails_naming_lr_max_and_its_history_is_valid_json(
        tmp_path: Path) -> None:
    # Execute: an LR of 1e6 for one epoch blows the averaged weights and the central loss up
    # in round 1 (the sites' own losses are still finite)
    with pytest.raises(ColearnError, match="central loss is nan: training diverged. Lower "
                                           "lr-max"):
        simulate({"output-dir": str(tmp_path), "run-name": "d", "num-server-rounds": 2,
                  "lr-max": 1e6, "epochs-schedule": "fixed", "epochs-initial": 1,
                  "fraction-evaluate": 0.0}, **KWARGS)
    # Assert: status failed with the reason; NaN written as null
    history = strict_json(tmp_path / "d" / "history.json")
    assert history["status"] == "failed" and "diverged" in history["reason"]
    assert history["rounds"][-1]["central-loss"] is None


def test_history_writes_non_finite_numbers_as_null(tmp_path: Path) -> None:
    rows = [{"round": 1, "train-loss": float("inf"), "site-reports": [{"lr-last": float("nan")}]}]
    write_history(tmp_path, rows, {}, "failed", "why")
    history = strict_json(tmp_path / "history.json")
    assert history["rounds"][0]["train-loss"] is None
    assert history["rounds"][0]["site-reports"][0]["lr-last"] is None
    assert (history["status"], history["reason"]) == ("failed", "why")


def test_resume_and_overwrite_together_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="resume=true and overwrite=true: choose one"):
        simulate({"resume": True, "overwrite": True, "run-name": "x"}, **KWARGS)


def test_bad_data_at_one_site_stops_the_run_before_any_training(tmp_path: Path) -> None:
    # Prepare: site 1's data cannot be read
    from colearn_fl.errors import DataError

    def data(context: Context) -> TinyData:
        if int(context.node_config["partition-id"]) == 1:
            raise DataError("train.csv has a header and no rows: add rows or fix data-dir")
        return site_data(context)

    # Execute
    with pytest.raises(ColearnError, match=r"data check before round 1 failed at 1 of 2 "
                                           r"site\(s\):\n  node \d+: \[site-\d\] train.csv "
                                           r"has a header"):
        simulate({"output-dir": str(tmp_path), "run-name": "b"},
                 **{**KWARGS, "datamodule_fn": data})
    # Assert: no round trained, so no history was written
    assert not (tmp_path / "b" / "history.json").exists()


def test_site_data_sizes_are_recorded_before_round_1(tmp_path: Path) -> None:
    folder = simulate({"output-dir": str(tmp_path), "run-name": "s", "num-server-rounds": 1,
                       "fraction-evaluate": 0.0}, **KWARGS)
    row = strict_json(folder / "history.json")["rounds"][0]
    assert [s["train-examples"] for s in row["site-data"]] == [64, 64]
    assert [s["val-examples"] for s in row["site-data"]] == [32, 32]
    # the server's rounds also go to the run's Lightning logger (logger='csv': metrics.csv):
    # the rounds at step = round, each site's 4 epochs at step = cumulative local epoch
    with (folder / "server" / "metrics.csv").open() as handle:
        logged = list(csv.DictReader(handle))
    assert [r["step"] for r in logged if r["central-accuracy"]] == ["0", "1"]
    for site in ("site-0", "site-1"):
        assert [r["step"] for r in logged if r[f"sites/{site}/train-loss"]] == ["1", "2", "3", "4"]
        assert [r["step"] for r in logged if r[f"sites/{site}/accuracy"]] == ["1", "2", "3", "4"]


def test_too_few_sites_stop_after_join_timeout(tmp_path: Path) -> None:
    import time

    start = time.monotonic()
    with pytest.raises(ColearnError, match=r"only 2 site\(s\) connected within join-timeout=2 s"
                                           r", fewer than min-available-nodes=3"):
        simulate({"output-dir": str(tmp_path), "min-available-nodes": 3, "join-timeout": 2},
                 **KWARGS)
    assert time.monotonic() - start < 60  # Ray's start included; never "forever"


def test_an_output_dir_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ColearnError, match="output-dir=.*a-file.*cannot create the run folder"):
        simulate({"output-dir": str(blocker / "out")}, **KWARGS)


def test_sites_whose_training_diverged_stop_the_run_with_their_reason(tmp_path: Path) -> None:
    # Execute: at an LR of 1e6 for 4 epochs the sites' own training losses become NaN
    with pytest.raises(ColearnError, match=r"none of the 2 sites returned a usable model.*"
                                           r"site-\d \(node \d+\): .*(training diverged|"
                                           r"non-finite)"):
        simulate({"output-dir": str(tmp_path), "run-name": "n", "num-server-rounds": 1,
                  "lr-max": 1e6, "fraction-evaluate": 0.0}, **KWARGS)


def test_a_data_dir_that_does_not_exist_stops_before_round_0(tmp_path: Path) -> None:
    # Execute: a typo in data-dir must not fall back to another data set
    with pytest.raises(ConfigError, match="data-dir=.*nowhere.*does not exist on the server"):
        simulate({"output-dir": str(tmp_path), "run-name": "t",
                  "data-dir": str(tmp_path / "nowhere")}, **KWARGS)
    # Assert: nothing was written
    assert not (tmp_path / "t").exists()
