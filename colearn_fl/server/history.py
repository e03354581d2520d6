"""Round history -> ``history.json`` + ``history.csv`` + ``run-log.json`` (the plots are in
``colearn_fl.server.plots``).

A history is a list of flat rows, one per round (round 0 is the initial model's central
evaluation). Keys are kebab-case; metric keys are prefixed ``federated-`` (the sites' weighted
average) or ``central-`` (the server's test split).

``history.json`` and ``history.csv`` hold what the seed and the run config determine, so a
rerun writes the same bytes (see ``deterministic``). What differs from run to run even when
the results do not (wall times ``RUN_DEPENDENT``, the sites' error texts, Flower's node ids,
which it draws at random) is in ``run-log.json``, which holds the full rows.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
RUN_LOG_JSON = "run-log.json"
# Row keys kept out of history.json (run-log.json has them): they differ between reruns.
RUN_DEPENDENT = ("round-s", "elapsed-s", "errors", "evaluation-errors")
NODE_ID = "node-id"  # Flower's id of a site's node: random per simulation
# run-log.json's head only: when the run first started (ISO 8601, UTC) and the server
# process writing it, so ``colearn runs`` can tell a running run from one whose server died.
STARTED, PID, HOST = "started", "pid", "host"

Row = dict[str, Any]


# history.json's status: running while rounds remain, then how the run ended. ``stopped``:
# interrupted (Ctrl-C, ``flwr stop``); ``budget spent``: the DP budget (dp-target-epsilon) would
# be exceeded by the next round, so the run ended early with the last model kept.
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
STOPPED, BUDGET_SPENT = "stopped", "budget spent"


def write_history(folder: Path, rows: Sequence[Row], run_config: dict[str, Any],
                  status: str = RUNNING, reason: str = "",
                  server: dict[str, Any] | None = None) -> None:
    """Write ``history.json`` (status, rows, run config), ``history.csv`` (one line per
    round) and ``run-log.json`` (the same with the run-dependent facts: ``reproducible``).

    ``status`` is ``running`` while rounds remain, then ``completed``, or ``failed``,
    ``stopped`` or ``budget spent`` (with ``reason``). ``server`` (``server_facts``) goes to
    run-log.json's head only. Non-finite numbers are written as ``null``, so the file is
    valid JSON for every reader. The CSV holds the scalar columns; lists (e.g.
    ``site-reports``, what each site did) are in the JSON only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ended = {"status": status, **({"reason": reason} if reason else {})}
    head = {**ended, "run-config": run_config}
    _write_json(folder / RUN_LOG_JSON,
                {**ended, **(server or {}), "run-config": run_config, "rounds": list(rows)})
    rows = [reproducible(row) for row in rows]
    _write_json(folder / HISTORY_JSON, {**head, "rounds": rows})
    columns: list[str] = []
    for row in rows:
        columns += [k for k, v in row.items()
                    if k not in columns and not isinstance(v, (list, dict))]
    columns.sort(key=_column_rank)
    with (folder / HISTORY_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def reproducible(row: Row) -> Row:
    """``row`` without what changes from run to run when the results do not: the
    ``RUN_DEPENDENT`` keys and every ``node-id`` in its lists of site records."""
    return {k: _without_node_ids(v) for k, v in row.items() if k not in RUN_DEPENDENT}


def _without_node_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_node_ids(v) for k, v in value.items() if k != NODE_ID}
    if isinstance(value, list):
        return [_without_node_ids(v) for v in value]
    return value


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a reader (``colearn runs`` during a run) never sees half a file."""
    text = json.dumps(_finite(payload), indent=2, default=float, allow_nan=False)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text + "\n")
    os.replace(partial, path)


def server_facts(folder: Path, resumed: bool) -> dict[str, Any]:
    """run-log.json's facts about the server: ``started`` (now, or for a ``resumed`` run the
    first start its run-log.json recorded), and this process's ``pid`` and ``host``."""
    started = None
    if resumed:
        try:
            started = json.loads((folder / RUN_LOG_JSON).read_text()).get(STARTED)
        except (OSError, ValueError):  # an older run's log, or none: the start is unknown
            started = None
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {STARTED: started or now, PID: os.getpid(), HOST: socket.gethostname()}


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (nested in dicts and lists) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_status(folder: Path) -> tuple[str, str]:
    """The (status, reason) ``history.json`` in ``folder`` records."""
    payload = json.loads((folder / HISTORY_JSON).read_text())
    return payload.get("status", ""), payload.get("reason", "")


_COLUMN_ORDER = ("round", "local-epochs", "lr-schedule", "lr-max", "lr-min", "train-loss",
                 "federated-", "central-", "sites-", "model-bytes", "bytes-")


def _column_rank(column: str) -> int:
    """CSV columns: round and schedule, losses, metrics, sites, bytes; others last."""
    for rank, prefix in enumerate(_COLUMN_ORDER):
        if column == prefix or (prefix.endswith("-") and column.startswith(prefix)):
            return rank
    return len(_COLUMN_ORDER)


def read_history(folder: Path) -> list[Row]:
    """The full rows of the run in ``folder`` (``run-log.json``: with wall times, errors and
    node ids; ``history.json`` when a run left no log)."""
    path = folder / RUN_LOG_JSON
    return list(json.loads((path if path.exists() else folder / HISTORY_JSON).read_text())
                ["rounds"])




def main_metric(row: Row) -> str:
    """The run's main metric in ``row``: the first central metric other than the loss, else
    the first federated one, else ``loss`` (without its prefix)."""
    for prefix in ("central-", "federated-"):
        for key in row:
            if key.startswith(prefix) and not key.endswith("loss"):
                return key.removeprefix(prefix)
    return "loss"


def monitored(rows: Sequence[Row], monitor: str = "", mode: str = "auto") -> tuple[str, str]:
    """The history column the best round is judged by, and ``min`` or ``max``.

    ``monitor`` (the run config's ``monitor``) names it; ``""`` means the main metric
    (``main_metric``), central when the rows hold it, else federated. ``mode`` ``auto`` means
    ``min`` for a name ending in ``loss`` or ``error``, else ``max``.
    """
    key = monitor
    if not key:
        last = rows[-1] if rows else {}
        metric = main_metric(last)
        key = next((f"{p}{metric}" for p in ("central-", "federated-") if f"{p}{metric}" in last),
                   f"central-{metric}")
    if mode == "auto":
        mode = "min" if key.endswith(("loss", "error")) else "max"
    return key, mode


def best_row(rows: Sequence[Row], key: str, mode: str) -> Row | None:
    """The trained round (round >= 1) whose finite ``key`` is best under ``mode`` (the first
    of equals); ``None`` when no such round recorded it."""
    scored = [r for r in rows if r.get("round", 0) >= 1 and isinstance(r.get(key), (int, float))
              and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda r: r[key])
