"""The ``audioset`` task's own run-config keys (``audioset-*``; defaults also in pyproject)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.errors import ConfigError

# Values of ``audioset-train``: the packed training files each one reads.
TRAIN_FILES: dict[str, tuple[str, ...]] = {
    "bal_train": ("bal_train.h5",),
    "unbal_train": ("unbal_train.h5",),
    "both": ("bal_train.h5", "unbal_train.h5"),
}
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class AudioSetConfig:
    """The ``audioset`` task's own run-config keys (``audioset-*``; defaults in pyproject)."""

    audioset_train: str = "bal_train"  # training files: bal_train | unbal_train | both
    audioset_hidden: int = 256  # width of the embedding MLP and of the GRU output (even)
    audioset_dropout: float = 0.2  # dropout after each embedding-MLP layer
    audioset_optimizer: str = "adam"  # adam | sgd (Nesterov, momentum 0.9); LR from the cycle

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        check_train_set(self.audioset_train)
        if self.audioset_hidden < 2 or self.audioset_hidden % 2:
            raise ConfigError(f"audioset-hidden={self.audioset_hidden}: must be an even "
                              "number >= 2 (the bidirectional GRU gives each direction half).")
        if not 0.0 <= self.audioset_dropout < 1.0:
            raise ConfigError(f"audioset-dropout={self.audioset_dropout}: must be in [0, 1).")
        check_optimizer(self.audioset_optimizer)


def check_train_set(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is one of ``TRAIN_FILES``."""
    if name not in TRAIN_FILES:
        raise ConfigError(f"audioset-train={name!r} is not known; use one of: "
                          f"{', '.join(TRAIN_FILES)}.")


def check_optimizer(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is one of ``OPTIMIZERS``."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"audioset-optimizer={name!r} is not known; use one of: "
                          f"{', '.join(OPTIMIZERS)}.")
