"""A model's full state_dict <-> Flower ``ArrayRecord``, and the checks a reply must pass.

Every parameter *and* buffer crosses the wire with its dtype (BatchNorm's
``num_batches_tracked`` stays int64), so averaging can restore each array's dtype afterwards.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from colearn_fl.transport import to_numpy, to_tensor


def state_dict_to_arrays(state_dict: dict[str, torch.Tensor]) -> ArrayRecord:
    """Every entry of ``state_dict`` as an ``ArrayRecord`` (CPU copies, dtypes kept)."""
    return ArrayRecord(OrderedDict(
        (k, Array(v.detach().cpu().contiguous().numpy())) for k, v in state_dict.items()
    ))


def arrays_to_state_dict(arrays: ArrayRecord) -> OrderedDict[str, torch.Tensor]:
    """The ``ArrayRecord`` as a torch state_dict with each array's own (wire) dtype.

    ``load_state_dict`` casts each tensor to the module's own dtype when it copies it in.
    """
    return OrderedDict((k, to_tensor(v)) for k, v in arrays.items())


def count_bytes(arrays: ArrayRecord) -> int:
    """Bytes of array data in ``arrays`` (what one copy of the model costs on the wire)."""
    return sum(len(a.data) for a in arrays.values())


def reply_problem(reference: ArrayRecord, candidate: ArrayRecord) -> str | None:
    """Why ``candidate`` cannot be averaged into ``reference``, or ``None`` if it can.

    A candidate must hold exactly the reference's keys, each with the same shape and dtype,
    and only finite values.
    """
    missing = sorted(set(reference) - set(candidate))
    unexpected = sorted(set(candidate) - set(reference))
    if missing or unexpected:
        return f"keys differ from the global model (missing {missing}, unexpected {unexpected})"
    for key, ref in reference.items():
        got = candidate[key]
        if tuple(got.shape) != tuple(ref.shape):
            return f"'{key}' has shape {tuple(got.shape)}, the global model {tuple(ref.shape)}"
        if got.dtype != ref.dtype:
            return f"'{key}' has dtype {got.dtype}, the global model {ref.dtype}"
        values = to_numpy(got)
        if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
            return f"'{key}' holds non-finite values (NaN or Inf)"
    return None


def restore_dtypes(averaged: ArrayRecord, reference: ArrayRecord) -> ArrayRecord:
    """``averaged`` with each array cast back to the reference's dtype.

    Flower's weighted average promotes integer buffers to float; they are rounded back to the
    nearest integer.
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
