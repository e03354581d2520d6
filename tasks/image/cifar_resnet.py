"""He et al.'s CIFAR ResNets (depth 6n + 2: ResNet-8, ResNet-20), small enough for CPUs.

"Deep Residual Learning for Image Recognition" (CVPR 2016), section 4.2: a 3x3 stem of 16
channels, three stages of ``n`` basic blocks (16, 32 and 64 channels; stages 2 and 3 halve the
resolution), global average pooling and one linear layer. Shortcuts that change shape are a
1x1 convolution with BatchNorm (option B). Any input size and channel count works (global
pooling), so they run on 28x28 Fashion-MNIST as well as 32x32 CIFAR-10. Importing this module
registers ``resnet-8`` and ``resnet-20``.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.image.models import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                          nn.BatchNorm2d(out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def cifar_resnet(in_channels: int, num_classes: int, depth: int) -> nn.Module:
    """The CIFAR ResNet of ``depth`` = 6n + 2 layers."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth}: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, ...)")
    blocks, layers, channels = (depth - 2) // 6, [], 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(blocks):
            layers.append(BasicBlock(channels, width, 2 if stage and not block else 1))
            channels = width
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
        nn.ReLU(inplace=True), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, num_classes))


@register_model("resnet-8")
def resnet_8(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-8 (n = 1, ~0.08 M parameters): the deeper CPU model of the harder setting."""
    return cifar_resnet(in_channels, num_classes, 8)


@register_model("resnet-20")
def resnet_20(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-20 (n = 3, ~0.27 M parameters), He et al.'s smallest CIFAR-10 model."""
    return cifar_resnet(in_channels, num_classes, 20)
