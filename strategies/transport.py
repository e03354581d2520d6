"""Transport precision on the server, in NumPy: floating arrays travel as float32, float16 or
bfloat16.

The server keeps its global model, and averages, in full precision; only what it sends is cast.
Integer and boolean buffers (BatchNorm's ``num_batches_tracked``) always travel unchanged.

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
    """``arrays`` with every floating array cast to ``dtype`` for the wire."""
    check_transport_dtype(dtype)
    if dtype == "float32" and all(a.dtype in ("float32", "float16") or not is_floating(a.dtype)
                                  for a in arrays.values()):
        return arrays
    return ArrayRecord(OrderedDict((k, _cast(a, dtype)) for k, a in arrays.items()))


def decode(arrays: ArrayRecord, reference: ArrayRecord) -> ArrayRecord:
    """``arrays`` from the wire with each floating array cast back to the reference's dtype.

    Keys the reference lacks are kept as they came (the reply checks reject them); a key whose
    array is not floating-point in the reference must arrive in exactly that dtype.
    """
    decoded = OrderedDict()
    for key, array in arrays.items():
        ref = reference.get(key)
        values = to_numpy(array)
        if ref is not None and is_floating(ref.dtype) and is_floating(str(values.dtype)):
            values = values.astype(np.dtype(ref.dtype))
        decoded[key] = Array(np.array(values, order="C").reshape(values.shape))
    return ArrayRecord(decoded)


def to_numpy(array: Array) -> np.ndarray:
    """An ``Array`` as NumPy; raw bfloat16 words become float32 (NumPy has no bfloat16)."""
    if array.stype == BFLOAT16_STYPE:
        words = np.frombuffer(array.data, dtype=np.uint16).astype(np.uint32) << 16
        return words.view(np.float32).reshape(tuple(array.shape))
    return array.numpy()


def bfloat16_array(values: np.ndarray) -> Array:
    """``values`` rounded to bfloat16 (nearest, ties to even), as raw words."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
    words = np.where(np.isnan(values), np.uint32(0x7FC00000), rounded) >> 16
    return Array(dtype="bfloat16", shape=tuple(values.shape), stype=BFLOAT16_STYPE,
                 data=words.astype("<u2").tobytes())


def _cast(array: Array, dtype: str) -> Array:
    if array.stype == BFLOAT16_STYPE or not is_floating(array.dtype):
        return array
    values = array.numpy()
    if dtype == "bfloat16":
        return bfloat16_array(values)
    if dtype == "float32" and values.dtype == np.float16:
        return array  # already lighter than asked: keep it
    return Array(np.array(values, dtype=dtype, order="C").reshape(values.shape))


def carrying(messages: list[Message], model: ArrayRecord) -> list[Message]:
    """``messages`` carrying ``model`` (as sent: ``transport-dtype``) in place of the arrays a
    wrapped strategy put in them (its full-precision copy)."""
    for msg in messages:
        for key in list(msg.content.array_records):
            msg.content[key] = model
    return messages
