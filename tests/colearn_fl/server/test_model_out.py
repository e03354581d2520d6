"""The trained model out of a run: model-final.* every round, model-best.* at the best round
by monitor / monitor-mode, as Lightning checkpoints and plain state dicts."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from flwr.serverapp.strategy import FedAvg
from torch import nn

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import RunConfig
from colearn_fl.sections import Outputs
from colearn_fl.server.central_eval import central_evaluator
from colearn_fl.server.recorder import RoundRecorder
from colearn_fl.server.tracking import RunTracker
from colearn_fl.task_adapter import TaskAdapter
from tests.tiny import TinyData

# Each round's global model: the rule's direction turned by this angle (radians), so the
# central accuracy goes up from round 1 to 2 and down from 2 to 3
ANGLES = {1: 1.2, 2: 0.1, 3: 0.7}
TRAINED = {"sites-sent": 2, "sites-averaged": 2}


class Rotated(pl.LightningModule):
    """A user's module with init arguments, saved with ``save_hyperparameters``."""

    def __init__(self, hidden: int, scale: float = 3.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("loss", nn.functional.cross_entropy(logits, y))
        self.log("accuracy", (logits.argmax(1) == y).float().mean())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["saved-by-module"] = self.hparams.hidden


def rotated_weights(angle: float, hidden: int = 3, scale: float = 3.0) -> dict:
    """Weights whose logit margin is ``scale * x . (cos a, sin a, 0, 0)``: the rule (label =
    x[0] > 0) turned by ``a``."""
    module = Rotated(hidden)
    direction = torch.tensor([math.cos(angle), math.sin(angle), 0.0, 0.0])
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
        module.net[0].weight[0] = direction
        module.net[0].weight[1] = -direction
        module.net[2].weight[1, :2] = torch.tensor([scale, -scale]) / 2
        module.net[2].weight[0, :2] = torch.tensor([-scale, scale]) / 2
    return module.state_dict()


class Rounds:
    """What the recorder reads of the running strategy: its per-round records."""

    def __init__(self, rounds: dict[int, dict[str, Any]], offset: int = 0) -> None:
        self.rounds, self.round_offset = rounds, offset
        self.strategy = FedAvg()

    def evaluation_model(self, arrays: Any) -> Any:
        return arrays


def recorder_of(rounds: Rounds, module: pl.LightningModule, folder: Path, central: Any = None,
                history: list | None = None, monitor: tuple[str, str] = ("", "auto"),
                ) -> RoundRecorder:
    """A recorder as the server builds it, without a metrics logger (logger='none')."""
    return RoundRecorder(rounds, module, folder, {}, RunTracker(Outputs(logger="none"), folder, {}),
                         central, history or [], max(rounds.rounds), monitor=monitor)


def run_rounds(folder: Path, angles: dict[int, float], monitor: tuple[str, str] = ("", "auto"),
               history: list | None = None) -> list[dict]:
    """Drive a recorder (central evaluation on TinyData's test split) through ``angles``'
    rounds, after the rounds of ``history`` (a resumed run); returns the history."""
    history = list(history or [])
    offset = history[-1]["round"] if history else 0
    recorder = recorder_of(Rounds(dict.fromkeys(angles, TRAINED), offset), Rotated(3), folder,
                           central_evaluator(lambda _: TinyData(), {}), history, monitor)
    recorder(0, state_dict_to_arrays(rotated_weights(angles[min(angles)])))
    for server_round, angle in sorted(angles.items()):
        recorder(server_round - offset, state_dict_to_arrays(rotated_weights(angle)))
    return recorder.history


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(module: nn.Module, state_dict: dict) -> None:
    loaded = module.state_dict()
    assert loaded.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key


def test_model_best_holds_the_best_round_and_loads_back_as_the_users_module(tmp_path) -> None:
    # Execute: 3 rounds whose central accuracy goes up, then down
    rows = run_rounds(tmp_path, ANGLES)
    accuracy = {r["round"]: r["central-accuracy"] for r in rows if r["round"] >= 1}
    assert accuracy[1] < accuracy[2] > accuracy[3]
    # Assert: model-best is round 2's model, recorded as such; model-final round 3's
    best = Rotated.load_from_checkpoint(tmp_path / "model-best.ckpt")
    assert best.hparams == {"hidden": 3, "scale": 3.0}
    assert_same_weights(best, rotated_weights(ANGLES[2]))
    assert_same_weights(Rotated.load_from_checkpoint(tmp_path / "model-final.ckpt"),
                        rotated_weights(ANGLES[3]))
    record = load_ckpt(tmp_path / "model-best.ckpt")
    assert record["colearn"] == {"round": 2, "monitor": "central-accuracy", "mode": "max",
                                 "value": accuracy[2], "run-name": tmp_path.name}
    assert record["saved-by-module"] == 3  # the module's own on_save_checkpoint ran
    assert (record["epoch"], record["global_step"]) == (2, 2)
    assert record["pytorch-lightning_version"] == pl.__version__
    # ...and the plain state dicts
    for stem, angle in (("model-best", ANGLES[2]), ("model-final", ANGLES[3])):
        plain = Rotated(3)
        plain.load_state_dict(torch.load(tmp_path / f"{stem}.pt", weights_only=True))
        assert_same_weights(plain, rotated_weights(angle))


def test_trainer_test_on_the_best_model_reproduces_its_recorded_metric(tmp_path) -> None:
    # Prepare
    rows = run_rounds(tmp_path, ANGLES)
    recorded = load_ckpt(tmp_path / "model-best.ckpt")["colearn"]
    # Execute: the user's own Trainer on the same test data
    model = Rotated.load_from_checkpoint(tmp_path / "model-best.ckpt")
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    (results,) = trainer.test(model, dataloaders=TinyData().test_dataloader(), verbose=False)
    # Assert
    assert results["accuracy"] == pytest.approx(recorded["value"], abs=1e-6)
    assert results["loss"] == pytest.approx(rows[recorded["round"]]["central-loss"], abs=1e-6)


def test_mode_min_on_the_central_loss(tmp_path) -> None:
    # Execute: the loss goes down, then up, then down again, but not as low as round 2
    angles = {**ANGLES, 4: 0.4}
    rows = run_rounds(tmp_path, angles, monitor=("central-loss", "min"))
    # Assert: the round of the lowest loss, not the last or the highest
    loss = {r["round"]: r["central-loss"] for r in rows if r["round"] >= 1}
    lowest = min(loss, key=loss.__getitem__)
    assert lowest not in (1, max(loss))
    record = load_ckpt(tmp_path / "model-best.ckpt")
    assert record["colearn"]["round"] == lowest
    assert (record["colearn"]["monitor"], record["colearn"]["mode"]) == ("central-loss", "min")
    assert_same_weights(Rotated.load_from_checkpoint(tmp_path / "model-best.ckpt"),
                        rotated_weights(angles[lowest]))


def test_a_resumed_run_keeps_a_better_round_from_before_it(tmp_path) -> None:
    # Prepare: rounds 1 and 2 (2 the best), as a run that stopped after round 2 left them
    history = run_rounds(tmp_path, {1: ANGLES[1], 2: ANGLES[2]})
    # Execute: resumed with a worse round 3
    rows = run_rounds(tmp_path, {3: ANGLES[3]}, history=history)
    # Assert: model-best is still round 2's; model-final is round 3's
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert load_ckpt(tmp_path / "model-best.ckpt")["colearn"]["round"] == 2
    assert_same_weights(Rotated.load_from_checkpoint(tmp_path / "model-best.ckpt"),
                        rotated_weights(ANGLES[2]))
    assert load_ckpt(tmp_path / "model-final.ckpt")["colearn"]["round"] == 3


def test_a_new_run_replaces_the_model_files_of_the_run_it_overwrites(tmp_path) -> None:
    # Prepare: a run's model files, then a new run in the same folder that monitors a column
    # no row holds (so it never writes a best model of its own)
    run_rounds(tmp_path, {1: ANGLES[1]})
    assert (tmp_path / "model-best.ckpt").is_file()
    # Execute
    run_rounds(tmp_path, {1: ANGLES[1]}, monitor=("central-f1", "max"))
    # Assert: no model-best outlives its run
    assert not (tmp_path / "model-best.ckpt").exists()
    assert not (tmp_path / "model-best.pt").exists()
    assert load_ckpt(tmp_path / "model-final.ckpt")["colearn"]["round"] == 1


def test_a_monitor_no_row_holds_warns_once_naming_the_columns(tmp_path, caplog) -> None:
    # Execute
    with caplog.at_level(logging.WARNING):
        run_rounds(tmp_path, ANGLES, monitor=("central-f1", "max"))
    # Assert: one warning, the key and the columns there are; the final model is written
    said = [r.getMessage() for r in caplog.records if "central-f1" in r.getMessage()]
    assert len(said) == 1
    assert "monitor='central-f1'" in said[0]
    assert "central-accuracy, central-loss" in said[0]
    assert not (tmp_path / "model-best.ckpt").exists()
    assert (tmp_path / "model-final.ckpt").is_file()


def test_a_module_that_saved_no_init_arguments_is_warned_about(tmp_path, caplog) -> None:
    # Prepare: a module whose __init__ needs an argument it does not save
    class Unsaved(pl.LightningModule):
        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    recorder = recorder_of(Rounds({1: TRAINED}), Unsaved(3), tmp_path)
    # Execute
    with caplog.at_level(logging.WARNING):
        recorder(0, state_dict_to_arrays(rotated_weights(0.0)))
        recorder(1, state_dict_to_arrays(rotated_weights(0.0)))
    # Assert
    assert any("Unsaved.__init__ needs hidden" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("task", [{"task": "image", "dataset": "fashion-mnist"},
                                  {"task": "toxic"}, {"task": "speech"}, {"task": "audioset"}],
                         ids=lambda task: task["task"])
def test_a_built_in_tasks_module_loads_back_without_arguments(tmp_path, task: dict) -> None:
    # Prepare: the task's module, built as the server builds it from the run config
    run = RunConfig.from_dict(task)
    module = TaskAdapter.of_run(run).module(run)
    trained = {k: v + 0.5 if v.is_floating_point() else v for k, v in
               module.state_dict().items()}
    recorder = recorder_of(Rounds({1: {**TRAINED, "federated-metrics": {"accuracy": 0.5}}}),
                           module, tmp_path)
    # Execute
    recorder(0, state_dict_to_arrays(module.state_dict()))
    recorder(1, state_dict_to_arrays(trained))
    # Assert: the class alone rebuilds the same network with the same weights
    loaded = type(module).load_from_checkpoint(tmp_path / "model-best.ckpt")
    assert loaded.hparams == module.hparams
    assert_same_weights(loaded, trained)
    assert load_ckpt(tmp_path / "model-best.ckpt")["colearn"]["monitor"] == "federated-accuracy"
