"""Transport precision on the server, in NumPy: floating arrays travel as float32, float16 or
bfloat16.

The server keeps its global model, and averages, in full precision; only what it sends is cast.
Integer and boolean buffers (BatchNorm's ``num_batches_tracked``) always travel unchanged.

A value is never sent as one the transport dtype cannot represent. An array that holds a
finite value beyond the transport dtype's range (float16 tops out at 65504: a BatchNorm
``running_var`` of 7e4 would arrive as ``inf``), or whose nonzero values would all arrive as
zeros (float16's smallest nonzero is 6e-8), travels at float32 for that round, or in its own
dtype where float32 cannot hold it either (a float64 value beyond 3.4e38). The server logs it
once per key (``CoLearnSchedule``) and the round's ``bytes-sent`` counts it as it travels.
Underflow inside an array that keeps other nonzero values (``[1.0, 1e-9]`` arrives as
``[1.0, 0.0]``) is 16-bit rounding like any other (an absolute error below 6e-8) and is
accepted without a word: sending every such array at float32 would send almost every large
array at float32.

- ``float16`` travels as standard Flower NumPy arrays, which any stock Flower client reads
  (``Array.numpy()``).
- ``bfloat16`` has no NumPy dtype: it travels as its raw 2-byte words with
  ``stype="torch.bfloat16"``; colearn-fl's sites read it, stock Flower clients cannot (use
  ``float16`` or ``float32`` with them).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from flwr.app import Array, ArrayRecord, Message

from strategies.errors import ScheduleError

TRANSPORT_DTYPES = ("float32", "float16", "bfloat16")
BFLOAT16_STYPE = "torch.bfloat16"  # raw bfloat16 words (the name torch.frombuffer reads)
FLOATING = ("float16", "float32", "float64", "bfloat16")


def check_transport_dtype(dtype: str) -> None:
    """Raise ``ScheduleError`` unless ``dtype`` is one of ``TRANSPORT_DTYPES``."""
    if dtype not in TRANSPORT_DTYPES:
        raise ScheduleError(f"transport-dtype={dtype!r} is not known; use one of: "
                            f"{', '.join(TRANSPORT_DTYPES)} (stock Flower clients read "
                            "float32 and float16).")


def is_floating(dtype: str) -> bool:
    """Whether an ``Array.dtype`` string names a floating-point type."""
    return dtype in FLOATING


def encode(arrays: ArrayRecord, dtype: str) -> ArrayRecord:
    """``arrays`` with every floating array cast to ``dtype`` for the wire, except those the
    cast would not represent (``cast_for_wire``)."""
    return cast_for_wire(arrays, dtype)[0]


def cast_for_wire(arrays: ArrayRecord, dtype: str) -> tuple[ArrayRecord, dict[str, str]]:
    """``arrays`` as they travel in ``dtype``, and, per key that travels wider, why.

    Returns
    -------
    tuple[ArrayRecord, dict[str, str]]
        The record to send, and for each array kept wider than ``dtype`` a reason such as
        ``"travels at float32 this round: |values| up to 7e+04 exceed float16's range
        (largest 65504)"``.
    """
    check_transport_dtype(dtype)
    if dtype == "float32" and all(a.dtype in ("float32", "float16") or not is_floating(a.dtype)
                                  for a in arrays.values()):
        return arrays, {}
    sent, wider = OrderedDict(), {}
    for key, array in arrays.items():
        sent[key], why = _cast(array, dtype)
        if why is not None:
            wider[key] = f"travels at {sent[key].dtype} this round: {why}"
    return ArrayRecord(sent), wider


def to_numpy(array: Array) -> np.ndarray:
    """An ``Array`` as NumPy; raw bfloat16 words become float32 (NumPy has no bfloat16)."""
    if array.stype == BFLOAT16_STYPE:
        words = np.frombuffer(array.data, dtype=np.uint16).astype(np.uint32) << 16
        return words.view(np.float32).reshape(tuple(array.shape))
    return array.numpy()


def bfloat16_array(values: np.ndarray) -> Array:
    """``values`` rounded to bfloat16 (nearest, ties to even), as raw words."""
    return _bfloat16_words(values)[0]


def _bfloat16_words(values: np.ndarray) -> tuple[Array, np.ndarray]:
    """``values`` as raw bfloat16 words, and the float32 values those words hold."""
    with np.errstate(over="ignore"):
        single = np.ascontiguousarray(values, dtype=np.float32)
    bits = single.view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
    words = (np.where(np.isnan(single), np.uint32(0x7FC00000), rounded) >> 16).astype("<u2")
    array = Array(dtype="bfloat16", shape=tuple(values.shape), stype=BFLOAT16_STYPE,
                  data=words.tobytes())
    return array, (words.astype(np.uint32) << 16).view(np.float32)


def _cast(array: Array, dtype: str) -> tuple[Array, str | None]:
    """``array`` as it travels in ``dtype``, or wider with the reason ``dtype`` would not
    represent it (``None`` when it travels in ``dtype``)."""
    if array.stype == BFLOAT16_STYPE or not is_floating(array.dtype):
        return array, None
    values = array.numpy()
    if dtype == "float32" and values.dtype == np.float16:
        return array, None  # already lighter than asked: keep it
    if dtype == "bfloat16":
        sent, held = _bfloat16_words(values)
    else:
        with np.errstate(over="ignore"):
            held = np.array(values, dtype=dtype, order="C").reshape(values.shape)
        sent = Array(held)
    why = _unrepresented(values, held, dtype)
    if why is None:
        return sent, None
    if dtype != "float32" and values.dtype != np.float32:
        single, problem = _cast(array, "float32")
        if problem is None:
            return single, why
    return array, why  # its own dtype (float32, or float64 beyond float32's range)


# The largest finite value and the smallest nonzero (subnormal) of each transport dtype.
LIMITS = {"float16": (65504.0, 2.0 ** -24), "bfloat16": (3.3895313892515355e38, 2.0 ** -133),
          "float32": (float(np.finfo(np.float32).max), 2.0 ** -149)}


def _unrepresented(values: np.ndarray, held: np.ndarray, dtype: str) -> str | None:
    """Why ``held`` (``values`` cast to ``dtype``) loses them: a finite value became
    infinite, or every nonzero value became zero; ``None`` if neither."""
    largest, smallest = LIMITS[dtype]
    finite = np.isfinite(values)
    overflow = finite & ~np.isfinite(held)
    if overflow.any():
        return (f"|values| up to {np.abs(values[overflow]).max():.3g} exceed {dtype}'s range "
                f"(largest {largest:.5g})")
    nonzero = finite & (values != 0)
    if nonzero.any() and not held[nonzero].any():
        return (f"all its nonzero values (|values| up to {np.abs(values[nonzero]).max():.3g}) "
                f"are below {dtype}'s smallest ({smallest:.3g}) and would arrive as zeros")
    return None


def carrying(messages: list[Message], model: ArrayRecord) -> list[Message]:
    """``messages`` carrying ``model`` (as sent: ``transport-dtype``) in place of the arrays a
    wrapped strategy put in them (its full-precision copy)."""
    for msg in messages:
        for key in list(msg.content.array_records):
            msg.content[key] = model
    return messages
