"""The server's checks on replies and dtypes, in NumPy, on hand-made arrays."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from strategies.arrays import reply_problem, restore_dtypes


def test_restore_dtypes_rounds_ints_and_keeps_0d_shapes() -> None:
    reference = ArrayRecord({"n": Array(np.array(0)), "w": Array(np.zeros(2, np.float32))})
    averaged = ArrayRecord({"n": Array(np.array(4.6)), "w": Array(np.array([1.5, 2.5]))})
    restored = restore_dtypes(averaged, reference)
    assert restored["n"].dtype == "int64" and restored["n"].shape == ()
    assert int(restored["n"].numpy()) == 5
    assert restored["w"].dtype == "float32"


def test_reply_problem_reasons() -> None:
    ref = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    assert reply_problem(ref, ref) is None
    nan = ArrayRecord({"w": Array(np.array([np.nan, 0], np.float32))})
    assert "non-finite" in reply_problem(ref, nan)
    assert "shape (3,)" in reply_problem(ref, ArrayRecord({"w": Array(np.zeros(3, np.float32))}))
    # A floating array may come in another floating precision (cast on arrival); ints may not
    assert reply_problem(ref, ArrayRecord({"w": Array(np.zeros(2))})) is None
    ints = ArrayRecord({"n": Array(np.array(3))})
    assert "dtype float32" in reply_problem(ints, ArrayRecord({"n": Array(np.array(3.0, "f4"))}))
    assert "missing ['w']" in reply_problem(ref, ArrayRecord({"v": Array(np.zeros(2))}))
