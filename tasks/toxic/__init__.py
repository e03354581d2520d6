"""The ``toxic`` task: Jigsaw multi-label toxic comment classification (the paper's Table 4).

Six labels (``toxic, severe_toxic, obscene, threat, insult, identity_hate``), models trained
from scratch (``model``: ``lstm`` = BiLSTM with max+mean pooling, ``capsule`` = BiGRU +
capsules with dynamic routing), scored by the mean column-wise ROC AUC (``auroc``). The task's
own keys: ``tasks.toxic.config.ToxicConfig``; the module: ``tasks.toxic.module``; data per
site: ``tasks.toxic.data``; the CSV files: ``tasks.toxic.jigsaw``; tokenizers:
``tasks.toxic.text``.
"""

from __future__ import annotations

from tasks.registry import Task, register_task
from tasks.shared import Site
from tasks.toxic.config import ToxicConfig
from tasks.toxic.data import ToxicDataModule
from tasks.toxic.jigsaw import DEFAULT_DATA_DIR, LABELS, has_test_split
from tasks.toxic.models import DEFAULT_MODEL, list_models
from tasks.toxic.module import ToxicClassifier
from tasks.toxic.text import TextEncoder, build_encoder


def build_module(config: ToxicConfig, model: str = "", lr: float = 0.05) -> ToxicClassifier:
    """The model named ``model`` ('' = lstm) for the configured tokenizer's ids, Adam starting
    at ``lr`` (the run's lr-max; default: the run config's default lr-max)."""
    encoder = _encoder(config)
    return ToxicClassifier(encoder.vocab_size, encoder.pad_id, model or DEFAULT_MODEL, lr=lr)


def build_datamodule(config: ToxicConfig, site: Site) -> ToxicDataModule:
    """A site's comments, tokenized as configured; ``site.data_dir == ''`` = the default."""
    return ToxicDataModule(site.located(DEFAULT_DATA_DIR), encoder=_encoder(config),
                           seq_len=config.seq_len)


def build_central_datamodule(config: ToxicConfig, site: Site) -> ToxicDataModule | None:
    """The server's scored test rows, or ``None`` when ``site``'s data-dir has no test files."""
    site = site.pooled().located(DEFAULT_DATA_DIR)
    if not has_test_split(site.data_dir):
        return None
    return build_datamodule(config, site)


def _encoder(config: ToxicConfig) -> TextEncoder:
    return build_encoder(config.tokenizer, config.tokenizer_dir, config.hash_buckets)


TASK = register_task(
    Task(
        name="toxic",
        config=ToxicConfig,
        build_module=build_module,
        build_datamodule=build_datamodule,
        build_central_datamodule=build_central_datamodule,
        metrics=("auroc", *(f"auc-{label}" for label in LABELS)),
        models=list_models,
    )
)

__all__ = ["TASK", "ToxicClassifier", "ToxicConfig", "ToxicDataModule", "build_central_datamodule",
           "build_datamodule", "build_module"]
