"""The image task's LightningModule: a registered image model trained with cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from tasks.image.models import DEFAULT_MODEL, get_model
from tasks.supervised import Stage, SupervisedModule

IN_CHANNELS = 1
NUM_CLASSES = 10

# A batch is (float [B, C, H, W], int64 [B]).


class ImageClassifier(SupervisedModule):
    """Cross-entropy image classifier; logs ``train-loss`` and ``loss`` / ``accuracy``.

    Parameters
    ----------
    model : str
        Image model registry name (default: ``'small-cnn'``).
    in_channels : int
        Input channels (default: 1).
    num_classes : int
        Number of classes (default: 10).
    lr : float
        Initial SGD learning rate; the server's cycle overrides it every step (default: 0.05).
    momentum : float
        Nesterov momentum (default: 0.9).
    weight_decay : float
        L2 weight decay (default: 5e-4).
    image_size : int
        Side of the input images; picks a model's small-image or ImageNet variant
        (default: 28).

    Logs ``accuracy`` (top-1) and, with more than 5 classes, ``top5-accuracy``. On a CUDA
    device the weights and batches use the ``channels_last`` memory format (faster convolutions
    on tensor cores; the state dict's values are unchanged).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        in_channels: int = IN_CHANNELS,
        num_classes: int = NUM_CLASSES,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = get_model(model, in_channels, num_classes, image_size)
        # Separate metric objects: validation and test accumulate independently.
        self.val_metrics = _metrics(num_classes)
        self.test_metrics = _metrics(num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of normalised images ``[B, C, H, W]``."""
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def on_fit_start(self) -> None:
        self._channels_last()

    def on_validation_start(self) -> None:
        self._channels_last()

    def on_test_start(self) -> None:
        self._channels_last()

    def _channels_last(self) -> None:
        if self.device.type == "cuda":
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def score(self, stage: Stage, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        metrics = self.val_metrics if stage == "validate" else self.test_metrics
        for name, metric in metrics.items():
            metric(outputs, targets)
            self.log(name, metric, on_step=False, on_epoch=True, batch_size=len(targets))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (LRCycle callback) sets the LR.
        return torch.optim.SGD(
            self.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            nesterov=True,
            weight_decay=self.hparams.weight_decay,
        )


def _metrics(num_classes: int) -> nn.ModuleDict:
    """Top-1 ``accuracy``, plus ``top5-accuracy`` when there are more than 5 classes."""
    metrics = {"accuracy": MulticlassAccuracy(num_classes, average="micro")}
    if num_classes > 5:
        metrics["top5-accuracy"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return nn.ModuleDict(metrics)
