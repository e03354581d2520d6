"""Checkpoints written atomically, so a crash mid-write never corrupts the last good one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from colearn_fl.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT_VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
