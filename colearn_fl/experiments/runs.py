"""``colearn runs`` and ``colearn show``: the runs in an output-dir, and one run round by round.

Both read what the ServerApp writes to ``<output-dir>/<run-name>/`` (``run-log.json``, which
has the wall times, else ``history.json``) and return lines of text. They read runs that
completed, failed or were stopped, and runs still going: the files are replaced whole after
every round. A run whose history still says ``running`` although its server process is gone
(killed, its machine rebooted) is shown as ``stopped (server gone)``; the check can only see
processes of this host, so a run written by another host's server keeps its ``running``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError
from colearn_fl.server.history import (
    HISTORY_JSON,
    HOST,
    PID,
    RUN_LOG_JSON,
    RUNNING,
    STARTED,
    STOPPED,
    Row,
    best_row,
    monitored,
)
from colearn_fl.server.plots import CURVES_PNG

SERVER_GONE = "server gone"  # the note on a "running" run whose server process is not alive
# What a run file that is not JSON, or whose rows are not as the recorder writes them (an
# edited file, another tool's), raises while it is read and rendered: that run is skipped.
UNREADABLE = (OSError, ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class Run:
    """One run folder as read: the file's head (status, reason, started, pid, host, run
    config), its rows, and when it started (seconds since the epoch; else the file's mtime)."""

    folder: Path
    head: dict[str, Any]
    rows: list[Row]
    when: float

    @property
    def config(self) -> dict[str, Any]:
        return self.head.get("run-config") or {}

    def status(self) -> tuple[str, str]:
        """(status, note): ``running`` whose server is gone from this host is ``stopped``."""
        status = str(self.head.get("status", "") or "?")
        pid, host = self.head.get(PID), self.head.get(HOST)
        if (status == RUNNING and isinstance(pid, int) and host == socket.gethostname()
                and not alive(pid)):
            return STOPPED, SERVER_GONE
        return status, ""

    def progress(self) -> str:
        """Rounds done of those asked, e.g. ``3/5``."""
        done = max((int(r.get("round", 0)) for r in self.rows), default=0)
        asked = self.config.get("num-server-rounds", RunConfig.defaults()["num-server-rounds"])
        return f"{done}/{asked}"

    def monitor(self) -> tuple[str, str, Row | None, Row | None]:
        """The monitored column and its mode (the run's own ``monitor``/``monitor-mode``),
        the best trained round and the last trained round."""
        key, mode = monitored(self.rows, str(self.config.get("monitor", "") or ""),
                              str(self.config.get("monitor-mode", "auto") or "auto"))
        trained = [r for r in self.rows if r.get("round", 0) >= 1]
        return key, mode, best_row(self.rows, key, mode), trained[-1] if trained else None


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def is_run(folder: Path) -> bool:
    return (folder / RUN_LOG_JSON).is_file() or (folder / HISTORY_JSON).is_file()


def read_run(folder: Path) -> Run:
    """The run in ``folder``; ``ValueError`` or ``OSError`` when its file cannot be read."""
    path = folder / RUN_LOG_JSON if (folder / RUN_LOG_JSON).is_file() else folder / HISTORY_JSON
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or not isinstance(payload.get("rounds"), list):
        raise ValueError(f"{path.name} holds no list of rounds")
    rows = [r for r in payload["rounds"] if isinstance(r, dict)]
    head = {k: v for k, v in payload.items() if k != "rounds"}
    started = _started(head.get(STARTED))
    return Run(folder, head, rows, started.timestamp() if started else path.stat().st_mtime)


def runs_lines(output_dir: Path) -> list[str]:
    """``colearn runs``: one aligned line per run in ``output_dir``, newest first, then a
    note per folder that could not be read. A ``ColearnError`` when the folder is missing."""
    if not output_dir.is_dir():
        raise ColearnError(
            f"--output-dir {str(output_dir)!r}: no such folder. Runs go to the run config's "
            "output-dir (default 'outputs'; a relative one resolves against the folder the "
            "SuperLink was started in): pass that folder, e.g. colearn runs --output-dir "
            "/abs/path/outputs.")
    if is_run(output_dir):
        return [f"{output_dir} is a run folder itself: colearn show {output_dir}"]
    runs: list[tuple[float, list[str]]] = []
    notes = []
    for folder in sorted(p for p in output_dir.iterdir() if p.is_dir() and is_run(p)):
        try:
            run = read_run(folder)
            runs.append((run.when, _run_cells(run)))
        except UNREADABLE as error:
            notes.append(f"skipped {folder.name}: unreadable ({error})")
    if not runs and not notes:
        return [f"no runs in {output_dir} (a run appears here once its round 0 is recorded)"]
    table = [["name", "status", "rounds", "metric", "best", "final", "elapsed", "started"]]
    table += [cells for _, cells in sorted(runs, key=lambda run: run[0], reverse=True)]
    return (_aligned(table) if runs else []) + notes


def _run_cells(run: Run) -> list[str]:
    status, note = run.status()
    key, _, best, final = run.monitor()
    last = run.rows[-1] if run.rows else {}
    return [run.folder.name, f"{status} ({note})" if note else status, run.progress(), key,
            f"{_num(best[key])} (r{best['round']})" if best else "-",
            _num(final.get(key)) if final else "-", _duration(last.get("elapsed-s")),
            _local(run.head.get(STARTED))]


def find_run(run: str, output_dir: Path) -> Path:
    """``run``: a folder name under ``output_dir``, or a run folder's path."""
    for folder in (output_dir / run, Path(run)):
        if folder.is_dir() and is_run(folder):
            return folder.resolve()
    raise ColearnError(
        f"run {run!r}: neither {output_dir / run} nor {run} is a run folder (one holding "
        f"{HISTORY_JSON} or {RUN_LOG_JSON}). colearn runs --output-dir DIR lists the runs "
        "in DIR; pass one of their names, or a run folder's path.")


def show_lines(run: str, output_dir: Path) -> list[str]:
    """``colearn show``: the run's header, its round table with one line per site under each
    round, and the paths of its curves and history."""
    folder = find_run(run, output_dir)
    try:
        record = read_run(folder)
        table = _aligned(_round_table(record.rows))
        lines = [*_header(record), "", table[0]]
        for row, line in zip(record.rows, table[1:], strict=True):
            sites = [_site_cells(i, s) for i, s in enumerate(row.get("site-reports") or [])
                     if isinstance(s, dict)]
            lines += [line, *("    " + site for site in _aligned(sites))]
    except UNREADABLE as error:
        raise ColearnError(f"run folder {folder}: its history cannot be read ({error}); "
                           f"{HISTORY_JSON} and {RUN_LOG_JSON} are JSON files to inspect "
                           "by hand.") from None
    return [*lines, "", f"curves   {folder / CURVES_PNG}", f"history  {folder / HISTORY_JSON}"]


def _header(run: Run) -> list[str]:
    status, note = run.status()
    if note:
        note = f"{note}: pid {run.head.get(PID)} is not running on this host"
    said = note or str(run.head.get("reason", "") or "")
    key, mode, best, final = run.monitor()
    started, pid, host = run.head.get(STARTED), run.head.get(PID), run.head.get(HOST)
    last = run.rows[-1] if run.rows else {}
    lines = [f"run      {run.folder.name}", f"status   {status}" + (f" ({said})" if said else ""),
             f"rounds   {run.progress()}",
             f"monitor  {key} ({mode}): best "
             + (f"{_num(best[key])} at round {best['round']}" if best else "-")
             + (f", final {_num(final.get(key))} (round {final['round']})" if final else ""),
             f"elapsed  {_duration(last.get('elapsed-s'))}"]
    if started:
        lines.append(f"started  {_local(started)}"
                     + (f" (server pid {pid} on {host})" if pid is not None else ""))
    return [*lines, f"folder   {run.folder}"]


def _round_table(rows: list[Row]) -> list[list[str]]:
    """The header and one line per round: schedule, train loss, metrics, sites, wall time."""
    metrics: list[str] = []
    for prefix in ("central-", "federated-"):  # central first: the run's main metric
        for row in rows:
            metrics += [k for k, v in row.items() if k.startswith(prefix) and k not in metrics
                        and not isinstance(v, (list, dict))]
    table = [["round", "epochs", "lr", "train-loss", *metrics, "sites", "round-s"]]
    for row in rows:
        lr = (f"{_num(row.get('lr-max'), '.4g')} -> {_num(row.get('lr-min'), '.4g')} "
              f"{row.get('lr-schedule', '')}".strip() if "lr-max" in row else "-")
        sites = (f"{row.get('sites-averaged', 0)}/{row['sites-sent']}"
                 if "sites-sent" in row else "-")
        table.append([str(row.get("round", "?")), str(row.get("local-epochs", "-")), lr,
                      _num(row.get("train-loss")), *(_num(row.get(k)) for k in metrics),
                      sites, _duration(row.get("round-s"))])
    return table


def _site_cells(index: int, report: dict[str, Any]) -> list[str]:
    """One site's round: name, epochs run, LR first -> last, train loss, loss per epoch."""
    cells = [str(report.get("site") or f"site-{index}")]
    if "epochs-run" in report:
        cells.append(f"epochs {report['epochs-run']}")
    if "lr-first" in report or "lr-last" in report:
        cells.append(f"lr {_num(report.get('lr-first'), '.4g')} -> "
                     f"{_num(report.get('lr-last'), '.4g')}")
    if _num(report.get("train-loss")) != "-":  # None: the site did not report it
        cells.append(f"train-loss {_num(report['train-loss'])}")
    epochs = report.get("epochs")
    losses = epochs.get("train-loss") if isinstance(epochs, dict) else None
    if isinstance(losses, list) and losses:
        cells.append("loss/epoch " + " ".join(_num(v, ".3g") for v in losses))
    if len(cells) == 1:
        cells.append("(reported nothing of its training)")
    elif report.get("followed") is False:
        cells.append("(did not follow the schedule)")
    return cells


def _aligned(table: list[list[str]]) -> list[str]:
    """Each column padded to its widest cell, two spaces apart."""
    widths: dict[int, int] = {}
    for cells in table:
        for i, cell in enumerate(cells):
            widths[i] = max(widths.get(i, 0), len(cell))
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
            for cells in table]


def _num(value: Any, spec: str = ".4f") -> str:
    """A number as ``spec``, ``-`` when absent or not a number (a non-finite one is null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return format(value, spec)


def _duration(seconds: Any) -> str:
    """Seconds as people read them: ``8.2 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _started(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _local(text: Any) -> str:
    """An ISO 8601 time as this machine's local time, to the minute; ``-`` when unknown."""
    started = _started(text)
    return started.astimezone().strftime("%Y-%m-%d %H:%M") if started else "-"
