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

from strategies.transport import is_floating, to_numpy


def count_bytes(arrays: ArrayRecord) -> int:
    """Bytes of array data in ``arrays`` (what one copy of the model costs on the wire)."""
    return sum(len(a.data) for a in arrays.values())


def reply_problem(reference: ArrayRecord, candidate: ArrayRecord) -> str | None:
    """Why ``candidate`` cannot be averaged into ``reference``, or ``None`` if it can.

    A candidate must hold exactly the reference's keys, each with the same shape, only finite
    values, and the reference's dtype; a floating array may arrive in any floating precision
    (a float32 reply to a 16-bit round is cast on arrival).
    """
    missing = sorted(set(reference) - set(candidate))
    unexpected = sorted(set(candidate) - set(reference))
    if missing or unexpected:
        return f"keys differ from the global model (missing {missing}, unexpected {unexpected})"
    for key, ref in reference.items():
        got = candidate[key]
        if tuple(got.shape) != tuple(ref.shape):
            return f"'{key}' has shape {tuple(got.shape)}, the global model {tuple(ref.shape)}"
        if got.dtype != ref.dtype and not (is_floating(got.dtype) and is_floating(ref.dtype)):
            return f"'{key}' has dtype {got.dtype}, the global model {ref.dtype}"
        values = to_numpy(got)
        if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
            return f"'{key}' holds non-finite values (NaN or Inf)"
    return None


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
