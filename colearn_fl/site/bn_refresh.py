"""A site's part of server-side SWA: recompute the averaged model's normalisation statistics
over the site's own training data (forward passes only; nothing is trained, no data leaves).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from torch import nn

from colearn_fl.arrays import FLOAT16_MAX
from strategies import wire
from strategies.running_stats import STATISTICS

BatchNorm = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d, SyncBatchNorm


@torch.no_grad()
def input_moments(module: pl.LightningModule,
                  loader: Any) -> tuple[dict[str, Any], int, int]:
    """Per-channel mean and population variance of every BatchNorm layer's input over
    ``loader`` (by layer name), and the numbers of examples and batches seen.

    The module runs in training mode (each layer normalises with its batch's statistics, as
    in training and as ``torch.optim.swa_utils.update_bn`` does), with a forward pre-hook
    summing each layer's input. A batch that is a tuple or list feeds its first element to
    ``module``; any other batch is fed whole.
    """
    sums: dict[str, list[Any]] = {}
    hooks = [layer.register_forward_pre_hook(_summing(name, sums))
             for name, layer in module.named_modules() if isinstance(layer, BatchNorm)]
    was_training, examples, batches = module.training, 0, 0
    module.train()
    try:
        for batch in loader:
            batch = module.transfer_batch_to_device(batch, module.device, 0)
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            examples, batches = examples + len(inputs), batches + 1
            module(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    moments = {}
    for name, (count, first, second) in sums.items():
        mean = first / count
        moments[name] = (mean, torch.clamp(second / count - mean ** 2, min=0.0))
    return moments, examples, batches


def _summing(name: str, sums: dict[str, list[Any]]) -> Callable[..., None]:
    def hook(_layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]  # every dim but the channels
        count = x.numel() // x.shape[1]
        total = sums.setdefault(name, [0, 0.0, 0.0])
        total[0] += count
        total[1] = total[1] + x.sum(dim=dims)
        total[2] = total[2] + (x * x).sum(dim=dims)
    return hook


def refresh_reply(module: pl.LightningModule, datamodule: pl.LightningDataModule,
                  received: ArrayRecord, msg: Message) -> Message:
    """The ``query.bn_refresh`` reply: the statistics keys of ``received`` recomputed over
    this site's training data (each in the dtype it came in), and ``num-examples``."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    moments, examples, batches = input_moments(module, datamodule.train_dataloader())
    statistics = OrderedDict()
    for key, array in received.items():
        layer, _, name = key.rpartition(".")
        if layer not in moments or name not in STATISTICS:
            continue
        mean, var = moments[layer]
        value = {"running_mean": mean, "running_var": var,
                 "num_batches_tracked": torch.tensor(batches)}[name]
        # bfloat16 has no NumPy dtype, and float16 cannot hold a variance beyond 65504: such
        # statistics come back as float32 (the server reads any floating precision).
        dtype = np.dtype(array.dtype) if array.dtype != "bfloat16" else np.float32
        if dtype == np.float16 and not np.all(np.abs(value.cpu().numpy()) <= FLOAT16_MAX):
            dtype = np.float32
        statistics[key] = Array(np.array(value.cpu().numpy(), dtype=dtype))
    metrics = MetricRecord({wire.NUM_EXAMPLES: examples})
    return Message(content=RecordDict({"arrays": ArrayRecord(statistics), "metrics": metrics}),
                   reply_to=msg)
