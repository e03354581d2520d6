"""CoLearn: the schedule it sends, and averaging on tiny hand-computed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)

from strategies import CoLearn, ScheduleError


class StaticGrid:
    """The two Grid calls FedAvg's sampling makes, over a fixed set of node ids."""

    def __init__(self, node_ids: list[int]) -> None:
        self.node_ids = node_ids

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)


def model(w: list[float], n: int, dtype: str = "float32") -> ArrayRecord:
    return ArrayRecord({"w": Array(np.array(w, dtype=dtype)), "n": Array(np.array(n))})


def reply(node: int, arrays: ArrayRecord | None, examples: float = 1) -> Message:
    instruction = Message(RecordDict(), dst_node_id=node, message_type=MessageType.TRAIN)
    content = RecordDict({"metrics": MetricRecord({"num-examples": examples, "train-loss": 0.5})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content, reply_to=instruction)


@pytest.fixture
def strategy(flower_identity: None) -> CoLearn:
    # Prepare: a strategy that has sent round 1 of the global model w=[0, 0], n=0.
    colearn = CoLearn(lr_max=0.1, lr_min=0.001, epochs_initial=1, epochs_mult=2.0)
    list(colearn.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    return colearn


def test_configure_train_sends_the_round_schedule(flower_identity: None) -> None:
    # Prepare
    colearn = CoLearn(lr_schedule="triangular2", lr_max=0.1, lr_min=0.0, epochs_initial=1,
                      epochs_mult=2.0)
    # Execute
    messages = list(colearn.configure_train(3, model([0, 0], 0), ConfigRecord({"x": 1}),
                                            StaticGrid([1, 2, 3])))
    # Assert: round 3 -> 4 epochs, amplitude halved twice
    assert sorted(m.metadata.dst_node_id for m in messages) == [1, 2, 3]
    config = dict(messages[0].content["config"])
    assert config == {"x": 1, "server-round": 3, "local-epochs": 4,
                      "lr-schedule": "triangular2", "lr-max": pytest.approx(0.025), "lr-min": 0.0}


def test_round_offset_continues_the_schedule(flower_identity: None) -> None:
    colearn = CoLearn(epochs_initial=1, epochs_mult=2.0, round_offset=2)
    grid = StaticGrid([1, 2])
    messages = list(colearn.configure_train(1, model([0, 0], 0), ConfigRecord(), grid))
    config = messages[0].content["config"]
    assert (config["server-round"], config["local-epochs"]) == (3, 4)


def test_weighted_average_keeps_int_buffer_dtype(strategy: CoLearn) -> None:
    # Execute: weights 1 and 3
    arrays, metrics = strategy.aggregate_train(1, [
        reply(1, model([1, 2], 2), examples=1),
        reply(2, model([4, 8], 5), examples=3),
    ])
    # Assert: w = (1*[1,2] + 3*[4,8]) / 4 = [3.25, 6.5]; n = (2 + 15) / 4 = 4.25 -> 4
    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), [3.25, 6.5])
    assert arrays["w"].dtype == "float32"
    assert arrays["n"].dtype == "int64" and arrays["n"].shape == ()
    assert int(arrays["n"].numpy()) == 4
    assert metrics is not None and metrics["train-loss"] == pytest.approx(0.5)
    assert strategy.rounds[1]["sites-averaged"] == 2
    # bytes: two copies down, two up, each the serialized size of w (float32 x2) and n (int64)
    assert strategy.rounds[1]["bytes-sent"] == 2 * strategy.rounds[1]["model-bytes"]
    assert strategy.rounds[1]["bytes-received"] == 2 * strategy.rounds[1]["model-bytes"]


BAD_REPLIES = {
    "nan": lambda: reply(3, model([np.nan, 0], 1)),
    "inf": lambda: reply(3, model([np.inf, 0], 1)),
    "missing key": lambda: reply(3, ArrayRecord({"w": Array(np.zeros(2, np.float32))})),
    "extra key": lambda: reply(3, ArrayRecord({**model([0, 0], 0), "z": Array(np.zeros(1))})),
    "shape": lambda: reply(3, model([0, 0, 0], 1)),
    "int dtype": lambda: reply(3, ArrayRecord({"w": Array(np.zeros(2, np.float32)),
                                               "n": Array(np.array(1.0))})),
    "no examples": lambda: reply(3, model([0, 0], 1), examples=0),
    "no arrays": lambda: reply(3, None),
}


@pytest.mark.parametrize("kind", sorted(BAD_REPLIES))
def test_bad_reply_is_dropped_never_averaged(strategy: CoLearn, kind: str) -> None:
    # Execute: two good replies with equal weight and one bad one
    arrays, _ = strategy.aggregate_train(1, [
        reply(1, model([1, 2], 2)), BAD_REPLIES[kind](), reply(2, model([3, 4], 4)),
    ])
    # Assert: the average of the good ones only
    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), [2.0, 3.0])
    assert int(arrays["n"].numpy()) == 3
    assert strategy.rounds[1]["sites-dropped"] == 1


def test_error_replies_are_skipped(strategy: CoLearn) -> None:
    instruction = Message(RecordDict(), dst_node_id=9, message_type=MessageType.TRAIN)
    failed = Message(Error(code=1, reason="site crashed"), reply_to=instruction)
    arrays, _ = strategy.aggregate_train(1, [reply(1, model([1, 2], 2)), failed])
    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), [1.0, 2.0])
    assert strategy.rounds[1]["sites-failed"] == 1


def test_all_replies_bad_gives_no_new_model(strategy: CoLearn) -> None:
    arrays, metrics = strategy.aggregate_train(1, [reply(1, model([np.nan, 0], 1))])
    assert arrays is None and metrics is None


def test_fedavg_is_colearn_configured_constant_and_fixed(flower_identity: None) -> None:
    fedavg = CoLearn(lr_schedule="constant", lr_max=0.02, lr_min=0.02, epochs_schedule="fixed",
                     epochs_initial=1)
    assert [fedavg.round_schedule(r)["local-epochs"] for r in (1, 2, 3)] == [1, 1, 1]
    assert fedavg.round_schedule(3)["lr-max"] == 0.02


def test_bad_schedule_is_refused_at_construction() -> None:
    with pytest.raises(ScheduleError, match="lr-schedule='step'"):
        CoLearn(lr_schedule="step")


def test_metric_names_never_cost_a_site_its_model(strategy: CoLearn) -> None:
    # Prepare: a third site with an extra metric and Flower's snake_case name for the loss
    odd = reply(3, model([9, 9], 9))
    odd.content["metrics"] = MetricRecord({"num-examples": 1, "train_loss": 0.8, "extra": 1.0})
    # Execute
    arrays, metrics = strategy.aggregate_train(
        1, [reply(1, model([1, 2], 2)), reply(2, model([3, 4], 4)), odd])
    # Assert: all three models averaged (equal weights); train-loss averaged over the three
    # (train_loss counts as train-loss); the metric only one site sends is not averaged
    np.testing.assert_allclose(arrays["w"].numpy(), [13 / 3, 5.0])
    assert strategy.rounds[1]["sites-averaged"] == 3
    assert metrics["train-loss"] == pytest.approx(0.6)
    assert "extra" not in metrics
