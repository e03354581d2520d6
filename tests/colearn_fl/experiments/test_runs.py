"""``colearn runs`` and ``colearn show`` on run folders written by the real ``write_history``:
completed, failed, running, and running whose server is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from colearn_fl.cli import main
from colearn_fl.server.history import HOST, PID, STARTED, write_history

ROUND_0 = {"round": 0, "central-accuracy": 0.1, "central-loss": 2.3}


def trained(r: int, accuracy: float, loss: float, elapsed: float, **more: Any) -> dict:
    """A trained round's row as the recorder writes it (run-log.json: with wall times)."""
    return {"round": r, "local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1,
            "lr-min": 0.001, "train-loss": 0.5, "central-accuracy": accuracy,
            "central-loss": loss, "sites-sent": 2, "sites-averaged": 2, "round-s": 10.0,
            "elapsed-s": elapsed, **more}


SITES = [  # a colearn-fl site reporting its epochs, and a stock Flower site reporting nothing
    {"node-id": 7, "num-examples": 300, "epochs-run": 2, "lr-first": 0.1, "lr-last": 0.001,
     "followed": True, "site": "hospital-a", "train-loss": 0.55,
     "epochs": {"train-loss": [0.91, 0.55], "lr": [0.1, 0.001], "val-accuracy": [0.6, 0.7]}},
    {"node-id": 8, "site": None, "num-examples": 300, "train-loss": None, "followed": False},
]


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def make_run(root: Path, name: str, rows: list[dict], status: str, started: str | None,
             asked: int = 3, reason: str = "", pid: int | None = None,
             host: str | None = None, **config: Any) -> Path:
    """A run folder as the ServerApp leaves it: history files and run-log.json's head."""
    server = {STARTED: started, PID: pid or os.getpid(), HOST: host or socket.gethostname()}
    write_history(root / name, rows, {"num-server-rounds": asked, **config}, status, reason,
                  server if started else None)
    return root / name


def local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Six runs, most started a day apart, and three folders that are not readable runs."""
    make_run(tmp_path, "done", [ROUND_0, trained(1, 0.7, 0.8, 100.0, **{"site-reports": SITES}),
                                trained(2, 0.8, 0.6, 150.0), trained(3, 0.75, 0.7, 200.0)],
             "completed", "2024-05-01T10:00:00+00:00")
    make_run(tmp_path, "broke", [ROUND_0, trained(1, 0.6, 0.9, 30.0)], "failed",
             "2024-05-02T10:00:00+00:00", asked=5, reason="ColearnError: round 2: diverged",
             monitor="central-loss")
    make_run(tmp_path, "live", [ROUND_0, trained(1, 0.6, 0.9, 30.0), trained(2, 0.65, 0.8, 7200.0)],
             "running", "2024-05-03T10:00:00+00:00", asked=4)
    make_run(tmp_path, "gone", [ROUND_0, trained(1, 0.5, 1.0, 40.0)], "running",
             "2024-05-04T10:00:00+00:00", pid=dead_pid())
    make_run(tmp_path, "elsewhere", [ROUND_0], "running", "2024-04-30T10:00:00+00:00",
             pid=dead_pid(), host="another-host")
    old = make_run(tmp_path, "old", [ROUND_0, trained(1, 0.4, 1.2, 5.0)], "completed", None,
                   asked=1)
    (old / "run-log.json").unlink()  # a run from before run-log.json: its mtime orders it
    os.utime(old / "history.json", (1e9, 1e9))  # 2001
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "history.json").write_text("{not json")
    (tmp_path / "weird").mkdir()  # valid JSON, but not rows as the recorder writes them
    (tmp_path / "weird" / "history.json").write_text('{"rounds": [{"round": "one"}]}')
    (tmp_path / "not-a-run").mkdir()
    return tmp_path


def test_runs_lists_newest_first_with_status_rounds_best_and_final(runs: Path, capsys) -> None:
    # Execute
    status = main(["runs", "--output-dir", str(runs)])
    # Assert: the "running" run whose pid is gone from this host is stopped; another host's
    # stays running; the old run without a start time comes last (its file's mtime)
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    header, table, notes = lines[0], lines[1:7], lines[7:]
    assert header.split() == ["name", "status", "rounds", "metric", "best", "final", "elapsed",
                              "started"]
    assert [line.split()[0] for line in table] == ["gone", "live", "broke", "done",
                                                   "elsewhere", "old"]
    by_name = {line.split()[0]: line for line in table}
    column = {name: header.index(name) for name in header.split()}
    expected = {  # name: status, rounds, metric, best, final, elapsed
        "gone": ("stopped (server gone)", "1/3", "central-accuracy", "0.5000 (r1)", "0.5000",
                 "40.0 s"),
        "live": ("running", "2/4", "central-accuracy", "0.6500 (r2)", "0.6500", "2 h 00 min"),
        "broke": ("failed", "1/5", "central-loss", "0.9000 (r1)", "0.9000", "30.0 s"),
        "done": ("completed", "3/3", "central-accuracy", "0.8000 (r2)", "0.7500", "3 min 20 s"),
        "elsewhere": ("running", "0/3", "central-accuracy", "-", "-", "-"),
        "old": ("completed", "1/1", "central-accuracy", "0.4000 (r1)", "0.4000", "-"),
    }
    for name, cells in expected.items():
        for key, cell in zip(("status", "rounds", "metric", "best", "final", "elapsed"), cells,
                             strict=True):
            assert by_name[name][column[key]:].startswith(cell + " "), (name, key)
    assert by_name["done"].endswith(local("2024-05-01T10:00:00+00:00"))
    assert by_name["old"].endswith(" -")
    assert notes[0] == f"skipped junk: unreadable ({_json_error('{not json')})"
    assert notes[1].startswith("skipped weird: unreadable (") and len(notes) == 2


def _json_error(text: str) -> str:
    import json

    try:
        json.loads(text)
    except ValueError as error:
        return str(error)
    raise AssertionError("valid JSON")


def test_the_best_round_follows_the_runs_own_monitor_mode(tmp_path: Path, capsys) -> None:
    # Prepare: monitor central-accuracy but as min (e.g. an error rate named so)
    make_run(tmp_path, "m", [ROUND_0, trained(1, 0.7, 0.8, 1.0), trained(2, 0.6, 0.9, 2.0)],
             "completed", "2024-05-01T10:00:00+00:00", asked=2,
             **{"monitor": "central-accuracy", "monitor-mode": "min"})
    # Execute
    main(["runs", "--output-dir", str(tmp_path)])
    # Assert
    assert "0.6000 (r2)" in capsys.readouterr().out.splitlines()[1]


def test_show_prints_the_header_round_table_sites_and_paths(runs: Path, capsys) -> None:
    # Execute
    status = main(["show", "done", "--output-dir", str(runs)])
    # Assert
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    folder = (runs / "done").resolve()
    assert lines[:7] == [
        "run      done", "status   completed", "rounds   3/3",
        "monitor  central-accuracy (max): best 0.8000 at round 2, final 0.7500 (round 3)",
        "elapsed  3 min 20 s",
        f"started  {local('2024-05-01T10:00:00+00:00')} (server pid {os.getpid()} on "
        f"{socket.gethostname()})",
        f"folder   {folder}"]
    header = lines[8].split()
    assert header == ["round", "epochs", "lr", "train-loss", "central-accuracy", "central-loss",
                      "sites", "round-s"]
    assert lines[9].split() == ["0", "-", "-", "-", "0.1000", "2.3000", "-", "-"]
    assert lines[10].split() == ["1", "2", "0.1", "->", "0.001", "cosine", "0.5000", "0.7000",
                                 "0.8000", "2/2", "10.0", "s"]
    assert lines[11].split() == ["hospital-a", "epochs", "2", "lr", "0.1", "->", "0.001",
                                 "train-loss", "0.5500", "loss/epoch", "0.91", "0.55"]
    assert lines[12].split() == ["site-1", "(reported", "nothing", "of", "its", "training)"]
    assert lines[11].startswith("    ") and lines[12].startswith("    ")
    assert [line.split()[0] for line in lines[13:15]] == ["2", "3"]
    assert lines[-2:] == [f"curves   {folder / 'curves.png'}",
                          f"history  {folder / 'history.json'}"]


def test_show_says_why_a_run_stopped_or_failed_and_takes_a_path(runs: Path, capsys) -> None:
    # Execute: by path, from anywhere
    assert main(["show", str(runs / "gone"), "--output-dir", str(runs / "not-a-run")]) == 0
    assert main(["show", "broke", "--output-dir", str(runs)]) == 0
    # Assert
    out = capsys.readouterr().out
    assert "status   stopped (server gone: pid " in out
    assert "is not running on this host)" in out
    assert "status   failed (ColearnError: round 2: diverged)" in out
    assert "monitor  central-loss (min): best 0.9000 at round 1, final 0.9000 (round 1)" in out


def test_show_of_a_run_without_a_run_log_reads_history_json(runs: Path, capsys) -> None:
    assert main(["show", "old", "--output-dir", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # no start time, no wall times: history.json leaves them out
    assert "elapsed  -" in lines and not any(line.startswith("started") for line in lines)
    assert lines[9].split()[-2:] == ["2/2", "-"]


def test_an_empty_output_dir_is_one_line_and_success(tmp_path: Path, capsys) -> None:
    (tmp_path / "not-a-run").mkdir()
    assert main(["runs", "--output-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"no runs in {tmp_path} (a run appears here once its round 0 is recorded)"]


def test_a_missing_output_dir_is_an_error_naming_the_fix(tmp_path: Path, capsys) -> None:
    assert main(["runs", "--output-dir", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"colearn: error: --output-dir '{tmp_path / 'nowhere'}': no such "
                            "folder")
    assert "output-dir" in error and "colearn runs --output-dir /abs/path/outputs" in error


def test_a_run_folder_given_as_output_dir_points_to_show(runs: Path, capsys) -> None:
    assert main(["runs", "--output-dir", str(runs / "done")]) == 0
    assert capsys.readouterr().out.strip() == (f"{runs / 'done'} is a run folder itself: "
                                               f"colearn show {runs / 'done'}")


def test_show_of_an_unknown_or_unreadable_run_is_an_error(runs: Path, capsys) -> None:
    assert main(["show", "nope", "--output-dir", str(runs)]) == 2
    assert "colearn runs --output-dir DIR lists the runs" in capsys.readouterr().err
    assert main(["show", "weird", "--output-dir", str(runs)]) == 2
    assert "weird: its history cannot be read (" in capsys.readouterr().err


def test_a_real_server_run_is_listed_and_shown(tmp_path: Path, flower_identity: None,
                                               capsys) -> None:
    # Prepare: the ServerApp's own code (run_colearning) for 2 rounds against a stand-in
    # SuperLink (one site echoes the model, one answers with errors): no Ray, about 1 s
    from flwr.app import Context, RecordDict

    from colearn_fl.server.server_app import run_colearning
    from tests.colearn_fl.server.test_server_app import OneFailingSiteGrid
    from tests.tiny import TinyClassifier

    run_config = {"num-server-rounds": 2, "fraction-evaluate": 0.0, "central-eval": False,
                  "monitor": "train-loss", "output-dir": str(tmp_path), "run-name": "real"}
    run_colearning(OneFailingSiteGrid(), Context(  # type: ignore[arg-type]
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config),
        lambda raw: TinyClassifier())
    # Execute
    assert main(["runs", "--output-dir", str(tmp_path)]) == 0
    assert main(["show", "real", "--output-dir", str(tmp_path)]) == 0
    # Assert: the stand-in site reports a train-loss of 0.5 every round (its reply's metric)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:6] == ["real", "completed", "2/2", "train-loss", "0.5000", "(r1)"]
    assert "monitor  train-loss (min): best 0.5000 at round 1, final 0.5000 (round 2)" in lines
    rounds = [line.split() for line in lines if line[:1].isdigit()]
    assert [(r[0], r[-3]) for r in rounds] == [("0", "-"), ("1", "1/2"), ("2", "1/2")]
