"""The paper's image models (Tables 1-3), built from scratch: torchvision where it has them,
timm where it has not (Inception-V4, Inception-ResNet-V2, ResNet-V2-101), and DenseNet-40 here.

Every builder takes ``(in_channels, num_classes, image_size)`` and adapts the network to the
data: the first convolution takes the data set's channels; small images (CIFAR's 32x32,
Fashion-MNIST's 28x28) get the CIFAR variants the papers use (a 3x3 stride-1 stem for
ResNet-152, a 512-wide classifier for VGG-19); a model whose stem needs larger inputs than the
data has (Inception: 75x75) upsamples them bilinearly inside its forward pass. No weights are
downloaded: ``pretrained=False`` / ``weights=None`` everywhere.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet152, vgg19_bn

from tasks.image.models import register_model

SMALL_IMAGES = 64  # below this side length, models take their CIFAR variants


class MinInputSize(nn.Module):
    """Upsample inputs smaller than ``min_size`` (bilinear) before ``net``.

    Parameters
    ----------
    net : nn.Module
        The wrapped network.
    min_size : int
        Smallest height/width ``net`` accepts.
    """

    def __init__(self, net: nn.Module, min_size: int) -> None:
        super().__init__()
        self.net = net
        self.min_size = min_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if min(images.shape[-2:]) < self.min_size:
            images = F.interpolate(images, size=(self.min_size, self.min_size),
                                   mode="bilinear", align_corners=False)
        return self.net(images)


def _first_conv(conv: nn.Conv2d, in_channels: int, **changes: object) -> nn.Conv2d:
    """A fresh copy of ``conv`` with ``in_channels`` (and any changed hyperparameters)."""
    args = {"out_channels": conv.out_channels, "kernel_size": conv.kernel_size,
            "stride": conv.stride, "padding": conv.padding, "bias": conv.bias is not None}
    args.update(changes)
    return nn.Conv2d(in_channels, **args)  # type: ignore[arg-type]


@register_model("vgg-19-bn")
def vgg_19_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """VGG-19 with batch norm (torchvision; 20.0 M parameters in the CIFAR variant).

    Small images keep the 16 conv layers and end in a single 512 -> classes layer (the CIFAR
    VGG); ImageNet-size images keep torchvision's 4096-wide classifier (143.7 M parameters).
    """
    net = vgg19_bn(weights=None, num_classes=num_classes)
    net.features[0] = _first_conv(net.features[0], in_channels)
    if image_size < SMALL_IMAGES:
        net.avgpool = nn.Flatten()  # 32x32 -> 1x1 after five poolings
        net.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, num_classes))
    return MinInputSize(net, 32)


@register_model("resnet-152")
def resnet_152(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-152 (torchvision); for small images a 3x3 stride-1 stem and no max-pool."""
    net = resnet152(weights=None, num_classes=num_classes)
    if image_size < SMALL_IMAGES:
        net.conv1 = _first_conv(net.conv1, in_channels, kernel_size=3, stride=1, padding=1)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = _first_conv(net.conv1, in_channels)
    return net


def _timm(name: str, in_channels: int, num_classes: int, min_size: int) -> nn.Module:
    net = timm.create_model(name, pretrained=False, num_classes=num_classes,
                            in_chans=in_channels)
    return MinInputSize(net, min_size)


@register_model("inception-v4")
def inception_v4(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Inception-V4 (timm ``inception_v4``); inputs below 75x75 are upsampled to 75x75."""
    return _timm("inception_v4", in_channels, num_classes, 75)


@register_model("inception-resnet-v2")
def inception_resnet_v2(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Inception-ResNet-V2 (timm ``inception_resnet_v2``); inputs below 75x75 upsampled."""
    return _timm("inception_resnet_v2", in_channels, num_classes, 75)


@register_model("resnet-v2-101")
def resnet_v2_101(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-V2-101, pre-activation (timm ``resnetv2_101``); any input of 32x32 or more."""
    return _timm("resnetv2_101", in_channels, num_classes, 32)


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv3x3 producing ``growth`` new feature maps, concatenated to the input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(in_channels, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def densenet(in_channels: int, num_classes: int, depth: int = 40, growth: int = 12
             ) -> nn.Sequential:
    """The original CIFAR DenseNet (Huang et al. 2017): three dense blocks of ``(depth-4)/3``
    BN-ReLU-Conv3x3 layers, no bottleneck and no compression, 1x1 conv + avg-pool transitions.

    torchvision's DenseNet is the ImageNet DenseNet-BC (bottlenecks, halving transitions, a
    7x7 stride-2 stem), which cannot express DenseNet-40 (k=12), hence this builder.
    """
    if (depth - 4) % 3:
        raise ValueError(f"DenseNet depth {depth}: depth - 4 must be divisible by 3")
    per_block = (depth - 4) // 3
    channels = 16  # the stem's width in the original (non-BC) DenseNet
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
    for block in range(3):
        for _ in range(per_block):
            layers.append(_DenseLayer(channels, growth))
            channels += growth
        if block < 2:
            layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                       nn.Conv2d(channels, channels, 1, bias=False), nn.AvgPool2d(2)]
    layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


@register_model("densenet-40")
def densenet_40(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """DenseNet-40 with growth rate 12 (1.02 M parameters for 10 classes)."""
    return densenet(in_channels, num_classes, depth=40, growth=12)
