"""The ``speech`` task: keyword spotting on Speech Commands v0.02 (the paper's Table 5).

The standard 12-class setup of TensorFlow's tutorial: ten keywords, ``_silence_`` and
``_unknown_`` (docs/tasks/speech.md). ``config`` holds the ``speech-*`` keys, ``module`` the
``KeywordSpotter``, ``models`` its networks, ``data`` the ``SpeechDataModule``; ``folder``
reads the Speech Commands layout, ``index`` picks a site's clips, ``clips`` is the dataset,
``features`` the log-mel frontend and ``synth`` the offline espeak-ng demo set.

Data per site:

- simulation (a ``Site`` with a partition): every site indexes the run's ``data-dir`` and
  decodes only its own clips: its partition of the training split and its IID shard of the
  validation split;
- deployment (a ``Site`` without a partition): the site's own folder in the same layout, all
  of it;
- the server (``build_central_datamodule``) evaluates on the whole testing split.
"""

from __future__ import annotations

import logging

from tasks.errors import DataError
from tasks.registry import Task, register_task
from tasks.shared import Site
from tasks.speech.config import DEFAULT_DATA_DIR, SpeechConfig
from tasks.speech.data import SpeechDataModule
from tasks.speech.models import DEFAULT_MODEL, list_models
from tasks.speech.module import KeywordSpotter

LOG = logging.getLogger(__name__)

__all__ = ["KeywordSpotter", "SpeechConfig", "SpeechDataModule", "build_central_datamodule",
           "build_datamodule", "build_module"]


def build_module(config: SpeechConfig, model: str = "", lr: float = 0.05) -> KeywordSpotter:
    """The model named ``model`` ('' = conv) behind the configured frontend, SGD from ``lr``."""
    spec = config.feature_spec()
    return KeywordSpotter(
        model=model or DEFAULT_MODEL, num_classes=len(config.words) + 2,
        sample_rate=spec.sample_rate, clip_samples=spec.clip_samples, window_ms=spec.window_ms,
        hop_ms=spec.hop_ms, n_mels=spec.n_mels, f_min=spec.f_min, f_max=spec.f_max,
        mfcc=spec.mfcc, dropout=config.speech_dropout, lr=lr,
        max_grad_norm=config.speech_max_grad_norm,
    )


def build_datamodule(config: SpeechConfig, site: Site) -> SpeechDataModule:
    """A site's data: its partition of ``site.data_dir`` (default location when empty), or
    all of it."""
    return SpeechDataModule(site.located(DEFAULT_DATA_DIR), speech=config)


def build_central_datamodule(config: SpeechConfig, site: Site) -> SpeechDataModule | None:
    """The whole testing split, or ``None`` when ``data-dir`` has none (no central metrics)."""
    module = build_datamodule(config, site.pooled())
    try:
        empty = len(module.split("testing")) == 0
    except DataError as error:
        LOG.warning("[colearn] speech: the server cannot read data-dir (%s)", error)
        return None
    return None if empty else module


register_task(
    Task(
        name="speech",
        config=SpeechConfig,
        build_module=build_module,
        build_datamodule=build_datamodule,
        build_central_datamodule=build_central_datamodule,
        metrics=("accuracy",),
        models=list_models,
    )
)
