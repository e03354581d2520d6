"""Keyword-spotting models, by name (the ``model`` run-config key), and the Lightning module.

``KeywordSpotter`` is the ``speech`` task's LightningModule: log-mel frontend (on the model's
device), input batch norm, and the registry's network. The registry is torchvision/timm-style:
``register_model`` refuses duplicates, ``list_models`` is sorted and ``get_model`` lists the
valid names when asked for an unknown one. Every model maps feature images
``[B, 1, frames, bins]`` to logits ``[B, num_classes]``.

Both models are the TensorFlow speech-commands tutorial's (``models.py``), with TensorFlow's
``SAME`` padding: ``conv`` (its default, "roughly cnn-trad-fpool3" of Sainath & Parada, 2015,
"Convolutional neural networks for small-footprint keyword spotting") and ``tiny-conv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from tasks.registry import ModelRegistry
from tasks.speech_features import FeatureSpec, LogMel

InputShape = tuple[int, int]  # (frames, bins) of one feature image
ModelBuilder = Callable[[InputShape, int, float], nn.Module]
DEFAULT_MODEL = "conv"
MODELS: ModelRegistry[ModelBuilder] = ModelRegistry("a speech model", DEFAULT_MODEL, "speech")
register_model = MODELS.register
list_models = MODELS.names  # sorted names of the registered keyword-spotting models


def get_model(name: str, input_shape: InputShape, num_classes: int, dropout: float = 0.5
              ) -> nn.Module:
    """Build the model registered as ``name``.

    Parameters
    ----------
    name : str
        Registry name (run-config ``model``).
    input_shape : tuple[int, int]
        ``(frames, bins)`` of the feature images (98 x 40 for 1 s at the defaults).
    num_classes : int
        Number of output logits (keywords + silence + unknown).
    dropout : float
        Dropout probability after each convolution, in training (default: 0.5).

    Returns
    -------
    nn.Module
        A fresh, randomly initialised model mapping ``[B, 1, frames, bins]`` to logits.
    """
    builder = MODELS.builder(name)
    return builder(input_shape, num_classes, dropout)


class SameConv2d(nn.Conv2d):
    """``Conv2d`` with TensorFlow's ``SAME`` padding: output size ``ceil(input / stride)``.

    The total padding ``max((out - 1) * stride + kernel - in, 0)`` is split with the extra
    sample after, as TensorFlow does (PyTorch's ``padding='same'`` refuses stride > 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int],
                 stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel, stride=stride)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in zip(inputs.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1],
                              strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(inputs, pads))


def same_size(shape: InputShape, stride: int) -> InputShape:
    """Output ``(frames, bins)`` of a ``SAME`` convolution or pooling with ``stride``."""
    return math.ceil(shape[0] / stride), math.ceil(shape[1] / stride)


@register_model("conv")
def conv(input_shape: InputShape, num_classes: int, dropout: float) -> nn.Module:
    """cnn-trad-fpool3 as in TensorFlow's tutorial (~0.93 M parameters at 98 x 40, 12 classes).

    64 filters 20 (time) x 8 (frequency), ReLU, dropout, 2 x 2 max-pool; 64 filters 10 x 4,
    ReLU, dropout; one linear layer to the classes. About 0.2 G multiply-adds per 1 s clip.
    """
    pooled = same_size(input_shape, 2)
    return nn.Sequential(
        SameConv2d(1, 64, (20, 8)),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.MaxPool2d(2, ceil_mode=True),
        SameConv2d(64, 64, (10, 4)),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(64 * pooled[0] * pooled[1], num_classes),
    )


@register_model("tiny-conv")
def tiny_conv(input_shape: InputShape, num_classes: int, dropout: float) -> nn.Module:
    """TensorFlow's ``tiny_conv``: 8 filters 10 x 8 with stride 2, dropout, one linear layer.

    ~0.1 M parameters at 98 x 40; about 0.7 M multiply-adds per clip (for quick runs and tests).
    """
    strided = same_size(input_shape, 2)
    return nn.Sequential(
        SameConv2d(1, 8, (10, 8), stride=2),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(8 * strided[0] * strided[1], num_classes),
    )


Batch = tuple[torch.Tensor, torch.Tensor]  # float waveforms [B, samples], int64 labels [B]


class KeywordSpotter(pl.LightningModule):
    """Waveforms -> features -> keyword logits; logs ``train-loss``, ``loss`` and ``accuracy``.

    The features are computed inside the module, so on the site's GPU when it has one. A
    ``BatchNorm2d(1)`` standardises them (not in TensorFlow's models: it lets one LR range
    suit log-mels and MFCCs alike). Parameters are primitives so Lightning's CSV logger can
    write them to ``hparams.yaml``.

    Parameters
    ----------
    model : str
        Speech model registry name (default: ``'conv'``).
    num_classes : int
        Keywords + silence + unknown (default: 12).
    sample_rate, clip_samples, window_ms, hop_ms, n_mels, f_min, f_max, mfcc
        The feature frontend, as ``FeatureSpec`` (defaults: 16000, 16000, 30.0, 10.0, 40, 20.0,
        7600.0, False).
    dropout : float
        Dropout after each convolution, in training (default: 0.5).
    lr : float
        Initial SGD learning rate; the server's cycle overrides it every step (default: 0.05).
    momentum : float
        Nesterov momentum (default: 0.9).
    max_grad_norm : float
        Every step's gradient is clipped to this L2 norm; 0 = off (default: 1.0).
    """

    def __init__(self, model: str = DEFAULT_MODEL, num_classes: int = 12,
                 sample_rate: int = 16000, clip_samples: int = 16000, window_ms: float = 30.0,
                 hop_ms: float = 10.0, n_mels: int = 40, f_min: float = 20.0,
                 f_max: float = 7600.0, mfcc: bool = False, dropout: float = 0.5,
                 lr: float = 0.05, momentum: float = 0.9, max_grad_norm: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = FeatureSpec(sample_rate, clip_samples, window_ms, hop_ms, n_mels, f_min, f_max,
                           mfcc)
        self.features = LogMel(spec)
        self.normalise = nn.BatchNorm2d(1)
        self.net = get_model(model, (spec.num_frames, n_mels), num_classes, dropout)
        # Separate metric objects: validation and test accumulate independently.
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of waveforms ``[B, clip_samples]`` in ``[-1, 1]``."""
        return self.net(self.normalise(self.features(waves)))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        waves, labels = batch
        loss = F.cross_entropy(self(waves), labels)
        self.log("train-loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_accuracy)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_accuracy)

    def _evaluate(self, batch: Batch, accuracy: MulticlassAccuracy) -> None:
        waves, labels = batch
        logits = self(waves)
        accuracy(logits, labels)
        self.log("loss", F.cross_entropy(logits, labels), on_step=False, on_epoch=True,
                 batch_size=len(labels))
        self.log("accuracy", accuracy, on_step=False, on_epoch=True, batch_size=len(labels))

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        # The tutorial's models end in a linear layer over ~63k (conv) or ~8k (tiny-conv)
        # activations: at the project's LR range (lr-max 0.05, momentum 0.9) one unbounded
        # step blows the logits up and training diverges to NaN within an epoch.
        if gradient_clip_val is None and self.hparams.max_grad_norm > 0:
            gradient_clip_val, gradient_clip_algorithm = self.hparams.max_grad_norm, "norm"
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (ServerSchedule callback) sets the LR.
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr,
                               momentum=self.hparams.momentum, nesterov=True)
