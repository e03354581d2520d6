"""Server-side SWA: the running average (incl. integer buffers) and the pooling of the sites'
normalisation statistics, on hand-computed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from strategies.swa import SwaAverage, pool_statistics


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
