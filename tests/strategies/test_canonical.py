"""Canonical reply order: the same replies, in any arrival order, give the same average bit
for bit (``deterministic``); in arrival order they need not."""

from __future__ import annotations

import itertools

import numpy as np
from flwr.app import ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from strategies import CoLearnSchedule
from strategies.canonical import canonical_order, reply_key
from tests.strategies.test_colearn import StaticGrid, model, reply

# 2^30 + 2^-30 needs 61 bits: float64 rounds it to 2^30. So (2^30 + 2^-30) - 2^30 = 0 while
# (2^30 - 2^30) + 2^-30 = 2^-30: the sum depends on the order of the terms.
BIG, SMALL = 2.0**30, 2.0**-30


def _replies() -> list[Message]:
    return [reply(1, model([BIG, 1.0], 1)), reply(2, model([SMALL, 2.0], 2)),
            reply(3, model([-BIG, 3.0], 3))]


def _averages(deterministic: bool, streaming: bool) -> set[bytes]:
    """The averaged ``w`` (as bytes) over every arrival order of the three replies."""
    seen = set()
    for order in itertools.permutations(range(3)):
        schedule = CoLearnSchedule(FedAvg(), deterministic=deterministic, streaming=streaming)
        list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(),
                                      StaticGrid([1, 2, 3])))
        replies = _replies()
        arrays, _ = schedule.aggregate_train(1, iter([replies[i] for i in order]))
        seen.add(arrays["w"].numpy().tobytes())
    return seen


def test_every_arrival_order_gives_the_same_average_when_deterministic(
        flower_identity: None) -> None:
    # Execute: the 6 arrival orders, streaming and one-shot, deterministic on and off
    exact = {streaming: _averages(True, streaming) for streaming in (True, False)}
    arrival = _averages(False, True)
    # Assert: one result per mode when deterministic; arrival order gives more than one (so
    # the test would notice if the canonical order were dropped)
    assert len(exact[True]) == 1 and len(exact[False]) == 1
    assert len(arrival) > 1


def test_the_order_depends_on_the_content_only(flower_identity: None) -> None:
    # Prepare: the same replies from other nodes (Flower draws node ids at random), an error
    error = Message(Error(code=1, reason="site crashed"), reply_to=Message(
        RecordDict(), dst_node_id=9, message_type="train"))
    first, second = _replies(), [reply(40 + i, m.content["arrays"])
                                 for i, m in enumerate(_replies())]
    # Execute
    ordered = canonical_order([*reversed(first)])
    renamed = canonical_order([second[1], second[0], second[2]])
    # Assert: the same order by content, whoever sent them; the key sees values and metrics
    assert [m.content["arrays"]["w"].numpy().tobytes() for m in ordered] == \
        [m.content["arrays"]["w"].numpy().tobytes() for m in renamed]
    assert reply_key(first[0]) != reply_key(reply(1, model([BIG, 1.0], 2)))
    changed = reply(1, model([BIG, 1.0], 1))
    changed.content["metrics"] = MetricRecord({"num-examples": 2, "train-loss": 0.5})
    assert reply_key(first[0]) != reply_key(changed)
    assert reply_key(error)[0] == 1 and reply_key(first[0])[0] == 0


def test_federated_metrics_do_not_depend_on_arrival_order(flower_identity: None) -> None:
    # Prepare: evaluation replies whose losses sum differently in different orders
    def evaluation(node: int, loss: float) -> Message:
        instruction = Message(RecordDict(), dst_node_id=node, message_type="evaluate")
        return Message(RecordDict({"metrics": MetricRecord(
            {"num-examples": 1, "loss": loss})}), reply_to=instruction)

    losses = [(1, BIG), (2, SMALL), (3, -BIG)]
    seen = set()
    for order in itertools.permutations(losses):
        schedule = CoLearnSchedule(FedAvg())
        # Execute
        metrics = schedule.aggregate_evaluate(1, [evaluation(*pair) for pair in order])
        seen.add(float(np.float64(metrics["loss"])).hex())
    # Assert
    assert len(seen) == 1
