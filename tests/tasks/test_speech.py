"""Tests of the speech task: its keys, factories, registration and a real federation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from flwr.app import Context, RecordDict

from colearn_fl.callback import ServerSchedule
from colearn_fl.config import parse_section
from colearn_fl.errors import ConfigError
from colearn_fl.simulation import simulate
from tasks import get_task
from tasks.speech import SpeechConfig, central_datamodule_fn, datamodule_fn, module_fn
from tasks.speech_data import KEYWORDS
from tests.tasks.test_speech_data import write_tone_set


def _context(run_config: dict, node_config: dict) -> Context:
    return Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(),
                   run_config=run_config)


def test_defaults_are_tensorflows_12_class_setup() -> None:
    # Execute
    config = parse_section(SpeechConfig, {"lr-max": 0.1, "speech-time-shift-ms": 50})

    # Assert: 16 kHz * 50 ms = 800 samples of shift; 1000 ms = 16000 samples
    assert config.words == KEYWORDS and config.clip_samples == 16000
    assert config.augmentation().time_shift == 800
    assert config.augmentation().background_frequency == 0.8
    assert config.feature_spec().num_frames == 98


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"speech-words": "yes,no,yes"}, "speech-words='yes,no,yes'"),
        ({"speech-words": "yes,_silence_"}, "speech-words='yes,_silence_'"),
        ({"speech-features": "fbank"}, "speech-features='fbank' is not known; use one of: log"),
        ({"speech-f-max": 9000.0}, r"speech-f-max=9000.0: need 0 <= f-min < f-max <= .* 8000"),
        ({"speech-silence-percentage": 150}, r"speech-silence-percentage=150.0: must be in"),
        ({"speech-time-shift-ms": 2000}, r"speech-time-shift-ms=2000.0: must be in \[0, 1000\]"),
        ({"speech-n-mels": "forty"}, "speech-n-mels='forty': expected an integer"),
        ({"speech-n-mels": 128}, "speech-n-mels=128: mel filters"),
        ({"speech-clip-ms": 20, "speech-time-shift-ms": 0}, "speech-window-ms=30.0"),
    ],
)
def test_bad_values_name_the_key(raw: dict, match: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        parse_section(SpeechConfig, raw)


def test_task_is_registered_with_its_models_and_keys() -> None:
    # Execute
    task = get_task("speech")

    # Assert
    assert task.config is SpeechConfig and task.metrics == ("accuracy",)
    assert task.models() == ["conv", "tiny-conv"]


def test_module_fn_builds_the_configured_spotter() -> None:
    # Execute
    default = module_fn({"model": ""})
    custom = module_fn({"model": "tiny-conv", "lr-max": 0.01, "speech-words": "yes,no",
                        "speech-features": "mfcc", "speech-n-mels": 20})

    # Assert: 2 keywords + silence + unknown = 4 classes
    assert default.hparams.model == "conv" and default.hparams.num_classes == 12
    assert (custom.hparams.model, custom.hparams.num_classes, custom.hparams.lr) == (
        "tiny-conv", 4, 0.01)
    assert custom.hparams.mfcc and custom.hparams.n_mels == 20


def test_datamodule_fn_simulation_partition(tmp_path: Path) -> None:
    # Prepare
    run_config = {"data-dir": str(tmp_path), "batch-size": 32, "partitioning": "dirichlet",
                  "seed": 5, "speech-unknown-percentage": 20.0}
    context = _context(run_config, {"partition-id": 1, "num-partitions": 2})

    # Execute
    data = datamodule_fn(context)

    # Assert
    assert (data.partition, data.partitioning) == ((1, 2), "dirichlet")
    assert (data.batch_size, data.seed, data.root) == (32, 5, tmp_path)
    assert data.speech.speech_unknown_percentage == 20.0


def test_datamodule_fn_node_data_dir_wins(tmp_path: Path) -> None:
    # Prepare
    context = _context({"data-dir": "/elsewhere"},
                       {"data-dir": str(tmp_path), "partition-id": 0, "num-partitions": 2})

    # Execute
    data = datamodule_fn(context)

    # Assert: a deployment site uses all of its own files
    assert data.root == tmp_path and data.partition is None


def test_central_data_is_the_testing_split_or_none(tmp_path: Path) -> None:
    # Prepare
    root = write_tone_set(tmp_path / "data")

    # Execute
    central = central_datamodule_fn({"data-dir": str(root)})
    absent = central_datamodule_fn({"data-dir": str(tmp_path / "absent")})
    central.setup("test")

    # Assert: 2 testing speakers -> 20 keyword, 2 unknown, 2 silence clips
    assert absent is None
    assert central.partition is None and len(central.test_set) == 24
    assert central.train_set is None  # the server decodes only the testing split


def test_a_site_trainer_learns_the_tones_on_the_real_data_path(tmp_path: Path) -> None:
    # Prepare: the task's own factories, one site with all 4 training speakers (48 clips)
    torch.manual_seed(0)
    run_config = {"model": "tiny-conv", "data-dir": str(write_tone_set(tmp_path)),
                  "batch-size": 16}
    module, data = module_fn(run_config), datamodule_fn(_context(run_config, {}))
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", callbacks=[ServerSchedule("cosine", 0.05, 0.0005)])

    # Execute
    trainer.fit(module, datamodule=data)
    (tested,) = trainer.test(module, datamodule=central_datamodule_fn(run_config), verbose=False)

    # Assert: chance is 1/12 = 0.083
    assert tested["accuracy"] > 0.5


# ~30 s on 2 cores, mostly Ray and ClientApp start-up: the one federated speech run in CI
def test_speech_federation_learns_the_tones(tmp_path: Path) -> None:
    # Prepare: 12 speakers (8 training, 2 validation, 2 testing), word i = tone at 300 + 280 i Hz
    data = write_tone_set(tmp_path / "data", speakers=12)

    # Execute: 2 sites, 2 rounds (epochs 1, 2), the small model
    folder = simulate({"task": "speech", "model": "tiny-conv", "data-dir": str(data),
                       "output-dir": str(tmp_path), "num-server-rounds": 2, "batch-size": 16},
                      num_sites=2, cpus_per_site=1)

    # Assert: chance is 1/12 = 0.083
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert rows[0]["central-accuracy"] < 0.3
    assert rows[-1]["central-accuracy"] > 0.6
    assert rows[-1]["federated-accuracy"] > 0.5 and rows[-1]["sites-averaged"] == 2
