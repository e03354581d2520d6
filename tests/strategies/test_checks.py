"""The server's one check of every reply: decoded to the global model's dtypes first, then
judged, the same with and without streaming; on hand-made replies."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)

from strategies import CoLearnSchedule, server_optimizer
from tests.strategies.test_arrays import npy
from tests.strategies.test_colearn import StaticGrid, model, reply

MALFORMED = {
    # finite as float64, inf once cast to the global model's float32
    "beyond float32": lambda: ArrayRecord({"w": Array(np.array([1.0, 4e38])),
                                           "n": Array(np.array(1))}),
    # declares (2,), holds one value (it would be broadcast into the mean)
    "short data": lambda: ArrayRecord({"w": npy(np.array([9.0], np.float32), "float32", (2,)),
                                       "n": Array(np.array(1))}),
    # declares (2,) bfloat16 words, holds one
    "short bfloat16": lambda: ArrayRecord({
        "w": Array(dtype="bfloat16", shape=(2,), stype="torch.bfloat16", data=b"\x80\x3f"),
        "n": Array(np.array(1))}),
    # an int64 counter that holds floats
    "float counter": lambda: ArrayRecord({"w": Array(np.zeros(2, np.float32)),
                                          "n": npy(np.array(2.5), "int64", ())}),
}


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_reply_is_dropped_with_and_without_streaming(
        flower_identity: None, caplog, kind: str, streaming: bool) -> None:
    # Prepare: a float32 model w=[0, 0] sent to three sites
    schedule = CoLearnSchedule(server_optimizer("fedavg"), streaming=streaming)
    list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2, 3])))
    # Execute: two good replies, one malformed
    arrays, _ = schedule.aggregate_train(1, [reply(1, model([1, 2], 2)),
                                             reply(3, MALFORMED[kind]()),
                                             reply(2, model([3, 4], 4))])
    # Assert: the mean of the good ones, (1 + 3) / 2, (2 + 4) / 2; the drop named
    np.testing.assert_array_equal(arrays["w"].numpy(), [2.0, 3.0])
    assert int(arrays["n"].numpy()) == 3
    assert schedule.rounds[1]["sites-dropped"] == 1
    assert "dropped the training reply of node 3: '" in caplog.text


def evaluation(node: int, **metrics: float | list[float]) -> Message:
    instruction = Message(RecordDict(), dst_node_id=node, message_type=MessageType.EVALUATE)
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=instruction)


def test_a_sites_nan_evaluation_metric_is_left_out_and_the_site_named(
        flower_identity: None, caplog) -> None:
    # Prepare: node 2's loss is NaN, its accuracy sensible
    schedule = CoLearnSchedule(server_optimizer("fedavg"))
    replies = [evaluation(1, **{"num-examples": 10, "loss": 0.4, "accuracy": 0.9}),
               evaluation(2, **{"num-examples": 10, "loss": float("nan"), "accuracy": 0.5}),
               evaluation(3, **{"num-examples": 20, "loss": 0.2, "accuracy": 0.7})]
    # Execute
    metrics = schedule.aggregate_evaluate(1, replies)
    # Assert: accuracy over all three, (10*0.9 + 10*0.5 + 20*0.7) / 40 = 0.7; the loss is not
    # averaged this round (not over the other two either), and node 2 is named
    assert dict(metrics) == {"accuracy": pytest.approx(0.7)}
    assert "node 2: 'loss' is nan, not a finite number; it is not averaged" in caplog.text


def test_an_evaluation_metric_sent_in_two_forms_is_left_out_not_a_crash(
        flower_identity: None, caplog) -> None:
    # Prepare: 'per-class' is a list at node 1, a number at node 2
    schedule = CoLearnSchedule(server_optimizer("fedavg"))
    replies = [evaluation(1, **{"num-examples": 10, "accuracy": 0.9, "per-class": [0.8, 1.0]}),
               evaluation(2, **{"num-examples": 30, "accuracy": 0.7, "per-class": 0.5})]
    # Execute
    metrics = schedule.aggregate_evaluate(1, replies)
    # Assert: accuracy (10*0.9 + 30*0.7) / 40 = 0.75; 'per-class' left out with its reason
    assert dict(metrics) == {"accuracy": pytest.approx(0.75)}
    assert ("metric 'per-class' is not averaged: sent as a list of 2 by some sites and as a "
            "number by others") in caplog.text


def training(node: int, w: list[float], **metrics: float | list[float]) -> Message:
    msg = reply(node, model(w, 0))
    msg.content["metrics"] = MetricRecord({"num-examples": 1, "train-loss": 0.5, **metrics})
    return msg


@pytest.mark.parametrize("streaming", [True, False])
def test_training_metrics_in_two_forms_or_not_finite_never_cost_a_model(
        flower_identity: None, streaming: bool) -> None:
    # Prepare
    schedule = CoLearnSchedule(server_optimizer("fedavg"), streaming=streaming)
    list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    # Execute: 'per-class' a list and a number; node 2's 'accuracy' NaN
    arrays, metrics = schedule.aggregate_train(1, [
        training(1, [1, 2], **{"per-class": [0.8, 1.0], "accuracy": 0.9}),
        training(2, [3, 4], **{"per-class": 0.5, "accuracy": float("nan")})])
    # Assert: both models averaged; only train-loss averaged
    np.testing.assert_array_equal(arrays["w"].numpy(), [2.0, 3.0])
    assert dict(metrics) == {"train-loss": pytest.approx(0.5)}
    assert schedule.rounds[1]["sites-averaged"] == 2
