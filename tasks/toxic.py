"""The ``toxic`` task: Jigsaw multi-label toxic comment classification (the paper's Table 4).

Six labels (``toxic, severe_toxic, obscene, threat, insult, identity_hate``), models trained
from scratch (``model``: ``lstm`` = BiLSTM with max+mean pooling, ``capsule`` = BiGRU +
capsules with dynamic routing), scored by the mean column-wise ROC AUC (``auroc``). Data per
site: see ``tasks.toxic_data``; the task's own keys: ``ToxicConfig``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from flwr.app import Context
from torchmetrics.classification import MultilabelAUROC
from torchmetrics.utilities import dim_zero_cat

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.errors import ConfigError
from tasks import Task, register_task
from tasks.common import site_arguments, site_source
from tasks.toxic_csv import DEFAULT_DATA_DIR, LABELS, has_test_split
from tasks.toxic_data import ToxicDataModule
from tasks.toxic_models import DEFAULT_MODEL, get_model, list_models
from tasks.toxic_text import TOKENIZERS, TextEncoder, build_encoder

UNDEFINED_AUC = 0.5  # logged for a label whose split has no positive (or no negative) row
GRAD_CLIP_NORM = 1.0  # recurrent nets: bounds each step whatever LR the server's cycle sets
Batch = tuple[torch.Tensor, torch.Tensor]  # int32 ids [B, L], float 0/1 labels [B, 6]


@dataclass(frozen=True)
class ToxicConfig:
    """The ``toxic`` task's run-config keys (kebab-case on the wire, defaults in pyproject)."""

    tokenizer: str = "byt5"  # byt5 (bytes) | word-hash (crc32 of words) | pretrained (dir)
    tokenizer_dir: str = ""  # tokenizer.save_pretrained() directory, for tokenizer='pretrained'
    seq_len: int = 256  # tokens per comment (truncated or padded)
    hash_buckets: int = 20000  # word-hash vocabulary size, id 0 = padding

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer={self.tokenizer!r} is not known; use one of: "
                              f"{', '.join(TOKENIZERS)}.")
        if self.tokenizer == "pretrained" and not self.tokenizer_dir:
            raise ConfigError("tokenizer='pretrained' needs tokenizer-dir: a local directory "
                              "written by tokenizer.save_pretrained(...).")
        if self.tokenizer_dir and self.tokenizer != "pretrained":
            raise ConfigError(f"tokenizer-dir={self.tokenizer_dir!r} is set but tokenizer="
                              f"{self.tokenizer!r}; set tokenizer='pretrained' to use it, or "
                              "tokenizer-dir='' to keep the built-in tokenizer.")
        if self.seq_len < 2:
            raise ConfigError(f"seq-len={self.seq_len}: must be >= 2 tokens per comment.")
        if self.hash_buckets < 2:
            raise ConfigError(f"hash-buckets={self.hash_buckets}: must be >= 2 "
                              "(id 0 is padding).")


def auroc_scores(per_label: torch.Tensor, target: torch.Tensor) -> tuple[float, list[float]]:
    """Macro AUROC and per-label AUROCs, with undefined labels handled.

    A label's ROC AUC is undefined when the split has no positive (or no negative) row for it;
    torchmetrics then returns 0 and would pull the macro mean down. Here such a label is
    reported as ``UNDEFINED_AUC`` (0.5, a constant predictor's AUC) and left out of the macro
    mean, which averages the defined labels only (0.5 when none is defined).

    Parameters
    ----------
    per_label : torch.Tensor
        ``[num_labels]`` AUROCs from ``MultilabelAUROC(average=None)``.
    target : torch.Tensor
        ``[N, num_labels]`` 0/1 targets the AUROCs were computed on.
    """
    defined = (target.amax(dim=0) > 0) & (target.amin(dim=0) < 1)
    values = torch.where(defined, per_label.float(), torch.tensor(UNDEFINED_AUC))
    macro = float(values[defined].mean()) if bool(defined.any()) else UNDEFINED_AUC
    return macro, [float(v) for v in values]


class ToxicClassifier(pl.LightningModule):
    """Multi-label comment classifier; logs ``train-loss``, ``loss``, ``auroc``, ``auc-<label>``.

    Parameters
    ----------
    vocab_size : int
        Number of token ids (the tokenizer's).
    pad_id : int
        The tokenizer's padding id.
    model : str
        Toxic model registry name (default: ``'lstm'``).
    lr : float
        Initial Adam learning rate; the server's cycle overrides it every step
        (default: 0.003).
    """

    def __init__(self, vocab_size: int, pad_id: int, model: str = DEFAULT_MODEL,
                 lr: float = 0.003) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = get_model(model, vocab_size, len(LABELS), pad_id)
        # Separate metric objects: validation and test accumulate independently.
        self.val_auroc = MultilabelAUROC(len(LABELS), average=None)
        self.test_auroc = MultilabelAUROC(len(LABELS), average=None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 6]`` of token ids ``[B, L]``."""
        return self.net(ids)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        ids, labels = batch
        loss = F.binary_cross_entropy_with_logits(self(ids), labels)
        self.log("train-loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_auroc)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_auroc)

    def on_validation_epoch_end(self) -> None:
        self._log_auroc(self.val_auroc)

    def on_test_epoch_end(self) -> None:
        self._log_auroc(self.test_auroc)

    def _evaluate(self, batch: Batch, auroc: MultilabelAUROC) -> None:
        ids, labels = batch
        logits = self(ids)
        auroc.update(torch.sigmoid(logits), labels.int())
        self.log("loss", F.binary_cross_entropy_with_logits(logits, labels), on_step=False,
                 on_epoch=True, batch_size=len(labels))

    def _log_auroc(self, auroc: MultilabelAUROC) -> None:
        if auroc.update_count == 0:
            return  # no rows to score (an empty validation shard): only the loss is logged
        with warnings.catch_warnings():  # undefined labels are handled by auroc_scores
            warnings.simplefilter("ignore", UserWarning)
            per_label = auroc.compute()
        target = dim_zero_cat(auroc.target)
        macro, values = auroc_scores(per_label, target)
        auroc.reset()
        self.log("auroc", macro)
        for label, value in zip(LABELS, values, strict=True):
            self.log(f"auc-{label}", value)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val or GRAD_CLIP_NORM,
                            gradient_clip_algorithm=gradient_clip_algorithm or "norm")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (ServerSchedule callback) sets the LR.
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def module_fn(run_config: Mapping[str, Any]) -> ToxicClassifier:
    """The model named by ``model`` ('' = lstm) for the configured tokenizer's ids."""
    config = RunConfig.from_dict(run_config)
    encoder = _encoder(parse_section(ToxicConfig, run_config))
    return ToxicClassifier(encoder.vocab_size, encoder.pad_id, config.model or DEFAULT_MODEL,
                           lr=config.lr_max)


def _encoder(section: ToxicConfig) -> TextEncoder:
    return build_encoder(section.tokenizer, section.tokenizer_dir, section.hash_buckets)


def _datamodule(run_config: Mapping[str, Any], data_dir: str,
                partition: tuple[int, int] | None) -> ToxicDataModule:
    section = parse_section(ToxicConfig, run_config)
    return ToxicDataModule(data_dir, encoder=_encoder(section), seq_len=section.seq_len,
                           **site_arguments(RunConfig.from_dict(run_config), partition))


def datamodule_fn(context: Context) -> ToxicDataModule:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition."""
    source = site_source(context, DEFAULT_DATA_DIR)
    return _datamodule(context.run_config, source.data_dir, source.partition)


def central_datamodule_fn(run_config: Mapping[str, Any]) -> ToxicDataModule | None:
    """The server's scored test rows, or ``None`` when ``data-dir`` has no test files."""
    data_dir = RunConfig.from_dict(run_config).data_dir or DEFAULT_DATA_DIR
    if not has_test_split(data_dir):
        return None
    return _datamodule(run_config, data_dir, None)


register_task(
    Task(
        name="toxic",
        module_fn=module_fn,
        datamodule_fn=datamodule_fn,
        central_datamodule_fn=central_datamodule_fn,
        metrics=("auroc", *(f"auc-{label}" for label in LABELS)),
        models=list_models,
        config=ToxicConfig,
    )
)
