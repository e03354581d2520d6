"""The ``audioset`` task: 527-class clip tagging of AudioSet's per-second embeddings.

The paper's Table 6 experiment: a CRNN with four pooling heads (``model``: ``crnn-ap``,
``crnn-mp``, ``crnn-sa``, ``crnn-ma``; '' = ``crnn-ma``) trained with BCE, scored by macro mAP,
macro AUC and d-prime (``map``, ``auroc``, ``d-prime``; docs/tasks/audioset.md).

Files: ``config`` (the ``audioset-*`` keys), ``module`` (``AudioSetTagger``), ``models`` (the
CRNN heads), ``data`` (``AudioSetDataModule``: a site's rows), ``hdf5`` (the packed files,
read lazily), ``metrics`` (mAP, AUC, d-prime), ``synth`` (generated look-alike files).
The server evaluates on the whole ``eval.h5`` of the run's ``data-dir``, if present.
"""

from __future__ import annotations

import warnings

from tasks.audioset.config import AudioSetConfig
from tasks.audioset.data import DEFAULT_DATA_DIR, AudioSetDataModule
from tasks.audioset.hdf5 import eval_available
from tasks.audioset.metrics import AUROC, D_PRIME, MAP
from tasks.audioset.models import DEFAULT_MODEL, list_models
from tasks.audioset.module import AudioSetTagger
from tasks.registry import Task, register_task
from tasks.shared import Site

ADAM_LR_WARN = 0.01  # above this lr-max, Adam diverges or stalls on these embeddings


def build_module(config: AudioSetConfig, model: str = "", lr: float = 0.05) -> AudioSetTagger:
    """The model named ``model`` ('' = crnn-ma) with the ``audioset-*`` settings; ``lr`` is
    the run's lr-max (Adam above ``ADAM_LR_WARN`` warns: it does not learn there)."""
    if config.audioset_optimizer == "adam" and lr > ADAM_LR_WARN:
        warnings.warn(f"task='audioset' with audioset-optimizer='adam' and lr-max={lr}: Adam "
                      "does not learn at this LR (measured: mAP stays at the label prior); "
                      "the Table 6 setting uses lr-max=0.001 lr-min=0.00001 "
                      "(docs/tasks/audioset.md).", UserWarning, stacklevel=2)
    return AudioSetTagger(model=model or DEFAULT_MODEL, hidden=config.audioset_hidden,
                          dropout=config.audioset_dropout, optimizer=config.audioset_optimizer,
                          lr=lr)


def build_datamodule(config: AudioSetConfig, site: Site) -> AudioSetDataModule:
    """A site's clips: its partition of ``site.data_dir`` or all of its own files."""
    return AudioSetDataModule(site.located(DEFAULT_DATA_DIR), train_set=config.audioset_train)


def build_central_datamodule(config: AudioSetConfig, site: Site) -> AudioSetDataModule | None:
    """The server's whole ``eval.h5``, or ``None`` when ``site.data_dir`` has none."""
    site = site.located(DEFAULT_DATA_DIR).pooled()
    if not eval_available(site.data_dir):
        return None
    return AudioSetDataModule(site, train_set=config.audioset_train)


def default_lr(config: AudioSetConfig, model: str) -> float | str:
    """lr-max for ``'default'``: Kong et al.'s Adam rate 0.001 (measured here to learn on
    generated embeddings, where 0.05 collapsed to a constant scorer); ``'auto'`` for SGD."""
    return 0.001 if config.audioset_optimizer == "adam" else "auto"


register_task(
    Task(
        name="audioset",
        config=AudioSetConfig,
        build_module=build_module,
        build_datamodule=build_datamodule,
        build_central_datamodule=build_central_datamodule,
        metrics=(MAP, AUROC, D_PRIME),
        models=list_models,
        default_lr=default_lr,
    )
)
