"""Every task learns at its defaults: a new user's run with only ``data-dir`` set (and the
data it points at) must beat the task's prior clearly, with the LR cycle the task and model
choose (``lr-max='default'``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from colearn_fl.simulation import simulate
from tasks.audioset.synth import label_prior
from tasks.audioset.synth import write_synthetic as write_audioset
from tasks.toxic.synth import write_synthetic as write_jigsaw
from tests.tasks.speech.tones import write_tone_set


def audioset(root: Path) -> tuple[Path, float]:
    data_dir = write_audioset(root, num_train=400, num_eval=200, num_signal=8)
    with h5py.File(data_dir / "eval.h5", "r") as handle:
        return data_dir, label_prior(handle["y"][:])  # a random scorer's mAP


def toxic(root: Path) -> tuple[Path, float]:
    return write_jigsaw(root, num_train=400, num_test=200), 0.5  # AUROC of a random scorer


def speech(root: Path) -> tuple[Path, float]:
    return write_tone_set(root, speakers=12), 1 / 12  # 12 words, chance accuracy


def image(root: Path) -> tuple[Path, float]:
    return Path(""), 0.1  # the real Fashion-MNIST at its Debian location; 10 classes


CASES: dict[str, tuple[Callable[[Path], tuple[Path, float]], str, float]] = {
    # task: (data written in its real format, central metric, margin it must beat prior by)
    "audioset": (audioset, "central-map", 0.3),
    "image": (image, "central-accuracy", 0.6),
    "toxic": (toxic, "central-auroc", 0.25),
    "speech": (speech, "central-accuracy", 0.4),
}


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
@pytest.mark.parametrize("task", sorted(CASES))
def test_task_learns_at_its_defaults(task: str, tmp_path: Path) -> None:
    # Prepare: the task's generated data
    write, metric, margin = CASES[task]
    data_dir, prior = write(tmp_path / "data")
    # Execute: 2 sites, every other key at its default (3 rounds, epochs 4, 2, 1); the image
    # task reads 2,000 of the real images (max-samples) to stay quick
    run = {"task": task, "data-dir": str(data_dir) if str(data_dir) != "." else "",
           "output-dir": str(tmp_path), **({"max-samples": 2000} if task == "image" else {})}
    folder = simulate(run, num_sites=2, cpus_per_site=1)
    # Assert: far above the prior; the sites' own validation metric was averaged too
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert rows[-1][metric] > prior + margin, [row.get(metric) for row in rows]
    assert metric.replace("central-", "federated-") in rows[-1]
    assert rows[-1]["sites-averaged"] == 2
