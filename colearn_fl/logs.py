"""Log noise that Lightning and Ray print at every site and is of no use there, silenced."""

from __future__ import annotations

import functools
import logging
import warnings

# Printed by every Trainer a site builds (one per round) and of no use to a site: Lightning's
# advertisement for its cloud logger, a deprecation inside Lightning's own pytree code, and,
# at a site without a validation split, that its per-epoch validation (epoch-validation) is
# skipped: the site's data check already said it has none.
NOISE = ("💡 Tip: For seamless cloud logging",)
NOISY_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                  r"You defined a `validation_step` but have no `val_dataloader`")


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
