"""A user's own Adam module at the defaults: co-learning against stock Flower FedAvg.

The module is a small MLP built with Adam at lr 1e-3 in ``configure_optimizers`` and no saved
hyper-parameters; each of 2 simulated sites holds ``--samples`` points of a learnable rule
(the label is whether the first feature is positive). Same epochs per round everywhere (the
default schedule's 4, 2, 1). Printed: each method's central validation loss after 3 rounds
and its ratio to stock FedAvg's:

- ``colearn``: ``colearn_fl.client_app`` / ``server_app`` at the defaults (the cosine cycle
  from the module's own 1e-3 down to 1e-5 in every round; ``optimizer-state='reset'``: a new
  optimizer every round, as stock FedAvg's sites build one);
- ``colearn-constant``: the same with ``lr-schedule='constant'`` (the cycle held at 1e-3);
- ``colearn-keep``: the defaults with ``optimizer-state='keep'``;
- ``fedavg``: Flower's ``FedAvg`` over sites that fit the module with its own optimizer.

    python benchmarks/own_module.py --samples 1024 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colearn_fl.config import RunConfig  # noqa: E402
from colearn_fl.simulation import simulate  # noqa: E402

SITES = 2
EPOCHS = RunConfig().round_epochs()
BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
           "init_args": {"address": "local"}}
METHODS = {"colearn": {"optimizer-state": "reset"},
           "colearn-constant": {"lr-schedule": "constant", "optimizer-state": "reset"},
           "colearn-keep": {"optimizer-state": "keep"}}


class AdamMLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("loss", nn.functional.cross_entropy(self(batch[0]), batch[1]))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def rule(n: int, seed: int) -> TensorDataset:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x[:, 0] > 0).long())


class Data(pl.LightningDataModule):
    def __init__(self, n: int, seed: int) -> None:
        super().__init__()
        self.n, self.seed = n, seed

    def train_dataloader(self) -> DataLoader:
        return DataLoader(rule(self.n, self.seed), batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(rule(256, 1000), batch_size=64)  # the same held-out set everywhere

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


def site_data(samples: int) -> Any:
    return lambda context: Data(samples, int(context.node_config["partition-id"]))


def colearning(folder: Path, samples: int, seed: int, overrides: dict[str, Any]) -> float:
    run = simulate({"output-dir": str(folder), "run-name": "run", "seed": seed, **overrides},
                   num_sites=SITES, module_fn=lambda _: AdamMLP(),
                   datamodule_fn=site_data(samples),
                   central_datamodule_fn=lambda _: Data(samples, 0))
    return float(json.loads((run / "history.json").read_text())["rounds"][-1]["central-loss"])


def fedavg(folder: Path, samples: int, seed: int) -> float:
    client, server = ClientApp(), ServerApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        module = AdamMLP()
        module.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        server_round = int(msg.content["config"]["server-round"])
        site = int(context.node_config["partition-id"])
        torch.manual_seed(seed * 1000 + server_round * 10 + site)
        pl.Trainer(max_epochs=EPOCHS[server_round - 1], logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                   accelerator="cpu").fit(module, datamodule=site_data(samples)(context))
        return Message(RecordDict({"arrays": ArrayRecord(module.state_dict()),
                                   "metrics": MetricRecord({"num-examples": samples})}),
                       reply_to=msg)

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.manual_seed(seed)
        result = FedAvg(fraction_evaluate=0.0).start(
            grid=grid, initial_arrays=ArrayRecord(AdamMLP().state_dict()),
            num_rounds=len(EPOCHS))
        module = AdamMLP()
        module.load_state_dict(result.arrays.to_torch_state_dict())
        trainer = pl.Trainer(logger=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu")
        loss = trainer.validate(module, datamodule=Data(samples, 0), verbose=False)[0]["loss"]
        (folder / "loss.json").write_text(json.dumps(float(loss)))

    folder.mkdir(parents=True, exist_ok=True)
    run_simulation(server_app=server, client_app=client, num_supernodes=SITES,
                   backend_config=BACKEND)
    return float(json.loads((folder / "loss.json").read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024, help="training points per site")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    losses: dict[str, list[float]] = {name: [] for name in [*METHODS, "fedavg"]}
    with tempfile.TemporaryDirectory(prefix="own-module-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, overrides in METHODS.items():
                losses[name].append(colearning(Path(tmp) / f"{name}-{seed}", args.samples,
                                               seed, overrides))
            losses["fedavg"].append(fedavg(Path(tmp) / f"fedavg-{seed}", args.samples, seed))
            print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in losses.items()),
                  flush=True)
    base = statistics.fmean(losses["fedavg"])
    print(f"samples per site {args.samples}, seeds {args.seeds}: central loss after "
          f"{len(EPOCHS)} rounds (epochs {EPOCHS})")
    print("| method | central loss (mean) | ratio to stock FedAvg |")
    print("|---|---|---|")
    for name, values in losses.items():
        mean = statistics.fmean(values)
        print(f"| {name} | {mean:.4f} | {mean / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
