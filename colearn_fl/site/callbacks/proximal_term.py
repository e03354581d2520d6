"""``ProximalTerm``: FedProx's proximal term at a site, as a Lightning callback.

Flower's ``FedProx`` strategy sends ``proximal-mu`` and expects each site to add
``mu / 2 * ||w - w_global||^2`` to its loss (Li et al., "Federated optimization in
heterogeneous networks", MLSys 2020). Adding its gradient, ``mu * (w - w_global)``, to every
parameter's gradient before each optimizer step is the same, and leaves the user's module
unchanged.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from typing_extensions import override


class ProximalTerm(Callback):
    """Pull every trainable parameter towards the round's global model.

    Parameters
    ----------
    mu : float
        The proximal weight (``proximal-mu``); 0 leaves the gradients unchanged.
    """

    def __init__(self, mu: float) -> None:
        if not mu >= 0:
            raise ValueError(f"proximal-mu={mu}: must be >= 0")
        self.mu = mu
        self._global: list[torch.Tensor] = []

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The module holds the global model now: training has not changed it yet.
        self._global = [p.detach().clone() for p in pl_module.parameters()]

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if self.mu == 0:
            return
        for param, anchor in zip(pl_module.parameters(), self._global, strict=True):
            if param.grad is not None:
                param.grad.add_(param.detach() - anchor, alpha=self.mu)
