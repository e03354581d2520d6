"""lr-max='auto': each site's LR range test, and the federated one in a real simulation."""

from __future__ import annotations

import json
import math

import torch
from flwr.app import Context

from colearn_fl.simulation import simulate
from colearn_fl.site.lr_range import range_test
from tests.tiny import TinyClassifier, TinyData


def test_site_range_test_stops_at_divergence_and_suggests_below_it() -> None:
    # Prepare: a sweep up to an LR of 1000, where SGD on this MLP must blow up
    torch.manual_seed(0)
    module = TinyClassifier()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    # Execute
    suggested, diverged = range_test(module, TinyData(n=512), 1e-4, 1e3, 100)
    # Assert: the search stopped early, the suggestion is a finite LR below that point, and
    # the module's weights are restored
    assert diverged < 1e3
    assert math.isfinite(suggested) and 1e-4 <= suggested < diverged
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def site_data(context: Context) -> TinyData:
    return TinyData(n=256, seed=int(context.node_config["partition-id"]))


def test_auto_finds_records_and_uses_one_lr(tmp_path) -> None:
    # Execute: one round with lr-max='auto' (lr-min: the default ratio 0.01)
    folder = simulate({"output-dir": str(tmp_path), "run-name": "a", "num-server-rounds": 1,
                       "lr-max": "auto", "lr-find-steps": 40, "fraction-evaluate": 0.0},
                      num_sites=2, cpus_per_site=1, module_fn=lambda cfg: TinyClassifier(),
                      datamodule_fn=site_data, central_datamodule_fn=lambda cfg: TinyData())
    # Assert: round 0 records both sites' answers and the aggregate; round 1 used it
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    found = rows[0]["lr-range-test"]
    assert len(found["sites"]) == 2
    smallest_divergence = min(site["lr-diverged"] for site in found["sites"])
    assert 0 < found["lr-max"] < smallest_divergence
    median = sorted(site["lr-suggested"] for site in found["sites"])
    assert found["lr-max"] == min(sum(median) / 2, smallest_divergence / 4)
    assert rows[0]["lr-auto"] == found["lr-max"]
    assert rows[1]["lr-max"] == found["lr-max"]
    assert math.isclose(rows[1]["lr-min"], found["lr-max"] * 0.01)
