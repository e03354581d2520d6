"""Streaming aggregation: replies folded one at a time give the one-shot average, on
hand-computed arrays; a strategy that is not mean-based still gets every reply."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message
from flwr.serverapp.strategy import FedAvg, FedMedian

from strategies import CoLearnSchedule
from strategies.streaming import WeightedSum, is_mean_based
from tests.strategies.test_colearn import StaticGrid, model, reply


def one_at_a_time(replies: list[Message], seen: list[int]) -> Iterator[Message]:
    """Yields the replies like a streaming grid, counting how many were handed out."""
    for msg in replies:
        seen.append(1)
        yield msg


def test_weighted_sum_is_the_float64_mean_of_every_array_and_metric() -> None:
    # Prepare: weights 1 and 3
    summed = WeightedSum()
    # Execute
    summed.add(model([0, 0], 2), 1.0, {"train-loss": 1.0, "only-here": 5.0})
    summed.add(model([2, 4], 6), 3.0, {"train-loss": 0.2})
    # Assert: (0*1 + 2*3)/4 = 1.5, (0 + 12)/4 = 3; counter (2 + 18)/4 = 5; the loss
    # (1 + 0.6)/4 = 0.4; a metric one reply lacks is left out
    mean = summed.mean_arrays()
    np.testing.assert_array_equal(mean["w"].numpy(), [1.5, 3.0])
    assert mean["n"].numpy() == 5.0 and mean["w"].numpy().dtype == np.float64
    assert summed.mean_metrics() == {"train-loss": pytest.approx(0.4)}
    assert summed.left_out() == {"only-here": "not reported by every site"}
    assert summed.total == 4.0


def test_streaming_equals_the_one_shot_average_and_drops_the_bad_reply(
        flower_identity: None) -> None:
    # Prepare: the same round twice, streaming on and off; three sites reply, one of them
    # with a NaN model (dropped), one with float16 arrays
    replies = lambda: [reply(1, model([1, 2], 3), examples=1),  # noqa: E731
                       reply(2, model([float("nan"), 0], 3), examples=5),
                       reply(3, ArrayRecord({"w": Array(np.array([3.0, 6.0], np.float16)),
                                             "n": Array(np.array(7))}), examples=3)]
    results, handed = {}, []
    for streaming in (True, False):
        schedule = CoLearnSchedule(FedAvg(), streaming=streaming)
        list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2, 3])))
        # Execute
        results[streaming] = schedule.aggregate_train(
            1, one_at_a_time(replies(), handed) if streaming else replies())
        record = schedule.rounds[1]
        assert (record["sites-averaged"], record["sites-dropped"]) == (2, 1)
    # Assert: weights 1 and 3: w = (1 + 9)/4, (2 + 18)/4 = [2.5, 5]; n = (3 + 21)/4 = 6;
    # float32 and int64 as the global model; the same train-loss
    (arrays, metrics), (arrays_b, metrics_b) = results[True], results[False]
    np.testing.assert_array_equal(arrays["w"].numpy(), np.array([2.5, 5.0], np.float32))
    assert arrays["w"].dtype == "float32" and arrays["n"].dtype == "int64"
    assert int(arrays["n"].numpy()) == 6
    np.testing.assert_array_equal(arrays["w"].numpy(), arrays_b["w"].numpy())
    assert dict(metrics) == pytest.approx(dict(metrics_b))
    assert len(handed) == 3


def test_a_strategy_that_is_not_mean_based_gets_every_reply(flower_identity: None) -> None:
    # Prepare: FedMedian subclasses FedAvg but aggregates by the median
    schedule = CoLearnSchedule(FedMedian())
    list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2, 3])))
    # Execute
    arrays, _ = schedule.aggregate_train(1, [reply(1, model([0, 0], 0)),
                                             reply(2, model([1, 1], 0)),
                                             reply(3, model([9, 9], 0))])
    # Assert: the median of 0, 1, 9 (streaming would have given the mean, 10/3)
    assert not schedule.streaming and not is_mean_based(FedMedian())
    np.testing.assert_array_equal(arrays["w"].numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="streaming=True needs a mean-based strategy"):
        CoLearnSchedule(FedMedian(), streaming=True)


def test_flowers_log_counts_the_replies_a_streamed_mean_stands_for(
        flower_identity: None, caplog) -> None:
    # Prepare: three sites reply; streaming hands FedAvg one reply holding their mean
    schedule = CoLearnSchedule(FedAvg(), streaming=True)
    list(schedule.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2, 3])))
    # Execute
    with caplog.at_level("INFO"):
        schedule.aggregate_train(1, [reply(n, model([n, n], 0)) for n in (1, 2, 3)])
        FedAvg().aggregate_train(2, [reply(1, model([1, 1], 0))])  # after the round: as is
    # Assert: Flower's line says 3, not the 1 message it was given; the filter is gone after
    assert "aggregate_train: Received 3 results and 0 failures" in caplog.text
    assert caplog.text.count("Received 1 results") == 1
