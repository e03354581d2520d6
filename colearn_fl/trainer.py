"""The one Trainer factory: sites' rounds and the comparison's non-federated methods.

Every Trainer the project builds comes from here, so they all honour the same run-config
settings (``precision``) and the same choices (automatic accelerator, one device, no
checkpoints: the server keeps the model, validation only when asked for, no progress bar:
redrawn after every batch, it cost a site 7 % of its training time on Fashion-MNIST and is
noise in a simulation's or a SuperNode's log).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import Logger

from colearn_fl.logs import quiet_lightning
from colearn_fl.node_config import SiteDevices


def make_logger(kind: str, save_dir: str | Path, name: str, version: str) -> Logger | None:
    """A site's file logger of ``kind`` (``LOGGERS``) writing to ``save_dir/name/version``;
    ``None`` for ``'none'``.

    ``'mlflow'`` writes CSV here: a site's logs stay on its machine, and its per-epoch curves
    reach the server's MLflow run in its replies (``colearn_fl.server.tracking``).
    """
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if kind == "none":
        return None
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(save_dir), name=name, version=version,
                                 default_hp_metric=False)
    return CSVLogger(save_dir=str(save_dir), name=name, version=version)


def make_trainer(precision: str, callbacks: list[pl.Callback], epochs: int = 0,
                 logger: Logger | list[Logger] | bool = False, root_dir: str | None = None,
                 hardware: SiteDevices | None = None, validate: bool = False) -> pl.Trainer:
    """A Trainer on the automatically chosen device (CPU or one GPU), or on ``hardware``.

    Parameters
    ----------
    precision : str
        Lightning precision (run-config ``precision``, e.g. ``'32-true'``, ``'bf16-mixed'``).
    callbacks : list[pl.Callback]
        The round's callbacks (the LR cycle, statistics, curves).
    epochs : int
        Epochs to train; 0 builds an evaluation-only Trainer. Training Trainers validate
        only with ``validate`` (default: 0).
    logger : Logger | list[Logger] | bool
        Where metrics go; ``False`` = nowhere (default: False).
    root_dir : str, optional
        Where the Trainer may write files (e.g. the LR finder's temporary checkpoint);
        default: the logger's folder.
    hardware : SiteDevices, optional
        ``accelerator``, ``devices`` and ``strategy`` (a site's node config); default: one
        automatically chosen device.
    validate : bool
        Validate at every epoch's end while training, where the data has a validation split
        (the sites' per-epoch curves); evaluation-only Trainers always validate
        (default: False).
    """
    quiet_lightning()
    first = logger[0] if isinstance(logger, list) and logger else logger
    save_dir = root_dir or (first.save_dir if isinstance(first, Logger) else None)
    hardware = hardware or SiteDevices()
    return pl.Trainer(
        max_epochs=max(epochs, 1),
        **hardware.trainer_kwargs(),
        precision=precision,  # type: ignore[arg-type]
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate or not epochs else 0,
        default_root_dir=save_dir,
    )
