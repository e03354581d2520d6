"""Toxic comment classifiers, by name (the ``model`` run-config key of the ``toxic`` task).

A torchvision/timm-style registry: ``register_model`` refuses duplicates, ``list_models`` is
sorted and ``get_model`` lists the valid names when asked for an unknown one. Every model maps
right-padded token ids ``[B, L]`` to one logit per label ``[B, num_labels]``, trained from
scratch; defaults are small enough to train on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tasks.shared import ModelRegistry

ModelBuilder = Callable[[int, int, int], nn.Module]  # (vocab_size, num_labels, pad_id)
DEFAULT_MODEL = "lstm"
MODELS: ModelRegistry[ModelBuilder] = ModelRegistry("a toxic comment model", DEFAULT_MODEL, "toxic")
register_model = MODELS.register
list_models = MODELS.names  # sorted names of the registered toxic comment models
EMBEDDING_DIM = 64
HIDDEN_DIM = 64  # per direction
DROPOUT = 0.2


def get_model(name: str, vocab_size: int, num_labels: int, pad_id: int) -> nn.Module:
    """A fresh network of the kind registered as ``name`` (run-config ``model``), sized for a
    tokenizer's ids and the task's labels.

    Parameters
    ----------
    name : str
        A name of ``list_models()``.
    vocab_size : int
        Number of token ids (the tokenizer's).
    num_labels : int
        Number of output logits (6 for Jigsaw).
    pad_id : int
        The tokenizer's padding id; padded positions are ignored.

    Returns
    -------
    nn.Module
        A fresh, randomly initialised model mapping ids ``[B, L]`` to logits
        ``[B, num_labels]``.
    """
    builder = MODELS.builder(name)
    return builder(vocab_size, num_labels, pad_id)


class RecurrentEncoder(nn.Module):
    """Embedding and a packed bidirectional LSTM or GRU over the unpadded positions.

    ``forward`` returns features ``[B, L, 2 * hidden_dim]`` (zero at padding) and the mask
    ``[B, L]`` of real positions; a sequence of padding only counts as one position.
    """

    def __init__(self, vocab_size: int, pad_id: int, cell: type[nn.LSTM] | type[nn.GRU],
                 embedding_dim: int = EMBEDDING_DIM, hidden_dim: int = HIDDEN_DIM,
                 dropout: float = DROPOUT) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = cell(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = ids.shape[1]
        lengths = (ids != self.pad_id).sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(self.dropout(self.embedding(ids)), lengths.cpu(),
                                      batch_first=True, enforce_sorted=False)
        features, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                          total_length=length)
        mask = torch.arange(length, device=ids.device) < lengths.unsqueeze(1)
        return features, mask


class PooledRNN(nn.Module):
    """Bidirectional RNN, then max and mean pooling over real positions, then an MLP head."""

    def __init__(self, vocab_size: int, num_labels: int, pad_id: int,
                 cell: type[nn.LSTM] | type[nn.GRU] = nn.LSTM,
                 hidden_dim: int = HIDDEN_DIM) -> None:
        super().__init__()
        self.encoder = RecurrentEncoder(vocab_size, pad_id, cell, hidden_dim=hidden_dim)
        self.head = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(4 * hidden_dim, hidden_dim),
                                  nn.ReLU(), nn.Linear(hidden_dim, num_labels))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features, mask = self.encoder(ids)
        keep = mask.unsqueeze(-1)
        largest = features.masked_fill(~keep, float("-inf")).amax(dim=1)
        mean = (features * keep).sum(dim=1) / keep.sum(dim=1)
        return self.head(torch.cat([largest, mean], dim=1))


def squash(vectors: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Sabour et al.'s non-linearity: ``|s|^2 / (1 + |s|^2) * s / |s|`` (length in [0, 1))."""
    squared = (vectors * vectors).sum(dim=dim, keepdim=True)
    return vectors * (squared / (1.0 + squared)) / torch.sqrt(squared + eps)


class CapsuleLayer(nn.Module):
    """Capsules with dynamic routing (Sabour, Frosst & Hinton, 2017, Procedure 1).

    Every real position of the input is a primary capsule (its feature vector, squashed). Each
    makes a prediction ``u_hat = W u`` for every output capsule, with ``W`` shared across
    positions (any sequence length works). Routing runs ``routings`` iterations:
    ``c = softmax_j(b)``, ``v_j = squash(sum_i c_ij u_hat_j|i)``, ``b_ij += u_hat_j|i . v_j``.
    Padded positions get no coupling.
    """

    def __init__(self, in_dim: int, num_capsules: int = 10, capsule_dim: int = 16,
                 routings: int = 3) -> None:
        super().__init__()
        if routings < 1:
            raise ValueError(f"routings={routings}: must be >= 1")
        self.num_capsules, self.capsule_dim, self.routings = num_capsules, capsule_dim, routings
        self.predict = nn.Linear(in_dim, num_capsules * capsule_dim, bias=False)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Output capsules ``[B, num_capsules, capsule_dim]`` of inputs ``[B, L, in_dim]``."""
        batch, length, _ = inputs.shape
        u_hat = self.predict(squash(inputs)).view(batch, length, self.num_capsules,
                                                  self.capsule_dim).transpose(1, 2)
        logits = inputs.new_zeros(batch, self.num_capsules, length)  # b_ij
        keep = mask.unsqueeze(1).to(inputs.dtype)
        for iteration in range(self.routings):
            coupling = torch.softmax(logits, dim=1) * keep  # c_ij, over output capsules j
            outputs = squash((coupling.unsqueeze(-1) * u_hat).sum(dim=2))  # v_j
            if iteration < self.routings - 1:
                logits = logits + (u_hat * outputs.unsqueeze(2)).sum(dim=-1)
        return outputs


class CapsuleNet(nn.Module):
    """Bidirectional GRU features routed into capsules, flattened into a linear head."""

    def __init__(self, vocab_size: int, num_labels: int, pad_id: int,
                 num_capsules: int = 10, capsule_dim: int = 16, routings: int = 3) -> None:
        super().__init__()
        self.encoder = RecurrentEncoder(vocab_size, pad_id, nn.GRU)
        self.capsules = CapsuleLayer(2 * HIDDEN_DIM, num_capsules, capsule_dim, routings)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(DROPOUT),
                                  nn.Linear(num_capsules * capsule_dim, num_labels))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features, mask = self.encoder(ids)
        return self.head(self.capsules(features, mask))


@register_model(DEFAULT_MODEL)
def lstm(vocab_size: int, num_labels: int, pad_id: int) -> nn.Module:
    """BiLSTM (embedding 64, 64 units per direction), max+mean pooling, 64-unit MLP head."""
    return PooledRNN(vocab_size, num_labels, pad_id, nn.LSTM)


@register_model("gru")
def gru(vocab_size: int, num_labels: int, pad_id: int) -> nn.Module:
    """As ``lstm`` with a GRU (about 3/4 of the recurrent weights)."""
    return PooledRNN(vocab_size, num_labels, pad_id, nn.GRU)


@register_model("capsule")
def capsule(vocab_size: int, num_labels: int, pad_id: int) -> nn.Module:
    """BiGRU (embedding 64, 64 units per direction), 10 capsules of 16, 3 routing iterations."""
    return CapsuleNet(vocab_size, num_labels, pad_id)
