"""The ``audioset`` task: 527-class clip tagging of AudioSet's per-second embeddings.

The paper's Table 6 experiment: a CRNN with four pooling heads (``model``: ``crnn-ap``,
``crnn-mp``, ``crnn-sa``, ``crnn-ma``; '' = ``crnn-ma``) trained with BCE, scored by macro mAP,
macro AUC and d-prime (``map``, ``auroc``, ``d-prime``; docs/tasks/audioset.md).

Data per site (``tasks.audioset_data``):

- simulation: every site reads the run config's ``data-dir``, keeps its partition of the
  training rows (``partitioning``: ``iid``, or ``dirichlet`` over each clip's first positive
  class) and validates on its IID shard of ``eval.h5``;
- deployment (node config ``data-dir``): the site uses all of its own files; without
  ``eval.h5`` it validates on a seeded 10% hold-out of its training rows;
- the server evaluates on the whole ``eval.h5`` of the run config's ``data-dir``, if present.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import Context

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.errors import ConfigError
from tasks import Task, register_task
from tasks.audioset_data import (
    DEFAULT_DATA_DIR,
    NUM_CLASSES,
    TRAIN_FILES,
    AudioSetDataModule,
    eval_available,
)
from tasks.audioset_metrics import AUROC, D_PRIME, MAP, ClipScores, clip_bce
from tasks.audioset_models import DEFAULT_MODEL, get_model, list_models
from tasks.common import site_arguments, site_source

OPTIMIZERS = ("adam", "sgd")
ADAM_LR_WARN = 0.01  # above this lr-max, Adam diverges or stalls on these embeddings
Clips = tuple[torch.Tensor, torch.Tensor]  # float32 [B, 10, 128], float32 multi-hot [B, 527]


@dataclass(frozen=True)
class AudioSetConfig:
    """The ``audioset`` task's own run-config keys (``audioset-*``; defaults in pyproject)."""

    audioset_train: str = "bal_train"  # training files: bal_train | unbal_train | both
    audioset_hidden: int = 256  # width of the embedding MLP and of the GRU output (even)
    audioset_dropout: float = 0.2  # dropout after each embedding-MLP layer
    audioset_optimizer: str = "adam"  # adam | sgd (Nesterov, momentum 0.9); LR from the cycle

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        if self.audioset_train not in TRAIN_FILES:
            raise ConfigError(f"audioset-train={self.audioset_train!r} is not known; use one "
                              f"of: {', '.join(TRAIN_FILES)}.")
        if self.audioset_hidden < 2 or self.audioset_hidden % 2:
            raise ConfigError(f"audioset-hidden={self.audioset_hidden}: must be an even "
                              "number >= 2 (the bidirectional GRU gives each direction half).")
        if not 0.0 <= self.audioset_dropout < 1.0:
            raise ConfigError(f"audioset-dropout={self.audioset_dropout}: must be in [0, 1).")
        check_optimizer(self.audioset_optimizer)


def check_optimizer(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is one of ``OPTIMIZERS``."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"audioset-optimizer={name!r} is not known; use one of: "
                          f"{', '.join(OPTIMIZERS)}.")


class AudioSetTagger(pl.LightningModule):
    """Multi-label clip tagger; logs ``train-loss`` and ``loss`` / ``map`` / ``auroc`` /
    ``d-prime``.

    Parameters
    ----------
    model : str
        AudioSet model registry name (default: ``'crnn-ma'``).
    num_classes : int
        Number of classes (default: 527).
    hidden : int
        Encoder width (default: 256).
    dropout : float
        Embedding-MLP dropout (default: 0.2).
    optimizer : {'adam', 'sgd'}
        Optimizer; the server's cycle sets its LR every step (default: ``'adam'``).
    lr : float
        Initial LR, overridden by the cycle (default: 1e-3).
    """

    def __init__(self, model: str = DEFAULT_MODEL, num_classes: int = NUM_CLASSES,
                 hidden: int = 256, dropout: float = 0.2, optimizer: str = "adam",
                 lr: float = 1e-3) -> None:
        super().__init__()
        check_optimizer(optimizer)
        self.save_hyperparameters()
        self.net = get_model(model, num_classes, hidden, dropout)
        # Separate score objects: validation and test accumulate independently.
        self.val_scores = ClipScores(num_classes)
        self.test_scores = ClipScores(num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clip probabilities ``[B, num_classes]`` of embeddings ``[B, 10, 128]``."""
        return self.net(clips).probs

    def training_step(self, batch: Clips, batch_idx: int) -> torch.Tensor:
        clips, targets = batch
        loss = clip_bce(self(clips), targets)
        self.log("train-loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(targets))
        return loss

    def validation_step(self, batch: Clips, batch_idx: int) -> None:
        self._evaluate(batch, self.val_scores)

    def test_step(self, batch: Clips, batch_idx: int) -> None:
        self._evaluate(batch, self.test_scores)

    def on_validation_epoch_end(self) -> None:
        self._log_scores(self.val_scores)

    def on_test_epoch_end(self) -> None:
        self._log_scores(self.test_scores)

    def _evaluate(self, batch: Clips, scores: ClipScores) -> None:
        clips, targets = batch
        probs = self(clips)
        scores.update(probs, targets)
        self.log("loss", clip_bce(probs, targets), on_step=False, on_epoch=True,
                 batch_size=len(targets))

    def _log_scores(self, scores: ClipScores) -> None:
        # Ranking scores need every clip at once: computed at epoch end, then cleared.
        results = scores.compute()
        self.log_dict({name: results[name] for name in (MAP, AUROC, D_PRIME)})
        scores.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (ServerSchedule callback) sets the LR.
        if self.hparams.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9,
                                   nesterov=True)
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def module_fn(run_config: Mapping[str, Any]) -> AudioSetTagger:
    """The model named by ``model`` ('' = crnn-ma) with the ``audioset-*`` settings."""
    config = RunConfig.from_dict(run_config)
    task = parse_section(AudioSetConfig, run_config)
    if task.audioset_optimizer == "adam" and config.lr_max > ADAM_LR_WARN:
        warnings.warn(f"task='audioset' with audioset-optimizer='adam' and lr-max="
                      f"{config.lr_max}: Adam does not learn at this LR (measured: mAP stays "
                      "at the label prior); the Table 6 setting uses lr-max=0.001 "
                      "lr-min=0.00001 (docs/tasks/audioset.md).", UserWarning, stacklevel=2)
    return AudioSetTagger(model=config.model or DEFAULT_MODEL, hidden=task.audioset_hidden,
                          dropout=task.audioset_dropout, optimizer=task.audioset_optimizer,
                          lr=config.lr_max)


def _datamodule(run_config: Mapping[str, Any], data_dir: str,
                partition: tuple[int, int] | None) -> AudioSetDataModule:
    task = parse_section(AudioSetConfig, run_config)
    return AudioSetDataModule(data_dir, train_set=task.audioset_train,
                              **site_arguments(RunConfig.from_dict(run_config), partition))


def datamodule_fn(context: Context) -> AudioSetDataModule:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition."""
    source = site_source(context, DEFAULT_DATA_DIR)
    return _datamodule(context.run_config, source.data_dir, source.partition)


def central_datamodule_fn(run_config: Mapping[str, Any]) -> AudioSetDataModule | None:
    """The server's whole ``eval.h5``, or ``None`` when ``data-dir`` has none."""
    data_dir = RunConfig.from_dict(run_config).data_dir or DEFAULT_DATA_DIR
    if not eval_available(data_dir):
        return None
    return _datamodule(run_config, data_dir, None)


register_task(
    Task(
        name="audioset",
        module_fn=module_fn,
        datamodule_fn=datamodule_fn,
        central_datamodule_fn=central_datamodule_fn,
        metrics=(MAP, AUROC, D_PRIME),
        models=list_models,
        config=AudioSetConfig,
    )
)
