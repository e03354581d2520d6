"""History files, curves, and atomic checkpoints."""

from __future__ import annotations

import csv
import json
import os
import pickle
import socket

import pytest
import torch

from colearn_fl.errors import ConfigError
from colearn_fl.server.checkpoint import load_checkpoint, save_checkpoint
from colearn_fl.server.history import (
    best_row,
    monitored,
    read_history,
    server_facts,
    write_history,
)
from colearn_fl.server.plots import plot_curves

ROWS = [
    {"round": 0, "central-accuracy": 0.1},
    {"round": 1, "local-epochs": 1, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.0,
     "train-loss": 0.9, "central-accuracy": 0.7, "federated-accuracy": 0.69},
    {"round": 2, "local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.0,
     "train-loss": 0.5, "central-accuracy": 0.8, "federated-accuracy": 0.79},
]


def test_history_json_and_csv(tmp_path) -> None:
    write_history(tmp_path, ROWS, {"lr-max": 0.1})
    assert read_history(tmp_path) == ROWS
    assert json.loads((tmp_path / "history.json").read_text())["run-config"] == {"lr-max": 0.1}
    with (tmp_path / "history.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    assert [line["round"] for line in lines] == ["0", "1", "2"]
    assert lines[2]["local-epochs"] == "2" and lines[0]["local-epochs"] == ""


def test_run_dependent_facts_stay_out_of_history_json(tmp_path) -> None:
    # Prepare: a round with wall times, error texts and Flower's node ids
    row = {"round": 1, "train-loss": 0.5, "round-s": 12.5, "elapsed-s": 20.0,
           "errors": ["node 7: stuck"],
           "site-reports": [{"node-id": 7, "num-examples": 10, "followed": True}],
           "lr-range-test": {"lr-max": 0.1, "sites": [{"node-id": 7, "lr-suggested": 0.1}]}}
    # Execute
    write_history(tmp_path, [row], {"seed": 0})
    # Assert: history.json and .csv hold what a rerun reproduces; run-log.json everything
    kept = json.loads((tmp_path / "history.json").read_text())["rounds"][0]
    assert kept == {"round": 1, "train-loss": 0.5,
                    "site-reports": [{"num-examples": 10, "followed": True}],
                    "lr-range-test": {"lr-max": 0.1, "sites": [{"lr-suggested": 0.1}]}}
    with (tmp_path / "history.csv").open() as handle:
        assert next(csv.reader(handle)) == ["round", "train-loss"]
    assert read_history(tmp_path) == [row]
    assert json.loads((tmp_path / "run-log.json").read_text())["rounds"] == [row]


def test_the_server_facts_go_to_run_log_json_only_and_a_resume_keeps_the_start(
        tmp_path) -> None:
    # Prepare: a run that started on 1 May and wrote its history
    first = {**server_facts(tmp_path, resumed=False), "started": "2024-05-01T10:00:00+00:00"}
    write_history(tmp_path, ROWS, {"seed": 0}, server=first)
    history_bytes = (tmp_path / "history.json").read_bytes()
    # Execute
    resumed, fresh = server_facts(tmp_path, resumed=True), server_facts(tmp_path, resumed=False)
    write_history(tmp_path, ROWS, {"seed": 0}, server=resumed)
    # Assert: the resumed server keeps the first start; history.json does not change
    log = json.loads((tmp_path / "run-log.json").read_text())
    assert (log["started"], log["pid"], log["host"]) == (
        "2024-05-01T10:00:00+00:00", os.getpid(), socket.gethostname())
    assert fresh["started"] > "2024" and fresh["started"].endswith("+00:00")
    assert fresh["started"] != resumed["started"]
    assert (tmp_path / "history.json").read_bytes() == history_bytes
    assert server_facts(tmp_path / "none", resumed=True)["started"] > "2024-05-01T10:00"


def test_curves_png_is_written(tmp_path) -> None:
    plot_curves(tmp_path / "curves.png", ROWS, "accuracy")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_round_trip(tmp_path) -> None:
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {"round": 3, "state_dict": {"w": torch.ones(2)}})
    loaded = load_checkpoint(path)
    assert loaded["round"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_failed_write_keeps_the_last_good_checkpoint(tmp_path) -> None:
    # Prepare
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"round": 1})
    # Execute: a payload that cannot be pickled fails mid-write
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_checkpoint(path, {"round": 2, "bad": lambda: None})
    # Assert: round 1's checkpoint is intact and no temporary file is left
    assert load_checkpoint(path)["round"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_missing_checkpoint_names_the_fix(tmp_path) -> None:
    with pytest.raises(ConfigError, match="resume=true but there is no checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")


SCORED = [{"round": 0, "central-loss": 2.3, "central-acc": 0.10, "federated-acc": 0.1},
        {"round": 1, "central-loss": 0.9, "central-acc": 0.70, "federated-acc": 0.6},
        {"round": 2, "central-loss": 0.7, "central-acc": 0.68, "federated-acc": 0.8},
        {"round": 3, "central-loss": float("nan"), "central-acc": 0.70}]


@pytest.mark.parametrize(("monitor", "mode", "expected"), [
    ("", "auto", ("central-acc", "max")),
    ("central-loss", "auto", ("central-loss", "min")),
    ("federated-acc", "min", ("federated-acc", "min")),
])
def test_monitored_resolves_the_main_metric_and_the_mode(monitor, mode, expected) -> None:
    # Execute / Assert: "" is the first central metric other than the loss
    assert monitored(SCORED, monitor, mode) == expected


def test_monitored_falls_back_to_federated_then_loss() -> None:
    assert monitored([{"round": 1, "federated-acc": 0.5}]) == ("federated-acc", "max")
    assert monitored([{"round": 1, "train-loss": 0.5}]) == ("central-loss", "min")


def test_best_row_skips_round_0_and_non_finite_values_and_keeps_the_first_of_equals() -> None:
    # Round 0 and the NaN loss of round 3 never win; rounds 1 and 3 tie on accuracy: round 1
    assert best_row(SCORED, "central-acc", "max")["round"] == 1
    assert best_row(SCORED, "central-loss", "min")["round"] == 2
    assert best_row(SCORED, "federated-acc", "max")["round"] == 2
    assert best_row(SCORED, "central-f1", "max") is None
