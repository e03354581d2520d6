"""optimizer-state='reset' against 'keep', paired over seeds, on two Adam modules.

- ``toxic``: the toxic task's LSTM (Adam) on SYNTHETIC Jigsaw-format files
  (``tasks/toxic/synth.py``), central AUROC;
- ``image-adam``: a user's own small CNN with Adam at lr 1e-3 (no saved hyper-parameters), on
  Fashion-MNIST through ``colearn_fl.shard``, central accuracy.

Every run is the default co-learning schedule (3 rounds, decaying epochs 4, 2, 1, cosine
cycle), 4 simulated sites, one seed at a time; ``reset`` and ``keep`` of a seed differ only in
that key. Prints each run's final metric, the means and the paired differences keep - reset
with a 95 % t interval.

    python benchmarks/optimizer_state.py --seeds 0,1,2 --out /tmp/optimizer-state
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import colearn_fl  # noqa: E402
from colearn_fl.simulation import simulate  # noqa: E402
from tasks.image.fashion_mnist import load_fashion_mnist  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # two-sided 95 %, by df


class AdamCNN(pl.LightningModule):
    """A user's own module: built with Adam at 1e-3, nothing saved as hyper-parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits = self(batch[0])
        self.log("accuracy", (logits.argmax(1) == batch[1]).float().mean())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def fashion(split: str, limit: int) -> TensorDataset:
    images, labels = load_fashion_mnist(Path(FASHION), split)
    x = images[:limit].float().unsqueeze(1) / 255.0
    return TensorDataset(x, labels[:limit].long())


class Split(pl.LightningDataModule):
    def __init__(self, train: Any, test: Any) -> None:
        super().__init__()
        self.train, self.test = train, test

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=64, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=256)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=256)


def image_run(folder: Path, state: str, seed: int, samples: int) -> float:
    run = simulate(
        {"output-dir": str(folder), "run-name": f"image-{state}-{seed}", "seed": seed,
         "optimizer-state": state, "overwrite": True},
        num_sites=4, module_fn=lambda _: AdamCNN(),
        datamodule_fn=lambda context: Split(
            colearn_fl.shard(fashion("train", samples), context), fashion("test", 1000)),
        central_datamodule_fn=lambda _: Split(fashion("test", 1000), fashion("test", 1000)))
    return final(run, "central-accuracy")


def toxic_run(folder: Path, state: str, seed: int, data: Path) -> float:
    run = simulate(
        {"task": "toxic", "model": "lstm", "tokenizer": "word-hash", "seq-len": 64,
         "data-dir": str(data), "output-dir": str(folder), "run-name": f"toxic-{state}-{seed}",
         "seed": seed, "optimizer-state": state, "overwrite": True}, num_sites=4)
    return final(run, "central-auroc")


def final(run: Path, metric: str) -> float:
    return float(json.loads((run / "history.json").read_text())["rounds"][-1][metric])


def interval(differences: list[float]) -> str:
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return f"{mean:+.4f}"
    half = T_975[len(differences) - 1] * statistics.stdev(differences) / len(differences) ** 0.5
    return f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/optimizer-state"))
    parser.add_argument("--tasks", default="toxic,image-adam")
    parser.add_argument("--image-samples", type=int, default=4000,
                        help="Fashion-MNIST training images shared by the 4 sites")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data = args.out / "jigsaw-synth"
    if "toxic" in args.tasks and not (data / "train.csv").exists():
        from tasks.toxic.synth import write_synthetic

        write_synthetic(data)
    rows = []
    for task in args.tasks.split(","):
        results: dict[str, list[float]] = {"reset": [], "keep": []}
        for seed in seeds:
            for state in ("reset", "keep"):
                start = time.monotonic()
                value = (toxic_run(args.out, state, seed, data) if task == "toxic" else
                         image_run(args.out, state, seed, args.image_samples))
                results[state].append(value)
                print(f"{task} seed {seed} {state}: {value:.4f} "
                      f"({time.monotonic() - start:.0f} s)", flush=True)
        differences = [k - r for k, r in zip(results["keep"], results["reset"], strict=True)]
        pairs = zip(results["reset"], results["keep"], strict=True)
        rows.append(f"| {task} | {statistics.fmean(results['reset']):.4f} | "
                    f"{statistics.fmean(results['keep']):.4f} | {interval(differences)} | "
                    f"{', '.join(f'{r:.4f}/{k:.4f}' for r, k in pairs)} |")
    print("| task | reset | keep | keep - reset (95 % CI) | per seed reset/keep |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
