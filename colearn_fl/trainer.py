"""The one Trainer factory: sites' rounds and the comparison's non-federated methods.

Every Trainer the project builds comes from here, so they all honour the same run-config
settings (``precision``) and the same choices (automatic accelerator, one device, no
checkpoints: the server keeps the model, validation only when asked for).
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import Logger

from colearn_fl.process_group import ReleaseProcessGroup
from colearn_fl.site_devices import SiteDevices

# Printed by every Trainer a site builds (one per round) and of no use to a site: Lightning's
# advertisement for its cloud logger, and a deprecation inside Lightning's own pytree code.
NOISE = ("💡 Tip: For seamless cloud logging",)
NOISY_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE)


@functools.cache
def _filter_logs() -> None:
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropNoise())


def quiet_lightning() -> None:
    """Silence ``NOISE`` (once per process) and ``NOISY_WARNINGS`` (on every call: code that
    resets the warning filters, e.g. ``warnings.catch_warnings``, drops ours)."""
    _filter_logs()
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)  # re-adding moves it to the front


def quiet_ray() -> None:
    """Silence the FutureWarning Ray prints on every start (about the CUDA_VISIBLE_DEVICES it
    sets for actors without GPUs). A filter, not Ray's opt-in variable: opting in would let a
    CPU site see the machine's GPUs."""
    warnings.filterwarnings("ignore", message=".*Ray will no longer override accelerator",
                            category=FutureWarning)


LOGGERS = ("csv", "tensorboard")  # the ``logger`` key: where sites and server log metrics


def tensorboard_available() -> bool:
    """Whether Lightning's TensorBoardLogger can write here (``tensorboard`` installed)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))


def make_logger(kind: str, save_dir: str | Path, name: str, version: str) -> Logger:
    """A Lightning logger of ``kind`` (``LOGGERS``) writing to ``save_dir/name/version``."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(save_dir), name=name, version=version,
                                 default_hp_metric=False)
    return CSVLogger(save_dir=str(save_dir), name=name, version=version)


def make_trainer(precision: str, callbacks: list[pl.Callback], epochs: int = 0,
                 logger: Logger | bool = False, progress_bar: bool = True,
                 root_dir: str | None = None,
                 hardware: SiteDevices | None = None) -> pl.Trainer:
    """A Trainer on the automatically chosen device (CPU or one GPU), or on ``hardware``.

    Parameters
    ----------
    precision : str
        Lightning precision (run-config ``precision``, e.g. ``'32-true'``, ``'bf16-mixed'``).
    callbacks : list[pl.Callback]
        The round's callbacks (the LR cycle, statistics, curves).
    epochs : int
        Epochs to train; 0 builds an evaluation-only Trainer. Training Trainers skip
        validation, which the server asks for separately (default: 0).
    logger : Logger | bool
        Where metrics go; ``False`` = nowhere (default: False).
    progress_bar : bool
        Show Lightning's progress bar (default: True).
    root_dir : str, optional
        Where the Trainer may write files (e.g. the LR finder's temporary checkpoint);
        default: the logger's folder.
    hardware : SiteDevices, optional
        ``accelerator``, ``devices`` and ``strategy`` (a site's node config); default: one
        automatically chosen device.
    """
    quiet_lightning()
    save_dir = root_dir or (logger.save_dir if isinstance(logger, Logger) else None)
    hardware = hardware or SiteDevices()
    if hardware.devices > 1:  # spawned workers, each with a process group to release
        callbacks = [*callbacks, ReleaseProcessGroup()]
    return pl.Trainer(
        max_epochs=max(epochs, 1),
        **hardware.trainer_kwargs(),
        precision=precision,  # type: ignore[arg-type]
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        num_sanity_val_steps=0,
        limit_val_batches=0 if epochs else None,
        default_root_dir=save_dir,
    )
