"""optimizer-state='keep': the state a round ends with is the state the next round starts from;
the LR stays the new optimizer's (the server's cycle sets it)."""

from __future__ import annotations

import copy
import io

import pytorch_lightning as pl
import torch
from flwr.app import RecordDict

from colearn_fl.site.callbacks.optimizer_state import STATE_KEY, KeepOptimizerState
from tests.tiny import TinyClassifier, TinyData


def fit(module: pl.LightningModule, callbacks: list[pl.Callback], tmp_path) -> None:
    pl.Trainer(max_epochs=1, callbacks=callbacks, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
               default_root_dir=tmp_path, accelerator="cpu").fit(
        module, datamodule=TinyData(n=32, batch_size=16))


class StartState(pl.Callback):
    """A copy of the optimizer's state as training starts (after the callbacks before it)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = copy.deepcopy(trainer.optimizers[0].state_dict())


def saved(store: RecordDict) -> list[dict]:
    return torch.load(io.BytesIO(store[STATE_KEY]["optimizers"]), weights_only=True)


def assert_same_state(left: dict, right: dict) -> None:
    assert left["state"].keys() == right["state"].keys()
    for index, values in left["state"].items():
        for name, value in values.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(right["state"][index][name]))


def test_the_next_round_starts_from_the_state_the_last_one_saved(tmp_path) -> None:
    # Prepare: round 1 at one site, Adam, 2 steps
    store = RecordDict()
    fit(TinyClassifier(optimizer="adam"), [KeepOptimizerState(store)], tmp_path)
    after_round_1 = saved(store)[0]
    # Execute: round 2 builds a new module and optimizer (as every round does)
    start = StartState()
    fit(TinyClassifier(optimizer="adam"), [KeepOptimizerState(store), start], tmp_path)
    # Assert: restored = saved (Adam's step count and moments), and saved again after
    assert_same_state(start.state, after_round_1)
    assert int(after_round_1["state"][0]["step"]) == 2
    assert int(saved(store)[0]["state"][0]["step"]) == 4


def test_the_restored_optimizer_keeps_this_rounds_lr(tmp_path) -> None:
    # Prepare: the saved state's LR was lowered at the end of its round
    store = RecordDict()
    module = TinyClassifier(optimizer="adam")
    fit(module, [KeepOptimizerState(store)], tmp_path)
    state = saved(store)
    state[0]["param_groups"][0]["lr"] = 1e-9
    buffer = io.BytesIO()
    torch.save(state, buffer)
    store[STATE_KEY]["optimizers"] = buffer.getvalue()
    # Execute
    start = StartState()
    fit(TinyClassifier(optimizer="adam"), [KeepOptimizerState(store), start], tmp_path)
    # Assert: the group starts at configure_optimizers' 1e-3, not the saved 1e-9, with the
    # saved Adam state (2 steps)
    assert start.state["param_groups"][0]["lr"] == 1e-3
    assert int(start.state["state"][0]["step"]) == 2
