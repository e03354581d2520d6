"""RoundStats' per-epoch curves: the training loss and LR of each local epoch and the metrics
the module logged in each epoch's validation, with tiny real Trainers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from colearn_fl.site.callbacks.lr_cycle import LRCycle
from colearn_fl.site.callbacks.round_stats import RoundStats
from colearn_fl.trainer import make_trainer
from strategies.cycles import lr_at
from tests.tiny import TinyClassifier, TinyData


class EpochLosses(pl.Callback):
    """Records each training batch's loss and each epoch's last LR (the expectation)."""

    def __init__(self) -> None:
        self.losses: list[list[float]] = []
        self.lrs: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.losses.append([])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[-1].append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


class NoValidation(TinyData):
    val_dataloader = pl.LightningDataModule.val_dataloader  # no validation split


def _fit(module: pl.LightningModule, data: pl.LightningDataModule, callbacks: list,
         validate: bool, epochs: int = 3) -> None:
    torch.manual_seed(0)
    make_trainer("32-true", callbacks, epochs,
                 validate=validate).fit(module, datamodule=data)


def test_each_epoch_reports_its_mean_loss_its_last_lr_and_its_validation(tmp_path) -> None:
    # Prepare: 64 examples in batches of 16 (4 steps an epoch), a cosine cycle 0.1 -> 0
    stats, spy, module = RoundStats(), EpochLosses(), TinyClassifier()

    # Execute
    _fit(module, TinyData(), [LRCycle("cosine", 0.1, 0.0), spy, stats], validate=True)

    # Assert: one value per epoch; the loss is the epoch's batch mean, the LR its last step's
    assert stats.epochs["train-loss"] == pytest.approx([sum(b) / len(b) for b in spy.losses])
    assert stats.epochs["lr"] == pytest.approx([lr_at("cosine", s / 12, 0.1, 0.0)
                                                for s in (3, 7, 11)])
    assert set(stats.epochs) == {"train-loss", "lr", "loss", "accuracy"}
    assert len(stats.epochs["accuracy"]) == 3
    # The last epoch's validation saw the final model: the same figures as validating it now
    final = make_trainer("32-true", []).validate(
        module, datamodule=TinyData(), verbose=False)[0]
    assert stats.epochs["accuracy"][-1] == pytest.approx(final["accuracy"])
    assert stats.epochs["loss"][-1] == pytest.approx(final["loss"])


def test_validating_every_epoch_does_not_change_what_the_site_trains() -> None:
    # Prepare: the same start twice
    torch.manual_seed(1)
    plain, validated = TinyClassifier(), TinyClassifier()
    validated.load_state_dict(plain.state_dict())

    # Execute: shuffled training, with and without a validation pass after each epoch
    _fit(plain, TinyData(), [LRCycle("cosine", 0.1, 0.0), RoundStats()], validate=False)
    _fit(validated, TinyData(), [LRCycle("cosine", 0.1, 0.0), RoundStats()], validate=True)

    # Assert: bit-identical weights (validation restores the random number generators)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, validated.state_dict()[key]), key


def test_without_a_validation_split_only_the_loss_and_lr_are_reported() -> None:
    stats = RoundStats()
    _fit(TinyClassifier(), NoValidation(), [LRCycle("constant", 0.01, 0.01), stats],
         validate=True, epochs=2)
    assert set(stats.epochs) == {"train-loss", "lr"}
    assert stats.epochs["lr"] == pytest.approx([0.01, 0.01])
    assert all(math.isfinite(v) for v in stats.epochs["train-loss"])


class NoOptimizer(TinyClassifier):
    def configure_optimizers(self) -> None:
        return None


def test_a_module_without_an_optimizer_is_refused_naming_the_fix() -> None:
    from colearn_fl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"NoOptimizer.configure_optimizers\(\) returned no "
                                          r"optimizer.*torch.optim.SGD"):
        _fit(NoOptimizer(), TinyData(), [RoundStats()], validate=False, epochs=1)
