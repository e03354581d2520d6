"""LRCycle on tiny real Trainers: the LR the optimizer applies at each step."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from colearn_fl.site.callbacks.lr_cycle import LRCycle
from colearn_fl.site.callbacks.round_stats import RoundStats
from strategies.errors import ScheduleError
from tests.tiny import TinyClassifier, TinyData


class LrSpy(pl.Callback):
    """Records every param group's LR as the optimizer's step applied it (a step post-hook)."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        def record(optimizer, args, kwargs) -> None:
            self.lrs.append([g["lr"] for g in optimizer.param_groups])

        self.handle = trainer.optimizers[0].register_step_post_hook(record)

    def on_train_end(self, trainer, pl_module) -> None:
        self.handle.remove()


def fit(module: pl.LightningModule, callbacks: list[pl.Callback], tmp_path, epochs: int = 2):
    trainer = pl.Trainer(max_epochs=epochs, callbacks=callbacks, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(module, datamodule=TinyData(n=64, batch_size=16))  # 4 steps per epoch
    return trainer


def test_cosine_cycle_drives_sgd_every_step(tmp_path) -> None:
    # Prepare: 2 epochs x 4 batches = 8 steps; step k uses 0.1 * (1 + cos(pi k / 8)) / 2
    spy = LrSpy()
    # Execute
    fit(TinyClassifier(), [LRCycle("cosine", 0.1, 0.0), spy], tmp_path)
    # Assert
    expected = [0.1 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert [lrs[0] for lrs in spy.lrs] == pytest.approx(expected)


def test_triangular_cycle_with_adam(tmp_path) -> None:
    spy = LrSpy()
    fit(TinyClassifier(optimizer="adam"), [LRCycle("triangular", 0.08, 0.0), spy],
        tmp_path)
    # position k/8: 0, .125, .25, .375, .5, ... -> 0.08 * (1 - |2p - 1|)
    expected = [0.0, 0.02, 0.04, 0.06, 0.08, 0.06, 0.04, 0.02]
    assert [lrs[0] for lrs in spy.lrs] == pytest.approx(expected)


def test_every_param_group_follows_the_cycle_scaled_by_its_own_lr(tmp_path) -> None:
    # Prepare: groups built at 1.0, 2.0 and (the default) 3.0
    class ThreeGroups(TinyClassifier):
        def configure_optimizers(self):
            first, second = self.net[0], self.net[3]
            return torch.optim.SGD([{"params": first.parameters(), "lr": 1.0},
                                    {"params": second.parameters(), "lr": 2.0},
                                    {"params": self.net[1].parameters()}], lr=3.0)

    spy = LrSpy()
    # Execute: a cosine cycle 0.05 -> 0.001 over 4 steps
    fit(ThreeGroups(), [LRCycle("cosine", 0.05, 0.001), spy], tmp_path, epochs=1)
    # Assert: the first group follows the cycle, the others keep their 2x and 3x
    cycle = [0.001 + 0.049 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [lrs[0] for lrs in spy.lrs] == pytest.approx(cycle)
    assert [lrs[1:] for lrs in spy.lrs] == [pytest.approx([2 * lr, 3 * lr]) for lr in cycle]


def test_module_scheduler_warns_and_server_cycle_wins(tmp_path) -> None:
    spy = LrSpy()
    with pytest.warns(UserWarning, match="server's co-learning cycle .* takes precedence"):
        fit(TinyClassifier(with_scheduler=True), [LRCycle("cosine", 0.1, 0.0), spy],
            tmp_path)
    expected = [0.1 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert [lrs[0] for lrs in spy.lrs] == pytest.approx(expected)


def test_cycle_restarts_with_each_fit(tmp_path) -> None:
    # Prepare: the same module trained for two rounds, one fresh callback per round
    module, first, second = TinyClassifier(), LrSpy(), LrSpy()
    # Execute
    fit(module, [LRCycle("cosine", 0.1, 0.0), first], tmp_path, epochs=1)
    fit(module, [LRCycle("cosine", 0.1, 0.0), second], tmp_path, epochs=1)
    # Assert: both rounds start at lr-max
    assert first.lrs[0][0] == second.lrs[0][0] == pytest.approx(0.1)


def test_round_stats_counts_examples_and_mean_loss(tmp_path) -> None:
    stats = RoundStats()
    fit(TinyClassifier(), [LRCycle("constant", 0.01, 0.01), stats], tmp_path)
    assert stats.examples_per_epoch == 64
    assert math.isfinite(stats.mean_loss) and stats.mean_loss > 0


def test_bad_cycle_is_refused_in_init() -> None:
    with pytest.raises(ScheduleError, match="lr-min <= lr-max"):
        LRCycle("cosine", 0.01, 0.1)
