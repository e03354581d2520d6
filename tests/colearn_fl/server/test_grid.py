"""ResponsiveGrid: replies collected as they arrive, bounded by the timeout."""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from colearn_fl.server.grid import ResponsiveGrid


class SlowRepliesGrid:
    """Answers message i after ``delays[i]`` seconds (a stand-in for the SuperLink)."""

    def __init__(self, delays: list[float]) -> None:
        self.delays, self.pulls, self.sent = delays, 0, []

    def push_messages(self, messages):
        self.start = time.monotonic()
        self.sent = list(messages)
        for i, msg in enumerate(self.sent):
            msg.metadata.__dict__["_message_id"] = f"m{i}"
        return [m.metadata.message_id for m in self.sent]

    def pull_messages(self, message_ids):
        self.pulls += 1
        elapsed = time.monotonic() - self.start
        return [Message(RecordDict(), reply_to=m) for i, m in enumerate(self.sent)
                if m.metadata.message_id in set(message_ids) and elapsed >= self.delays[i]]


def messages(n: int) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=i + 1, message_type=MessageType.TRAIN)
            for i in range(n)]


def test_replies_are_collected_soon_after_the_last_one(flower_identity: None) -> None:
    # Prepare
    inner = SlowRepliesGrid([0.1, 0.3])
    grid = ResponsiveGrid(inner, first_poll_s=0.02, max_poll_s=0.1)
    # Execute
    start = time.monotonic()
    replies = list(grid.send_and_receive(messages(2), timeout=10))
    waited = time.monotonic() - start
    # Assert: both replies, and well under flwr's fixed 3 s poll
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m0", "m1"]
    assert 0.3 <= waited < 0.6


def test_timeout_returns_what_arrived(flower_identity: None) -> None:
    inner = SlowRepliesGrid([0.0, 60.0])
    replies = list(ResponsiveGrid(inner, first_poll_s=0.02).send_and_receive(messages(2),
                                                                             timeout=0.3))
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0"]


def test_streaming_aggregation_leaves_out_the_reply_after_the_timeout(
        flower_identity: None) -> None:
    # Prepare: sites 1 and 2 answer at once with w=[1, 1] and [3, 3], site 3 after 60 s
    from flwr.serverapp.strategy import FedAvg

    from strategies import CoLearnSchedule
    from tests.strategies.test_colearn import StaticGrid, model, reply

    class ModelReplies(SlowRepliesGrid):
        def pull_messages(self, message_ids):
            elapsed, wanted = time.monotonic() - self.start, set(message_ids)
            return [Message(reply(0, model([2 * i + 1] * 2, 0)).content, reply_to=m)
                    for i, m in enumerate(self.sent)
                    if m.metadata.message_id in wanted and elapsed >= self.delays[i]]

    schedule = CoLearnSchedule(FedAvg())
    sent = list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(),
                                         StaticGrid([1, 2, 3])))
    grid = ResponsiveGrid(ModelReplies([0.0, 0.0, 60.0]), first_poll_s=0.02)
    # Execute: the replies stream in until the 0.3 s timeout
    start = time.monotonic()
    arrays, _ = schedule.aggregate_train(1, grid.send_and_receive(sent, timeout=0.3))
    # Assert: the mean of the two punctual sites, within about the timeout
    assert schedule.streaming and schedule.rounds[1]["sites-averaged"] == 2
    assert list(arrays["w"].numpy()) == [2.0, 2.0]
    assert time.monotonic() - start < 1.0
