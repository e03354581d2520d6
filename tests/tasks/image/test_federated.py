"""A short co-learning federation of the image task with a paper model on CIFAR-10 batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from colearn_fl.server.checkpoint import load_checkpoint
from colearn_fl.simulation import simulate
from tests.tasks.image.test_data import write_cifar


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_densenet_40_federates_on_cifar_batches_in_bf16(tmp_path: Path) -> None:
    # Prepare: 40 training and 20 test images in the real pickle format
    data_dir = write_cifar(tmp_path / "data")

    # Execute: 2 sites, 2 rounds of 1 epoch, a non-default model, bf16 autocast; a set
    # lr-max (this model's default, 'auto', runs the LR range test: tests/colearn_fl/
    # tests/colearn_fl/site/test_lr_range.py)
    folder = simulate({"data-dir": str(data_dir), "model": "densenet-40", "batch-size": 10,
                       "num-server-rounds": 2, "epochs-schedule": "fixed",
                       "epochs-initial": 1, "lr-max": 0.05, "precision": "bf16-mixed",
                       "output-dir": str(tmp_path)}, num_sites=2, cpus_per_site=1)

    # Assert: every round averaged both sites and was evaluated with top-1 and top-5
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r["sites-averaged"] == 2 for r in rows[1:])
    assert {"central-accuracy", "central-top5-accuracy", "federated-accuracy"} <= set(rows[-1])
    assert rows[-1]["central-top5-accuracy"] >= rows[-1]["central-accuracy"]
    # The global model is DenseNet-40 in float32 (bf16 only inside the sites' autocast).
    state = load_checkpoint(folder / "checkpoint.pt")["state_dict"]
    assert sum(v.numel() for k, v in state.items() if "num_batches" not in k
               and "running" not in k) > 1.0e6
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
