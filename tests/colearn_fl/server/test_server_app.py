"""run_colearning and faults: a site that never replies is left out after round-timeout."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flwr.app import Context, Error, Message, MetricRecord, RecordDict
from flwr.supercore.run import RunNotRunningException

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.server.server_app import run_colearning
from tests.tiny import TinyClassifier


class OneSilentSiteGrid:
    """Nodes 1 and 2 are connected; node 1 echoes the model it gets, node 2 never replies.

    A stand-in for the SuperLink with a site that is alive (so the SuperLink never reports it
    offline) but stuck: only the server's round-timeout ends its rounds.
    """

    def __init__(self) -> None:
        self.pushed: list[Message] = []

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{len(self.pushed)}"
            self.pushed.append(msg)
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        return [self._reply(m) for m in self.pushed
                if m.metadata.message_id in wanted and m.metadata.dst_node_id == 1]

    @staticmethod
    def _reply(msg: Message) -> Message:
        if msg.metadata.message_type == "query.data_check":
            return Message(RecordDict({"metrics": MetricRecord({"train-examples": 10})}),
                           reply_to=msg)
        metrics = MetricRecord({"num-examples": 10, "train-loss": 0.5})
        return Message(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}),
                       reply_to=msg)


def test_round_timeout_ends_rounds_with_the_sites_that_replied(
    tmp_path: Path, flower_identity: None
) -> None:
    # Prepare: 2 rounds, each phase bounded by 0.5 s; federated evaluation and central
    # evaluation off (training is the phase under test)
    run_config = {"num-server-rounds": 2, "round-timeout": 0.5, "fraction-evaluate": 0.0,
                  "central-eval": False, "output-dir": str(tmp_path), "run-name": "t"}
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    grid = OneSilentSiteGrid()
    # Execute
    start = time.monotonic()
    run_colearning(grid, context, lambda raw: TinyClassifier())  # type: ignore[arg-type]
    waited = time.monotonic() - start
    # Assert: both rounds sent to both sites, averaged the one that replied, and ended by
    # the timeout rather than Flower's default hour
    rows = json.loads((tmp_path / "t" / "history.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert [(row["sites-sent"], row["sites-averaged"]) for row in rows[1:]] == [(2, 1), (2, 1)]
    assert 1.0 <= waited < 30


class OneFailingSiteGrid(OneSilentSiteGrid):
    """Node 2 answers every training message with an error reply, as the SuperLink does for
    a node that stopped heartbeating; node 1 echoes the model."""

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        return [self._reply(m) if m.metadata.dst_node_id == 1
                or m.metadata.message_type == "query.data_check"
                else Message(Error(5, "Error: Node Unavailable (test)"), reply_to=m)
                for m in self.pushed if m.metadata.message_id in wanted]


def test_a_failed_sites_reason_is_kept_in_the_run_log_only(
    tmp_path: Path, flower_identity: None
) -> None:
    # Prepare
    run_config = {"num-server-rounds": 1, "fraction-evaluate": 0.0, "central-eval": False,
                  "output-dir": str(tmp_path), "run-name": "t"}
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    # Execute
    run_colearning(OneFailingSiteGrid(), context,  # type: ignore[arg-type]
                   lambda raw: TinyClassifier())
    # Assert: run-log.json names the failure; history.json (what a rerun reproduces) does not
    logged = json.loads((tmp_path / "t" / "run-log.json").read_text())["rounds"]
    rows = json.loads((tmp_path / "t" / "history.json").read_text())["rounds"]
    assert (logged[1]["sites-failed"], logged[1]["sites-averaged"]) == (1, 1)
    assert logged[1]["errors"] == ["Error: Node Unavailable (test)"]
    assert "errors" not in logged[0] and all("errors" not in row for row in rows)


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_round_timeout_must_be_positive_and_finite(value: float) -> None:
    with pytest.raises(ConfigError, match=r"round-timeout=.*: must be a finite number of "
                                          r"seconds > 0"):
        RunConfig.from_dict({"round-timeout": value})


class InterruptedGrid(OneFailingSiteGrid):
    """Round 2's replies never come: pulling them raises ``interruption`` (Ctrl-C's
    KeyboardInterrupt, flwr stop's exception, or an unexpected error)."""

    def __init__(self, interruption: BaseException) -> None:
        super().__init__()
        self.interruption = interruption

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        if sum(m.metadata.message_type == "train" for m in self.pushed) > 2:
            raise self.interruption
        return super().pull_messages(message_ids)


@pytest.mark.parametrize(("interruption", "status", "reason"), [
    (KeyboardInterrupt(), "stopped", "KeyboardInterrupt"),
    (SystemExit(1), "stopped", "SystemExit: 1"),
    (asyncio.CancelledError(), "stopped", "CancelledError"),
    (RunNotRunningException(), "stopped", "RunNotRunningException"),  # flwr stop
    (RuntimeError("disk gone"), "failed", "RuntimeError: disk gone"),
])
def test_an_interrupted_run_is_recorded_as_stopped_and_an_error_as_failed(
    tmp_path: Path, flower_identity: None, interruption: BaseException, status: str,
    reason: str,
) -> None:
    # Prepare
    run_config = {"num-server-rounds": 3, "fraction-evaluate": 0.0, "central-eval": False,
                  "output-dir": str(tmp_path), "run-name": "t"}
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    # Execute
    with pytest.raises(type(interruption)):
        run_colearning(InterruptedGrid(interruption), context,  # type: ignore[arg-type]
                       lambda raw: TinyClassifier())
    # Assert: round 1 kept; history.json says how it ended; run-log.json names this server
    history = json.loads((tmp_path / "t" / "history.json").read_text())
    assert (history["status"], history["reason"]) == (status, reason)
    assert [row["round"] for row in history["rounds"]] == [0, 1]
    head = json.loads((tmp_path / "t" / "run-log.json").read_text())
    assert (head["pid"], head["host"]) == (os.getpid(), socket.gethostname())
    started = datetime.fromisoformat(head["started"])
    assert timedelta(0) <= datetime.now(UTC) - started < timedelta(minutes=5)
    assert not {"started", "pid", "host"} & set(history)
