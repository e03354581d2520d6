"""Global-model arrays on the server, in NumPy: what a reply must satisfy, dtypes, bytes.

Every parameter *and* buffer of a model crosses the wire with its dtype (BatchNorm's
``num_batches_tracked`` stays int64), so averaging can restore each array's dtype afterwards,
whatever dtype a server optimizer computes in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message

from strategies.transport import BFLOAT16_STYPE, to_numpy


def count_bytes(arrays: ArrayRecord) -> int:
    """Bytes of array data in ``arrays`` (what one copy of the model costs on the wire)."""
    return sum(len(a.data) for a in arrays.values())


def reply_problem(reference: ArrayRecord, candidate: ArrayRecord) -> str | None:
    """Why ``candidate`` cannot be averaged into ``reference``, or ``None`` if it can
    (``checked_arrays``)."""
    return checked_arrays(reference, candidate)[1]


def checked_arrays(reference: ArrayRecord,
                   candidate: ArrayRecord) -> tuple[ArrayRecord | None, str | None]:
    """``candidate`` decoded and cast to the reference's dtypes, or why it cannot be averaged
    into ``reference``; whatever the candidate holds, this never raises.

    Every array is first read from its data, which must match what it declares (shape, and
    dtype for NumPy arrays; bfloat16 words: 2 bytes a value), then cast to the reference's
    dtype, then judged as cast. A candidate must hold exactly the reference's keys, each with
    the reference's shape; an integer or boolean array in exactly the reference's dtype, a
    floating array in any floating precision (a float32 reply to a 16-bit round), and after
    the cast only finite values: a float64 ``4e38`` is finite but ``inf`` as float32.

    Returns
    -------
    tuple[ArrayRecord | None, str | None]
        The decoded arrays (in the reference's order and dtypes) and ``None``, or ``None``
        and a reason that names the key and what is wrong with it.
    """
    missing = sorted(set(reference) - set(candidate))
    unexpected = sorted(set(candidate) - set(reference))
    if missing or unexpected:
        return None, (f"keys differ from the global model (missing {missing}, "
                      f"unexpected {unexpected})")
    decoded = OrderedDict()
    for key, ref in reference.items():
        values, problem = _cast_to(key, candidate[key], ref)
        if problem is not None:
            return None, problem
        decoded[key] = Array(values)
    return ArrayRecord(decoded), None


def _cast_to(key: str, got: Array, ref: Array) -> tuple[np.ndarray | None, str | None]:
    """The values of ``got`` in the dtype of ``ref``, or why not."""
    if tuple(got.shape) != tuple(ref.shape):
        return None, f"'{key}' has shape {tuple(got.shape)}, the global model {tuple(ref.shape)}"
    values, problem = _read(key, got)
    if problem is not None:
        return None, problem
    target = np.dtype(ref.dtype)
    if values.dtype != target and not (values.dtype.kind == "f" and target.kind == "f"):
        return None, f"'{key}' has dtype {got.dtype}, the global model {ref.dtype}"
    if target.kind != "f":
        return np.array(values, order="C").reshape(tuple(ref.shape)), None
    if not np.isfinite(values).all():
        return None, f"'{key}' holds non-finite values (NaN or Inf)"
    with np.errstate(over="ignore"):
        cast = np.array(values, dtype=target, order="C").reshape(tuple(ref.shape))
    if not np.isfinite(cast).all():
        top = np.abs(values[~np.isfinite(cast)]).max()
        return None, (f"'{key}' holds values beyond the global model's {ref.dtype} "
                      f"(|values| up to {top:.3g})")
    return cast, None


def _read(key: str, array: Array) -> tuple[np.ndarray | None, str | None]:
    """An array's data as NumPy, or why its data does not match what it declares."""
    shape = tuple(array.shape)
    if array.stype == BFLOAT16_STYPE:
        count = int(np.prod(shape, dtype=np.int64))
        if len(array.data) != 2 * count:
            return None, (f"'{key}' declares shape {shape} ({count} bfloat16 values, "
                          f"{2 * count} bytes) but holds {len(array.data)} bytes")
    try:
        values = to_numpy(array)
    except Exception as error:  # noqa: BLE001 - a site's bytes must never end the run
        return None, f"'{key}' cannot be read as {array.stype} {array.dtype}: {error}"
    if values.shape != shape:
        return None, f"'{key}' declares shape {shape} but its data has shape {values.shape}"
    if array.stype != BFLOAT16_STYPE and str(values.dtype) != array.dtype:
        return None, f"'{key}' declares dtype {array.dtype} but its data is {values.dtype}"
    return values, None


def restore_dtypes(averaged: ArrayRecord, reference: ArrayRecord) -> ArrayRecord:
    """``averaged`` with each array cast back to the reference's dtype.

    Flower's weighted average promotes integer buffers to float, and server optimizers such as
    FedAdam compute in float64; integers are rounded back to the nearest integer.
    """
    restored = OrderedDict()
    for key, ref in reference.items():
        values = averaged[key].numpy()
        dtype = np.dtype(ref.dtype)
        if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            values = np.rint(values)
        # np.array keeps 0-d buffers 0-d (np.ascontiguousarray would make them 1-d).
        restored[key] = Array(np.array(values, dtype=dtype, order="C").reshape(ref.shape))
    return ArrayRecord(restored)


def sent_bytes(replies: Iterable[Message]) -> int:
    """Bytes of array data in the replies that carry content."""
    return sum(count_bytes(record) for m in replies if not m.has_error()
               for record in m.content.array_records.values())
