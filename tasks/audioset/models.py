"""AudioSet clip taggers, by name (the ``model`` run-config key of the ``audioset`` task).

Every model is the same CRNN encoder with a different pooling head over the 10 seconds:

- encoder: BatchNorm of the 128-d embeddings, then per second ``layers`` x (Linear, BatchNorm,
  ReLU, dropout) of ``hidden`` units (Kong et al. 2018's embedding layers, narrower), then a
  bidirectional GRU over time (the recurrent half of a CRNN). Its two outputs, the per-second
  MLP features and the GRU features, are the two *levels* the heads can pool.
- ``crnn-ap`` / ``crnn-mp``: per-second class probabilities of the GRU level, averaged / maxed
  over time (decision-level average and max pooling).
- ``crnn-sa``: decision-level single attention (Kong et al. 2018, "Audio Set classification
  with attention model: a probabilistic perspective"): per-second probabilities weighted by
  sigmoid attention normalised to sum to 1 over time, per class.
- ``crnn-ma``: multi-level attention (Yu et al. 2018, "Multi-level attention model for weakly
  supervised audio classification"): one attention module per level, their clip outputs
  concatenated and mapped by a final fully connected layer (sigmoid) to the classes.

Models output probabilities (the loss is BCE on probabilities, as in Kong's code); the layer
whose sigmoid is the clip output starts every class at probability ``OUTPUT_PRIOR``. A
torchvision/timm-style registry: ``register_model`` refuses duplicates, ``list_models`` is
sorted and ``get_model`` lists the valid names when asked for an unknown one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from tasks.audioset.hdf5 import EMBEDDING_DIM
from tasks.shared import ModelRegistry

DEFAULT_MODEL = "crnn-ma"
ATTENTION_FLOOR = 1e-7  # sigmoid attention is clamped to [floor, 1 - floor] (Kong's epsilon)
# Initial clip probability of every class (Lin et al. 2017's prior initialisation of the output
# bias). AudioSet labels are rare (about 2.7 of 527 per clip): starting at 0.5 spends the first
# thousand steps pushing 527 outputs down, and on small or federated budgets the heads that
# start there (AP, MP, SA) barely learn the positives at all.
OUTPUT_PRIOR = 0.01


class Pooled(NamedTuple):
    """What a model returns.

    Attributes
    ----------
    probs : torch.Tensor
        Clip-level class probabilities ``[B, C]`` (what the loss and the scores use).
    frame_probs : tuple[torch.Tensor, ...]
        Per level that was pooled, per-second class probabilities ``[B, T, C]``.
    weights : tuple[torch.Tensor, ...]
        Per level, the pooling weights over time ``[B, T, C]``; each sums to 1 over ``T``
        (uniform for average pooling, one-hot at the arg-max for max pooling).
    """

    probs: torch.Tensor
    frame_probs: tuple[torch.Tensor, ...]
    weights: tuple[torch.Tensor, ...]


ModelBuilder = Callable[[int, int, float], nn.Module]
MODELS: ModelRegistry[ModelBuilder] = ModelRegistry("an AudioSet model", DEFAULT_MODEL, "audioset")
register_model = MODELS.register
list_models = MODELS.names  # sorted names of the registered AudioSet models


def get_model(name: str, num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """Build the model registered as ``name``.

    Parameters
    ----------
    name : str
        Registry name (run-config ``model``).
    num_classes : int
        Number of output classes (527 for AudioSet).
    hidden : int
        Width of the embedding MLP and of the GRU output (even; run-config
        ``audioset-hidden``).
    dropout : float
        Dropout after each MLP layer (run-config ``audioset-dropout``).

    Returns
    -------
    nn.Module
        A fresh model mapping ``[B, 10, 128]`` float embeddings to a ``Pooled``.
    """
    builder = MODELS.builder(name)
    return builder(num_classes, hidden, dropout)


def _output_layer(hidden: int, num_classes: int) -> nn.Linear:
    """The layer whose sigmoid is the clip probability, biased to ``OUTPUT_PRIOR``."""
    layer = nn.Linear(hidden, num_classes)
    nn.init.constant_(layer.bias, math.log(OUTPUT_PRIOR / (1.0 - OUTPUT_PRIOR)))
    return layer


def _per_second(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` to every time step of ``[B, T, D]`` (BatchNorm over B * T)."""
    return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class CrnnEncoder(nn.Module):
    """Embedding MLP per second, then a bidirectional GRU over time.

    Parameters
    ----------
    hidden : int
        MLP width and GRU output width (``hidden // 2`` per direction).
    dropout : float
        Dropout after each MLP layer.
    layers : int
        Number of MLP layers (default: 2).
    """

    def __init__(self, hidden: int, dropout: float, layers: int = 2) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.BatchNorm1d(EMBEDDING_DIM)]
        width = EMBEDDING_DIM
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden),
                       nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*blocks)
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Levels ``(mlp, gru)``, each ``[B, T, hidden]``, of embeddings ``[B, T, 128]``."""
        mlp = _per_second(self.mlp, x)
        gru, _ = self.gru(mlp)
        return mlp, gru


class FramePooling(nn.Module):
    """Per-second class probabilities pooled by their mean or their max over time."""

    def __init__(self, hidden: int, num_classes: int, mode: str) -> None:
        super().__init__()
        if mode not in ("average", "max"):
            raise ValueError(f"mode={mode!r}: use 'average' or 'max'")
        self.mode = mode
        self.cla = _output_layer(hidden, num_classes)

    def forward(self, levels: tuple[torch.Tensor, ...]) -> Pooled:
        frame = torch.sigmoid(self.cla(levels[-1]))
        if self.mode == "average":
            weights = torch.full_like(frame, 1.0 / frame.shape[1])
        else:
            weights = torch.zeros_like(frame).scatter_(1, frame.argmax(1, keepdim=True), 1.0)
        return Pooled((weights * frame).sum(1), (frame,), (weights,))


class Attention(nn.Module):
    """Decision-level attention (Kong et al. 2018): sigmoid classifier and sigmoid attention.

    ``clip = sum_t w_t * cla_t`` with ``w_t = att_t / sum_t att_t`` per class. ``prior_bias``
    starts ``cla`` at ``OUTPUT_PRIOR`` (when the clip output is the model's output).
    """

    def __init__(self, hidden: int, num_classes: int, prior_bias: bool = True) -> None:
        super().__init__()
        self.att = nn.Linear(hidden, num_classes)
        self.cla = (_output_layer(hidden, num_classes) if prior_bias
                    else nn.Linear(hidden, num_classes))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(clip [B, C], frame [B, T, C], weights [B, T, C])`` of features ``[B, T, D]``."""
        frame = torch.sigmoid(self.cla(h))
        att = torch.sigmoid(self.att(h)).clamp(ATTENTION_FLOOR, 1.0 - ATTENTION_FLOOR)
        weights = att / att.sum(dim=1, keepdim=True)
        return (weights * frame).sum(1), frame, weights


class SingleAttention(nn.Module):
    """One attention module on the last (GRU) level."""

    def __init__(self, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.attention = Attention(hidden, num_classes)

    def forward(self, levels: tuple[torch.Tensor, ...]) -> Pooled:
        clip, frame, weights = self.attention(levels[-1])
        return Pooled(clip, (frame,), (weights,))


class MultiLevelAttention(nn.Module):
    """One attention module per level; concatenated clip outputs -> FC -> sigmoid (Yu et al.)."""

    def __init__(self, hidden: int, num_classes: int, num_levels: int = 2) -> None:
        super().__init__()
        # Only the final layer starts at the prior: attention outputs near 0 would starve it.
        self.attentions = nn.ModuleList(Attention(hidden, num_classes, prior_bias=False)
                                        for _ in range(num_levels))
        self.fc_final = _output_layer(num_levels * num_classes, num_classes)

    def forward(self, levels: tuple[torch.Tensor, ...]) -> Pooled:
        outputs = [attention(level) for attention, level in zip(self.attentions, levels,
                                                                  strict=True)]
        clips = torch.cat([clip for clip, _, _ in outputs], dim=1)
        probs = torch.sigmoid(self.fc_final(clips))
        return Pooled(probs, tuple(o[1] for o in outputs), tuple(o[2] for o in outputs))


class Crnn(nn.Module):
    """CRNN encoder + pooling head: ``[B, 10, 128]`` embeddings -> ``Pooled``."""

    def __init__(self, encoder: CrnnEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> Pooled:
        return self.head(self.encoder(x))


@register_model("crnn-ap")
def crnn_ap(num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """Decision-level average pooling over the GRU level."""
    return Crnn(CrnnEncoder(hidden, dropout), FramePooling(hidden, num_classes, "average"))


@register_model("crnn-mp")
def crnn_mp(num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """Decision-level max pooling over the GRU level."""
    return Crnn(CrnnEncoder(hidden, dropout), FramePooling(hidden, num_classes, "max"))


@register_model("crnn-sa")
def crnn_sa(num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """Single attention over the GRU level (Kong et al. 2018)."""
    return Crnn(CrnnEncoder(hidden, dropout), SingleAttention(hidden, num_classes))


@register_model(DEFAULT_MODEL)
def crnn_ma(num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """Multi-level attention over the MLP and GRU levels (Yu et al. 2018); the default."""
    return Crnn(CrnnEncoder(hidden, dropout), MultiLevelAttention(hidden, num_classes))
