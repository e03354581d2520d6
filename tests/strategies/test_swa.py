"""Server-side SWA: the running average (incl. integer buffers) and the pooling of the sites'
normalisation statistics, on hand-computed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from strategies import CoLearnSchedule, server_optimizer
from strategies.swa import SwaAverage, pool_statistics
from tests.strategies.test_colearn import StaticGrid, reply


def record(**arrays: np.ndarray) -> ArrayRecord:
    return ArrayRecord({k.replace("__", "."): Array(v) for k, v in arrays.items()})


def model(weight: float, steps: int) -> ArrayRecord:
    return record(w=np.array([weight, 2 * weight], dtype=np.float32),
                  bn__num_batches_tracked=np.array(steps, dtype=np.int64))


def test_average_of_cycle_ends_keeps_dtypes_and_the_newest_counter() -> None:
    # Prepare
    swa = SwaAverage(start=2)
    # Execute: models of rounds 2, 3, 4
    for weight, steps in ((1.0, 10), (2.0, 20), (6.0, 30)):
        swa.add(model(weight, steps))
    averaged = swa.arrays()
    # Assert: (1 + 2 + 6) / 3 = 3; the int64 counter is the newest model's, still int64
    assert swa.count == 3
    np.testing.assert_allclose(averaged["w"].numpy(), [3.0, 6.0])
    assert averaged["w"].numpy().dtype == np.float32
    assert averaged["bn.num_batches_tracked"].numpy().dtype == np.int64
    assert int(averaged["bn.num_batches_tracked"].numpy()) == 30


def test_covers_rounds_from_start_and_zero_is_off() -> None:
    assert [SwaAverage(3).covers(r) for r in (1, 2, 3, 4)] == [False, False, True, True]
    assert not any(SwaAverage(0).covers(r) for r in (1, 2, 3))
    assert SwaAverage(0).arrays() is None
    with pytest.raises(ValueError, match="swa-start=-1"):
        SwaAverage(-1)


def test_state_round_trip_continues_the_same_average() -> None:
    # Prepare: an average of two models, saved
    first = SwaAverage(1)
    first.add(model(1.0, 1))
    first.add(model(3.0, 2))
    resumed = SwaAverage(1)
    resumed.load_state_dict(first.state_dict())
    # Execute: a third model after the resume
    resumed.add(model(8.0, 3))
    # Assert: (1 + 3 + 8) / 3 = 4
    np.testing.assert_allclose(resumed.arrays()["w"].numpy(), [4.0, 8.0])
    assert resumed.count == 3


def test_pooled_statistics_are_the_moments_of_all_sites_data() -> None:
    # Prepare: site A (n=1) holds values {0, 2} per channel -> mean 1, var 1;
    #          site B (n=3) holds values {4, 4} -> mean 4, var 0  (weights 1 : 3)
    site_a = record(bn__running_mean=np.array([1.0], np.float32),
                    bn__running_var=np.array([1.0], np.float32),
                    bn__num_batches_tracked=np.array(2, np.int64))
    site_b = record(bn__running_mean=np.array([4.0], np.float32),
                    bn__running_var=np.array([0.0], np.float32),
                    bn__num_batches_tracked=np.array(5, np.int64))
    # Execute
    pooled = pool_statistics([(site_a, 1.0), (site_b, 3.0)])
    # Assert: mean = (1 + 12) / 4 = 3.25; E[x^2] = (1*(1+1) + 3*(0+16)) / 4 = 12.5;
    # var = 12.5 - 3.25^2 = 1.9375; counters add up
    np.testing.assert_allclose(pooled["bn.running_mean"].numpy(), [3.25])
    np.testing.assert_allclose(pooled["bn.running_var"].numpy(), [1.9375])
    assert int(pooled["bn.num_batches_tracked"].numpy()) == 7
    assert pooled["bn.running_var"].numpy().dtype == np.float32


def test_without_a_refresh_since_its_last_model_the_average_keeps_the_models_statistics() -> None:
    # Prepare: round 1's model (variance 2) gets refreshed statistics (variance 10)
    swa = SwaAverage(1)
    swa.add(record(bn__running_var=np.array([2.0], np.float32)))
    swa.replace(record(bn__running_var=np.array([10.0], np.float32)))
    refreshed = swa.arrays()["bn.running_var"].numpy()
    # Execute: round 2's model (variance 4) comes in; its refresh gets no answer
    swa.add(record(bn__running_var=np.array([4.0], np.float32)))
    # Assert: the models' mean (2 + 4) / 2 = 3, not the refresh blended in (10 + 4) / 2 = 7
    np.testing.assert_array_equal(refreshed, [10.0])
    np.testing.assert_array_equal(swa.arrays()["bn.running_var"].numpy(), [3.0])
    resumed = SwaAverage(1)
    resumed.load_state_dict(swa.state_dict())
    np.testing.assert_array_equal(resumed.arrays()["bn.running_var"].numpy(), [3.0])


class RefreshGrid(StaticGrid):
    """Answers ``query.bn_refresh`` with each node's statistics from ``answers``."""

    def __init__(self, answers: dict[int, ArrayRecord]) -> None:
        super().__init__(sorted(answers))
        self.answers = answers

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            content = RecordDict({"statistics": self.answers[node],
                                  "metrics": MetricRecord({"num-examples": 1})})
            replies.append(Message(content, reply_to=msg))
        return replies


def bn(mean: float, var: float, dtype: str = "float32", w: float | None = 0.0) -> ArrayRecord:
    arrays = record(bn__running_mean=np.array([mean, mean], dtype),
                    bn__running_var=np.array([var, var], dtype),
                    bn__num_batches_tracked=np.array(1, np.int64))
    return arrays if w is None else ArrayRecord({"w": Array(np.array([w], np.float32)),
                                                 **arrays})


def swa_round(answers: dict[int, ArrayRecord], transport: str) -> CoLearnSchedule:
    """One training round with SWA from round 1, its statistics refreshed by ``answers``."""
    schedule = CoLearnSchedule(server_optimizer("fedavg"), swa_start=1,
                               transport_dtype=transport)
    grid = RefreshGrid(answers)
    list(schedule.configure_train(1, bn(0.0, 1.0), ConfigRecord(), grid))
    schedule.aggregate_train(1, [reply(n, bn(0.0, 1.0)) for n in sorted(answers)])
    return schedule


def test_float16_statistics_are_pooled_in_float64_into_the_global_dtype(
        flower_identity: None) -> None:
    # Prepare: two sites' float16 answers, channel means +300 and -300, variance 100
    answers = {1: bn(300.0, 100.0, "float16", None), 2: bn(-300.0, 100.0, "float16", None)}
    # Execute
    schedule = swa_round(answers, "float16")
    # Assert: mean 0; var = (100 + 300^2 + 100 + 300^2) / 2 - 0 = 90100, beyond float16
    # (65504) but the global model's float32 holds it
    model = schedule.evaluation_model(bn(0.0, 1.0))
    assert model["bn.running_var"].dtype == "float32"
    np.testing.assert_array_equal(model["bn.running_var"].numpy(), [90100.0, 90100.0])
    np.testing.assert_array_equal(model["bn.running_mean"].numpy(), [0.0, 0.0])
    assert schedule.rounds[1]["swa-refresh-sites"] == 2


def test_unusable_refresh_answers_are_dropped_with_a_reason(flower_identity: None,
                                                           caplog) -> None:
    # Prepare: sites 1 and 2 answer (means 1 and 3, variance 1); site 3 a NaN mean, site 4 a
    # variance of one channel where the model has two
    wrong = bn(5.0, 5.0, w=None)
    wrong["bn.running_var"] = Array(np.array([5.0], np.float32))
    answers = {1: bn(1.0, 1.0, w=None), 2: bn(3.0, 1.0, w=None),
               3: bn(float("nan"), 1.0, w=None), 4: wrong}
    # Execute
    schedule = swa_round(answers, "float32")
    # Assert: pooled over sites 1 and 2: mean 2, var (1 + 1 + 1 + 9) / 2 - 4 = 2
    model = schedule.evaluation_model(bn(0.0, 1.0))
    np.testing.assert_array_equal(model["bn.running_mean"].numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(model["bn.running_var"].numpy(), [2.0, 2.0])
    assert schedule.rounds[1]["swa-refresh-sites"] == 2
    assert "node 3: 'bn.running_mean' holds non-finite values (NaN or Inf)" in caplog.text
    assert "node 4: 'bn.running_var' has shape (1,), the global model (2,)" in caplog.text
