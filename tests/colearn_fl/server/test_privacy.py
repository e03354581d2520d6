"""Central DP (client-side fixed clipping) composed with CoLearn: config, the server's noise, a
simulated run (the sites' clipping mod: site/test_clipping_mod.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.server.checkpoint import load_checkpoint
from colearn_fl.server.privacy import ClientSideFixedClipping, sampled_sites, with_privacy
from colearn_fl.server.strategy import build_strategy
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData

DP_ON = {"dp-noise-multiplier": 1.0, "dp-clipping-norm": 1.0}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"dp-noise-multiplier": -0.5}, "dp-noise-multiplier=-0.5: must be a finite number >= 0"),
        ({"dp-noise-multiplier": float("inf")}, "dp-noise-multiplier=inf"),
        ({"dp-clipping-norm": 0}, "dp-clipping-norm=0.0: must be a finite number > 0"),
        ({"dp-clipping-norm": "1"}, "dp-clipping-norm='1': expected a number"),
        ({**DP_ON, "transport-dtype": "bfloat16"}, "transport-dtype='bfloat16'"),
        ({**DP_ON, "transport-dtype": "float16"}, "transport-dtype='float16'"),
    ],
)
def test_dp_config_errors_name_the_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(raw)


def test_dp_off_by_default_and_wrapped_when_on() -> None:
    # Prepare
    off, on = RunConfig(), RunConfig.from_dict({**DP_ON, "min-available-nodes": 4,
                                                "fraction-train": 0.5})
    # Execute
    plain, wrapped = with_privacy(build_strategy(off), off), with_privacy(build_strategy(on), on)
    # Assert: sample size as FedAvg computes it with min-available-nodes connected
    assert not isinstance(plain, ClientSideFixedClipping)
    assert isinstance(wrapped, ClientSideFixedClipping)
    assert sampled_sites(on) == wrapped.num_sampled_clients == 2


class FixedAverage(Strategy):
    """Returns a fixed 'average' so the wrapper's noise can be inspected."""

    def __init__(self, arrays: ArrayRecord) -> None:
        self.arrays = arrays

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.arrays, None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        return None

    def summary(self) -> None:
        pass


def test_server_noise_spares_int_buffers_and_keeps_variances_non_negative() -> None:
    # Prepare: noise std 10 * 1 / 1 = 10 would make most variances negative
    average = ArrayRecord({"bn.running_var": Array(np.full(1000, 0.5, dtype=np.float32)),
                           "weight": Array(np.zeros(1000, dtype=np.float32)),
                           "bn.num_batches_tracked": Array(np.array(7, dtype=np.int64))})
    wrapper = ClientSideFixedClipping(FixedAverage(average), noise_multiplier=10.0,
                                      clipping_norm=1.0, num_sampled_clients=1)
    # Execute
    noised, _ = wrapper.aggregate_train(1, [])
    # Assert
    assert noised is not None
    assert list(noised.keys()) == list(average.keys())
    assert 8.0 < float(noised["weight"].numpy().std()) < 12.0
    assert noised["weight"].dtype == "float32"
    assert float(noised["bn.running_var"].numpy().min()) == 0.0
    assert noised["bn.num_batches_tracked"].dtype == "int64"
    assert int(noised["bn.num_batches_tracked"].numpy()) == 7


def site_data(context: Context) -> TinyData:
    return TinyData(n=64, seed=int(context.node_config["partition-id"]))


def run(tmp_path: Path, name: str, **config: float) -> Path:
    return simulate({"output-dir": str(tmp_path), "run-name": name, "num-server-rounds": 1,
                     "epochs-schedule": "fixed", "epochs-initial": 1, **config},
                    num_sites=2, cpus_per_site=1, module_fn=lambda cfg: TinyClassifier(),
                    datamodule_fn=site_data, central_datamodule_fn=lambda cfg: TinyData())


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_dp_run_records_rounds_and_noises_the_average(tmp_path) -> None:
    # Execute: the same seeded run without and with DP. A clipping norm far above the update
    # norm makes clipping a no-op, so the two global models differ by the noise alone:
    # std = 1e-4 * 1e3 / 2 sites = 0.05 per value.
    plain = run(tmp_path, "plain")
    private = run(tmp_path, "private", **{"dp-noise-multiplier": 1e-4, "dp-clipping-norm": 1e3})
    # Assert: CoLearn's records survive the wrapper
    rows = json.loads((private / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1]["sites-averaged"] == 2 and rows[1]["local-epochs"] == 1
    assert "train-loss" in rows[1] and "federated-accuracy" in rows[1]
    # Assert: float arrays carry the noise; the int buffer does not
    a = load_checkpoint(plain / "checkpoint.pt")["state_dict"]
    b = load_checkpoint(private / "checkpoint.pt")["state_dict"]
    diffs = torch.cat([(b[k] - a[k]).flatten() for k in a if a[k].is_floating_point()])
    assert 0.03 < float(diffs.std()) < 0.08
    assert torch.equal(a["net.1.num_batches_tracked"], b["net.1.num_batches_tracked"])
