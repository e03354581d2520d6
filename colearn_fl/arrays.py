"""A model's full state_dict <-> Flower ``ArrayRecord`` (torch side; the server's checks on
those arrays are NumPy, in ``strategies.arrays``).

Every parameter *and* buffer crosses the wire with its dtype (BatchNorm's
``num_batches_tracked`` stays int64), so averaging can restore each array's dtype afterwards.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from flwr.app import Array, ArrayRecord

from colearn_fl.transport import to_tensor


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
