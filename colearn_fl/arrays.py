"""A model's state_dict <-> Flower ``ArrayRecord``, in the precision that crosses the wire
(torch side; the server's checks and casts are NumPy, in ``strategies.arrays`` and
``strategies.transport``).

Every parameter *and* buffer crosses the wire with its dtype (BatchNorm's
``num_batches_tracked`` stays int64), so averaging can restore each array's dtype afterwards.
The server casts what it sends (``transport-dtype``): float16 travels as standard Flower
NumPy arrays, bfloat16 as raw 2-byte words (``stype="torch.bfloat16"``, NumPy has no
bfloat16). A site replies with its whole state_dict, each floating tensor in the 16-bit
precision the server sent it in; otherwise in the module's own dtype (a server optimizer that
computes in float64 does not make the site send float64).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from strategies.transport import BFLOAT16_STYPE


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


FLOAT16_MAX = float(torch.finfo(torch.float16).max)  # 65504


def encode_like(state_dict: dict[str, torch.Tensor], received: ArrayRecord) -> ArrayRecord:
    """A site's reply: its state_dict, in the 16-bit precision the server used for each key;
    a float16 key whose values training took beyond float16's range goes at the module's own
    precision instead (the server reads any floating precision), never as inf."""
    out = OrderedDict()
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        wire = received.get(key)
        if wire is not None and tensor.is_floating_point():
            if wire.stype == BFLOAT16_STYPE:
                out[key] = _bfloat16_array(tensor)
                continue
            if wire.dtype == "float16" and not _beyond_float16(tensor):
                tensor = tensor.half()
        out[key] = Array(tensor.numpy())
    return ArrayRecord(out)


def _beyond_float16(tensor: torch.Tensor) -> bool:
    finite = tensor[torch.isfinite(tensor)]
    return bool(finite.numel()) and float(finite.abs().max()) > FLOAT16_MAX


def to_tensor(array: Array) -> torch.Tensor:
    """An ``Array`` as a torch tensor of its wire dtype (raw bfloat16 words included)."""
    if array.stype == BFLOAT16_STYPE:
        words = torch.frombuffer(bytearray(array.data), dtype=torch.bfloat16)
        return words.reshape(tuple(array.shape)).clone()
    return torch.from_numpy(np.array(array.numpy()))


def _bfloat16_array(tensor: torch.Tensor) -> Array:
    """``tensor`` cast to bfloat16, as its raw words (no header)."""
    words = tensor.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
    return Array(dtype="bfloat16", shape=tuple(tensor.shape), stype=BFLOAT16_STYPE, data=words)
