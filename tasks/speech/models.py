"""Keyword-spotting models, by name (the ``model`` run-config key).

``tasks.speech.module.KeywordSpotter`` puts the chosen network behind the log-mel frontend.
The registry is torchvision/timm-style: ``register_model`` refuses duplicates, ``list_models``
is sorted and ``get_model`` lists the valid names when asked for an unknown one. Every model
maps feature images ``[B, 1, frames, bins]`` to logits ``[B, num_classes]``.

Both models are the TensorFlow speech-commands tutorial's (``models.py``), with TensorFlow's
``SAME`` padding: ``conv`` (its default, "roughly cnn-trad-fpool3" of Sainath & Parada, 2015,
"Convolutional neural networks for small-footprint keyword spotting") and ``tiny-conv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tasks.shared import ModelRegistry

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
