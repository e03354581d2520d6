"""What a site masks under secure aggregation, and how the server reads the unmasked sum.

A site's vector is a list of int64 arrays: a header ``[n, clipped]`` (its example count and
how many of its values it clipped), then one array per model key, in the model's order:

- a floating array travels as its *update* (the trained values minus the values received),
  clipped to ``±clipping_range``, quantised to ``[0, quantization_range]`` with Flower's
  stochastic ``quantize``, then multiplied by ``n``. Updates are small, so a narrow clipping
  range keeps the quantisation step fine; the server adds the mean update back to the model
  it sent, which it knows.
- an integer or boolean array (BatchNorm's ``num_batches_tracked``) travels as ``n * value``,
  exactly: integers need no quantisation, and the sum modulo ``MOD_RANGE`` is exact.

Every entry is then reduced modulo ``MOD_RANGE`` and masked (``strategies.secagg.masks``).
The server's unmasked sum holds ``[N, clipped]`` (``N`` the securely summed examples) and
``sum(n_i * q_i)`` per array, from which it reads the weighted mean: the quantisation error
of a floating value is below one step, ``2 * clipping_range / quantization_range``, whatever
``N``, and unbiased (stochastic rounding).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.common.secure_aggregation.ndarrays_arithmetic import parameters_mod
from flwr.common.secure_aggregation.quantization import dequantize, quantize

from strategies.transport import is_floating, to_numpy

MOD_RANGE = 2**62  # masks and sums live modulo this; two of them still add up in int64
MAX_QUANTIZATION_RANGE = 2**31 - 1  # Flower's stochastic rounding works in int32
HEADER = 2  # [examples, clipped values] before the model's arrays


def shapes_of(reference: ArrayRecord) -> list[tuple[int, ...]]:
    """The shapes of a vector for a model like ``reference``: the header's, then each key's."""
    return [(HEADER,), *(tuple(a.shape) for a in reference.values())]


def site_vector(received: ArrayRecord, trained: ArrayRecord, examples: int,
                clipping_range: float, quantization_range: int) -> list[np.ndarray]:
    """A site's vector, modulo ``MOD_RANGE``, before masking (see the module's docstring).

    Parameters
    ----------
    received : ArrayRecord
        The global model as the site received it (the reference of the updates).
    trained : ArrayRecord
        The site's model after training: the keys and shapes of ``received`` (checked).
    examples : int
        The site's weight (``num-examples``), > 0.
    clipping_range : float
        Each floating update value is clipped to ``±clipping_range``.
    quantization_range : int
        Quantisation levels over ``[-clipping_range, clipping_range]``.
    """
    arrays, clipped = [], 0
    for key, sent in received.items():
        values = to_numpy(trained[key])
        if is_floating(sent.dtype):
            update = values.astype(np.float64) - to_numpy(sent).astype(np.float64)
            clipped += int(np.count_nonzero(np.abs(update) > clipping_range))
            levels = quantize([update], clipping_range, quantization_range)[0]
            arrays.append(np.asarray(levels, dtype=np.int64) * examples)
        else:
            arrays.append(np.asarray(values, dtype=np.int64) * examples)
    header = np.array([examples, clipped], dtype=np.int64)
    return parameters_mod([header, *arrays], MOD_RANGE)


def read_sum(total: list[np.ndarray], sent: ArrayRecord, clipping_range: float,
             quantization_range: int) -> tuple[ArrayRecord, int, int]:
    """The weighted mean model in an unmasked sum of site vectors, the examples summed and
    the values clipped.

    Floating arrays come back in float64 (the model ``sent`` plus the mean update), integer
    and boolean ones as the rounded mean in their own dtype (as the plain path restores them).
    """
    signed = [np.where(a >= MOD_RANGE // 2, a - MOD_RANGE, a) for a in total]
    examples, clipped = int(signed[0][0]), int(signed[0][1])
    if examples <= 0:
        raise ValueError(f"the unmasked sum holds {examples} examples")
    mean = OrderedDict()
    for (key, array), summed in zip(sent.items(), signed[1:], strict=True):
        if is_floating(array.dtype):
            update = dequantize([summed / examples], clipping_range, quantization_range)[0]
            values = to_numpy(array).astype(np.float64) + update
        else:
            values = np.rint(summed / examples).astype(np.dtype(array.dtype))
        mean[key] = Array(np.array(values, order="C").reshape(tuple(array.shape)))
    return ArrayRecord(mean), examples, clipped


def overflows(examples: int, quantization_range: int) -> bool:
    """Whether a sum over ``examples`` examples could wrap around ``MOD_RANGE``."""
    return examples * quantization_range >= MOD_RANGE // 2
