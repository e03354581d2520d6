"""Transport precision: floating arrays cross the wire as float32, float16 or bfloat16.

The server keeps its global model and averages in full precision; only what is sent is cast.
Integer and boolean buffers (BatchNorm's ``num_batches_tracked``) always travel unchanged.
A 16-bit array travels as its raw 2-byte words with ``stype="torch.float16"`` or
``"torch.bfloat16"`` (NumPy has no bfloat16, and its 128-byte ``.npy`` header per array would
put a small model's 16-bit round trip above one float32 copy); every other array is a regular
NumPy ``Array``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

TRANSPORT_DTYPES = ("float32", "float16", "bfloat16")
RAW_STYPES = {"torch.float16": torch.float16, "torch.bfloat16": torch.bfloat16}


def encode(arrays: ArrayRecord, dtype: str) -> ArrayRecord:
    """``arrays`` with every floating array cast to ``dtype`` for the wire."""
    if dtype not in TRANSPORT_DTYPES:
        raise ValueError(f"transport-dtype={dtype!r}: use one of {', '.join(TRANSPORT_DTYPES)}")
    if dtype == "float32" and all(a.dtype != "float64" for a in arrays.values()):
        return arrays
    return ArrayRecord(OrderedDict((k, _cast(a, dtype)) for k, a in arrays.items()))


def decode(arrays: ArrayRecord, reference: ArrayRecord) -> ArrayRecord:
    """``arrays`` from the wire with each array cast back to the reference's dtype.

    Keys the reference lacks are kept as they came (the reply checks reject them); a key whose
    array is not floating-point in the reference must arrive in exactly that dtype.
    """
    decoded = OrderedDict()
    for key, array in arrays.items():
        ref = reference.get(key)
        values = to_numpy(array)
        if ref is not None and _is_float(ref.dtype) and _is_float(str(values.dtype)):
            values = values.astype(np.dtype(ref.dtype))
        decoded[key] = Array(np.ascontiguousarray(values).reshape(values.shape))
    return ArrayRecord(decoded)


def encode_like(state_dict: dict[str, torch.Tensor], received: ArrayRecord) -> ArrayRecord:
    """A site's reply: its state_dict in the encoding the server used for each key."""
    out = OrderedDict()
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        wire = received.get(key)
        if wire is not None and tensor.is_floating_point():
            if wire.stype in RAW_STYPES:
                out[key] = _raw_array(tensor, wire.dtype)
                continue
            tensor = tensor.to(_TORCH_DTYPES.get(wire.dtype, tensor.dtype))
        out[key] = Array(tensor.numpy())
    return ArrayRecord(out)


def to_numpy(array: Array) -> np.ndarray:
    """An ``Array`` as NumPy; 16-bit words become float32 (NumPy has no bfloat16)."""
    if array.stype in RAW_STYPES:
        return to_tensor(array).float().numpy()
    return array.numpy()


def to_tensor(array: Array) -> torch.Tensor:
    """An ``Array`` as a torch tensor of its wire dtype (16-bit words included)."""
    if array.stype in RAW_STYPES:
        words = torch.frombuffer(bytearray(array.data), dtype=RAW_STYPES[array.stype])
        return words.reshape(tuple(array.shape)).clone()
    return torch.from_numpy(np.array(array.numpy()))


_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


def _is_float(dtype: str) -> bool:
    return dtype in ("float16", "float32", "float64", "bfloat16")


def _cast(array: Array, dtype: str) -> Array:
    if array.stype in RAW_STYPES or not _is_float(array.dtype):
        return array
    values = array.numpy()
    if dtype in ("float16", "bfloat16"):
        return _raw_array(torch.from_numpy(np.array(values, dtype=np.float32)), dtype)
    return Array(np.ascontiguousarray(values.astype(dtype)).reshape(values.shape))


def _raw_array(tensor: torch.Tensor, dtype: str) -> Array:
    """``tensor`` cast to 16-bit ``dtype``, as its raw words (no header)."""
    stype = f"torch.{dtype}"
    words = tensor.to(RAW_STYPES[stype]).contiguous().view(torch.int16).numpy().tobytes()
    return Array(dtype=dtype, shape=tuple(tensor.shape), stype=stype, data=words)
