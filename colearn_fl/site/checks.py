"""What a site checks about its own module and data, with the error that says what to change:
the data a round will really see, validation data, and a module that fits the global model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.model_helpers import is_overridden

from colearn_fl.errors import ConfigError, DataError

SHOWN = 4  # differing keys named in an error (then "and N more")


def examples_in(loader: Any) -> int | None:
    """The examples a loader's dataset holds, or ``None`` when it has no length (an
    ``IterableDataset``, a streaming pipeline, a loader without ``dataset``)."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def check_training_batches(loader: Any, data: pl.LightningDataModule) -> None:
    """A ``DataError`` when the training loader yields no batch at all (e.g. fewer examples
    than one batch with ``drop_last=True``): every round would fail at this site."""
    try:
        batches = len(loader)
    except TypeError:  # unsized: counted as it trains
        return
    if batches == 0:
        drop = " with drop_last=True" if getattr(loader, "drop_last", False) else ""
        raise DataError(
            f"{type(data).__name__}.train_dataloader() yields no batch: "
            f"{examples_in(loader)} example(s) in batches of {getattr(loader, 'batch_size', '?')}"
            f"{drop}. Give this site more data, a smaller batch size (batch-size), or "
            "drop_last=False.")


def validation_examples(data: pl.LightningDataModule) -> int:
    """The examples this site validates on (``data`` set up for fitting); 0 without a
    ``val_dataloader``."""
    if not is_overridden("val_dataloader", data, pl.LightningDataModule):
        return 0
    try:
        loader = data.val_dataloader()
    except Exception:  # noqa: BLE001 - a module that sets validation up on its own stage
        data.setup("validate")
        loader = data.val_dataloader()
    return examples_in(loader) or 0


def check_validation(data: pl.LightningDataModule) -> None:
    """A ``ConfigError`` when this site has no ``val_dataloader`` to evaluate with."""
    if not is_overridden("val_dataloader", data, pl.LightningDataModule):
        raise ConfigError(
            f"this site's {type(data).__name__} has no val_dataloader, so it cannot evaluate "
            "the global model. Give it one, or set fraction-evaluate=0 to turn federated "
            "evaluation off.")


def check_validated(data: pl.LightningDataModule, examples: int) -> None:
    """A ``ConfigError`` when an evaluation saw no example (an empty validation loader)."""
    if examples == 0:
        raise ConfigError(
            f"this site's {type(data).__name__}.val_dataloader() is empty (0 examples), so it "
            "cannot evaluate the global model. Give it validation data, or set "
            "fraction-evaluate=0 to turn federated evaluation off.")


def mismatch(module: pl.LightningModule, received: Mapping[str, torch.Tensor]) -> str:
    """What differs between ``module``'s state_dict and the global model's, key by key."""
    own = module.state_dict()
    missing = [k for k in own if k not in received]
    unexpected = [k for k in received if k not in own]
    shapes = [f"{k} {tuple(own[k].shape)} here, {tuple(received[k].shape)} in the global model"
              for k in own if k in received and own[k].shape != received[k].shape]
    parts = [f"{label}: {_some(keys)}" for label, keys in (
        ("missing from the global model", missing), ("only in the global model", unexpected),
        ("shapes differ", shapes)) if keys]
    return "; ".join(parts)


def _some(items: list[str]) -> str:
    more = len(items) - SHOWN
    return ", ".join(items[:SHOWN]) + (f" and {more} more" if more > 0 else "")
