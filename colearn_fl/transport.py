"""Transport precision at a site: read the server's arrays into torch, reply in its precision.

The server casts what it sends (``strategies.transport``): float16 travels as standard Flower
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


def encode_like(state_dict: dict[str, torch.Tensor], received: ArrayRecord) -> ArrayRecord:
    """A site's reply: its state_dict, in the 16-bit precision the server used for each key."""
    out = OrderedDict()
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        wire = received.get(key)
        if wire is not None and tensor.is_floating_point():
            if wire.stype == BFLOAT16_STYPE:
                out[key] = _bfloat16_array(tensor)
                continue
            if wire.dtype == "float16":
                tensor = tensor.half()
        out[key] = Array(tensor.numpy())
    return ArrayRecord(out)


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
