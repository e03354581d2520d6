"""Tests of the speech task: its keys, factories, registration and a real federation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from colearn_fl.simulation import simulate
from colearn_fl.site.callbacks.lr_cycle import LRCycle
from tasks import get_task
from tasks.errors import ConfigError
from tasks.shared import Site
from tasks.speech import (
    SpeechConfig,
    build_central_datamodule,
    build_datamodule,
    build_module,
)
from tasks.speech.config import DEFAULT_DATA_DIR
from tasks.speech.folder import KEYWORDS
from tests.tasks.speech.tones import write_tone_set


def test_defaults_are_tensorflows_12_class_setup() -> None:
    # Execute
    config = SpeechConfig(speech_time_shift_ms=50.0)

    # Assert: 16 kHz * 50 ms = 800 samples of shift; 1000 ms = 16000 samples
    assert config.words == KEYWORDS and config.clip_samples == 16000
    assert config.augmentation().time_shift == 800
    assert config.augmentation().background_frequency == 0.8
    assert config.feature_spec().num_frames == 98


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"speech_words": "yes,no,yes"}, "speech-words='yes,no,yes'"),
        ({"speech_words": "yes,_silence_"}, "speech-words='yes,_silence_'"),
        ({"speech_features": "fbank"}, "speech-features='fbank' is not known; use one of: log"),
        ({"speech_f_max": 9000.0}, r"speech-f-max=9000.0: need 0 <= f-min < f-max <= .* 8000"),
        ({"speech_silence_percentage": 150.0}, r"speech-silence-percentage=150.0: must be in"),
        ({"speech_time_shift_ms": 2000.0},
         r"speech-time-shift-ms=2000.0: must be in \[0, 1000\]"),
        ({"speech_n_mels": 128}, "speech-n-mels=128: mel filters"),
        ({"speech_clip_ms": 20, "speech_time_shift_ms": 0.0}, "speech-window-ms=30.0"),
    ],
)
def test_bad_values_name_the_key(fields: dict, match: str) -> None:
    # Prepare
    config = SpeechConfig(**fields)

    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        config.validate()


def test_task_is_registered_with_its_models_and_keys() -> None:
    # Execute
    task = get_task("speech")

    # Assert
    assert task.config is SpeechConfig and task.metrics == ("accuracy",)
    assert task.models() == ["conv", "tiny-conv"]
    assert task.build_datamodule is build_datamodule


def test_build_module_builds_the_configured_spotter() -> None:
    # Prepare
    custom_config = SpeechConfig(speech_words="yes,no", speech_features="mfcc", speech_n_mels=20)

    # Execute
    default = build_module(SpeechConfig(), model="")
    custom = build_module(custom_config, model="tiny-conv", lr=0.01)

    # Assert: 2 keywords + silence + unknown = 4 classes
    assert default.hparams.model == "conv" and default.hparams.num_classes == 12
    assert (custom.hparams.model, custom.hparams.num_classes, custom.hparams.lr) == (
        "tiny-conv", 4, 0.01)
    assert custom.hparams.mfcc and custom.hparams.n_mels == 20


def test_build_datamodule_keeps_the_sites_partition(tmp_path: Path) -> None:
    # Prepare
    site = Site(str(tmp_path), partition=(1, 2), batch_size=32, partitioning="dirichlet",
                seed=5)

    # Execute
    data = build_datamodule(SpeechConfig(speech_unknown_percentage=20.0), site)

    # Assert
    assert (data.partition, data.partitioning) == ((1, 2), "dirichlet")
    assert (data.batch_size, data.seed, data.root) == (32, 5, tmp_path)
    assert data.speech.speech_unknown_percentage == 20.0


def test_build_datamodule_without_data_dir_reads_the_default_folder() -> None:
    # Execute
    data = build_datamodule(SpeechConfig(), Site())

    # Assert
    assert data.root == Path(DEFAULT_DATA_DIR).expanduser() and data.partition is None


def test_central_data_is_the_testing_split_or_none(tmp_path: Path, caplog) -> None:
    # Prepare
    root = write_tone_set(tmp_path / "data")
    config = SpeechConfig()

    # Execute
    central = build_central_datamodule(config, Site(str(root)))
    with caplog.at_level(logging.WARNING, logger="tasks.speech"):
        absent = build_central_datamodule(config, Site(str(tmp_path / "absent")))
    central.setup("test")

    # Assert: 2 testing speakers -> 20 keyword, 2 unknown, 2 silence clips
    assert absent is None
    assert [r.name for r in caplog.records if "cannot read data-dir" in r.message] == [
        "tasks.speech"]
    assert central.partition is None and len(central.test_set) == 24
    assert central.train_set is None  # the server decodes only the testing split


def test_central_data_is_none_when_no_clip_is_listed_for_testing(tmp_path: Path) -> None:
    # Prepare
    root = write_tone_set(tmp_path)
    (root / "testing_list.txt").write_text("")

    # Execute
    central = build_central_datamodule(SpeechConfig(), Site(str(root)))

    # Assert
    assert central is None


def test_a_site_trainer_learns_the_tones_on_the_real_data_path(tmp_path: Path) -> None:
    # Prepare: the task's own factories, one site with all 4 training speakers (48 clips)
    torch.manual_seed(0)
    config, site = SpeechConfig(), Site(str(write_tone_set(tmp_path)), batch_size=16)
    module, data = build_module(config, model="tiny-conv"), build_datamodule(config, site)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", callbacks=[LRCycle("cosine", 0.05, 0.0005)])

    # Execute
    trainer.fit(module, datamodule=data)
    central = build_central_datamodule(config, site)
    (tested,) = trainer.test(module, datamodule=central, verbose=False)

    # Assert: chance is 1/12 = 0.083
    assert tested["accuracy"] > 0.5


# ~30 s on 2 cores, mostly Ray and ClientApp start-up: the one federated speech run in CI
@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
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
