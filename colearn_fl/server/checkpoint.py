"""Checkpoints written atomically, so a crash mid-write never corrupts the last good one.

``checkpoint.pt`` is the server's resume payload. ``model-final.*`` and ``model-best.*`` are
the trained model for its users: ``.ckpt`` a Lightning checkpoint
(``MyModule.load_from_checkpoint``), ``.pt`` the plain ``state_dict``
(``torch.load(path, weights_only=True)``).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from logging import WARNING
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.supercore import log

from colearn_fl.errors import ConfigError
from colearn_fl.server.history import Row, best_row, monitored

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
MODEL_FINAL, MODEL_BEST = "model-final", "model-best"  # each written as .ckpt and .pt
COLEARN_KEY = "colearn"  # the model checkpoints' record of the round they hold


def _atomic_save(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write the resume ``payload`` to ``path`` atomically."""
    _atomic_save(path, {"format": FORMAT_VERSION, **payload})


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; a missing one names the fix."""
    if not path.is_file():
        raise ConfigError(
            f"resume=true but there is no checkpoint at {path}. Set run-name (and output-dir) "
            "to the folder of the run to continue, or drop resume to start a new run."
        )
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != FORMAT_VERSION:
        raise ConfigError(f"{path} is not a colearn-fl checkpoint (format {FORMAT_VERSION}).")
    return payload


def lightning_checkpoint(module: pl.LightningModule, server_round: int,
                         colearn: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint Lightning's ``Trainer.save_checkpoint(path, weights_only=True)`` writes
    for ``module``, without a Trainer.

    As ``_CheckpointConnector.dump_checkpoint(weights_only=True)``: ``epoch``,
    ``global_step``, ``pytorch-lightning_version``, ``state_dict``, the module's
    ``hyper_parameters`` (and ``hparams_name``) when it saved any, then the module's
    ``on_save_checkpoint`` hook. No ``loops`` or ``callbacks``: no Trainer ran here, and
    Lightning restores without them. The server's steps are rounds, so ``epoch`` and
    ``global_step`` are the round. ``colearn`` goes under the ``colearn`` key.
    """
    checkpoint: dict[str, Any] = {
        "epoch": server_round,
        "global_step": server_round,
        "pytorch-lightning_version": pl.__version__,
        "state_dict": _cpu(module.state_dict()),
    }
    hparams = module.hparams
    if hparams:
        if getattr(module, "_hparams_name", None):  # set by save_hyperparameters
            checkpoint[module.CHECKPOINT_HYPER_PARAMS_NAME] = module._hparams_name
        if isinstance(hparams, dict):
            checkpoint[module.CHECKPOINT_HYPER_PARAMS_KEY] = dict(hparams)
        else:  # an omegaconf container: kept with its type, as Lightning does
            checkpoint[module.CHECKPOINT_HYPER_PARAMS_KEY] = hparams
            checkpoint[module.CHECKPOINT_HYPER_PARAMS_TYPE] = type(hparams)
    checkpoint[COLEARN_KEY] = dict(colearn)
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def _cpu(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The state dict with its tensors on the CPU, so any machine loads the files as they are;
    its ``_metadata`` (the modules' versions, which ``load_state_dict`` reads) is kept."""
    cpu = OrderedDict((k, v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                      for k, v in state_dict.items())
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        cpu._metadata = metadata  # type: ignore[attr-defined]
    return cpu


def save_model(folder: Path, stem: str, module: pl.LightningModule, server_round: int,
               colearn: dict[str, Any]) -> None:
    """Write ``<stem>.ckpt`` (``lightning_checkpoint``) and ``<stem>.pt`` (the plain
    ``state_dict``) to ``folder``, each atomically."""
    _atomic_save(folder / f"{stem}.ckpt", lightning_checkpoint(module, server_round, colearn))
    _atomic_save(folder / f"{stem}.pt", _cpu(module.state_dict()))


class ModelOut:
    """The trained model in the run folder, after every round.

    ``model-final.*``: the model of the last completed round, rewritten after every round
    (not when the run ends), so a run that fails or is killed still leaves its last good
    round; a round whose central loss is not finite stops the run before it is written.
    ``model-best.*``: rewritten when the round's row is the best so far of the whole history
    by ``monitor`` / ``monitor-mode`` (``history.monitored``, ``history.best_row``), so a
    resumed run keeps a better round from before it without any state of its own. Both
    record, under ``checkpoint["colearn"]``, the round, the monitored column, its mode and
    the round's value of it, and the run's name.

    Parameters
    ----------
    folder : Path
        The run folder.
    monitor : str
        The run config's ``monitor`` (``""``: the run's main metric).
    mode : str
        The run config's ``monitor-mode``: ``min``, ``max`` or ``auto``.
    fresh : bool
        A new run (no history yet): the model files of a run it replaces
        (``overwrite=true``) are removed, so none outlives its run.
    """

    def __init__(self, folder: Path, monitor: str = "", mode: str = "auto",
                 fresh: bool = True) -> None:
        self.folder, self.monitor, self.mode = folder, monitor, mode
        self._warned_monitor = self._checked_hparams = False
        if fresh:
            for stem in (MODEL_FINAL, MODEL_BEST):
                for suffix in (".ckpt", ".pt"):
                    (folder / f"{stem}{suffix}").unlink(missing_ok=True)

    def after_round(self, module: pl.LightningModule, history: Sequence[Row]) -> None:
        """Write ``module``, the model of ``history``'s last row, as the final model and, if
        that row is the best so far, as the best one (round 0, the initial model: neither)."""
        server_round = int(history[-1]["round"])
        if server_round < 1:
            return
        self._check_hparams(module)
        key, mode = monitored(history, self.monitor, self.mode)
        value = history[-1].get(key)
        colearn = {"round": server_round, "monitor": key, "mode": mode,
                   "value": float(value) if _number(value) else None,
                   "run-name": self.folder.name}
        save_model(self.folder, MODEL_FINAL, module, server_round, colearn)
        best = best_row(history, key, mode)
        if best is not None and best["round"] == server_round:
            save_model(self.folder, MODEL_BEST, module, server_round, colearn)
        elif best is None and not any(key in row for row in history):
            self._warn_missing(key, history)

    def _warn_missing(self, key: str, history: Sequence[Row]) -> None:
        """Once: the monitored column is in no row, so there is no best model to write."""
        if self._warned_monitor:
            return
        self._warned_monitor = True
        columns = sorted({k for row in history for k, v in row.items() if _number(v)
                          and k.startswith(("central-", "federated-", "train-"))})
        said = f"monitor={self.monitor!r}" + ("" if self.monitor else f" (the main metric, {key})")
        log(WARNING, "[colearn] %s: no round's history holds %r, so %s.ckpt is not written; "
            "the columns available: %s. Set monitor to one of them.", said, key, MODEL_BEST,
            ", ".join(columns) or "none")

    def _check_hparams(self, module: pl.LightningModule) -> None:
        """Once: warn when ``load_from_checkpoint`` would need arguments the module's
        ``__init__`` requires and its saved hyperparameters lack."""
        if self._checked_hparams:
            return
        self._checked_hparams = True
        missing = [name for name, p in inspect.signature(type(module).__init__).parameters.items()
                   if name != "self" and p.default is inspect.Parameter.empty
                   and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   and name not in module.hparams]
        if missing:
            cls = type(module).__name__
            log(WARNING, "[colearn] %s.__init__ needs %s, which the module did not save: "
                "%s.load_from_checkpoint('%s.ckpt') will need them as arguments. Call "
                "self.save_hyperparameters() in its __init__ to record them.", cls,
                ", ".join(missing), cls, MODEL_BEST)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
