"""One site's co-learning round through the plugin against a plain Lightning ``Trainer.fit``.

Both sides train the same model (a zoo model's CIFAR variant) on the same in-memory data for
the same epochs, in the same process and run, on the best device there is (GPU when present):

- plugin: ``colearn_fl.site.rounds.train_round`` called as Flower calls a site's ClientApp (the
  global model and the round's schedule in a ``Message``), so it includes loading the global
  weights, the LR cycle callback, the round statistics and encoding the reply;
- plain: ``Trainer.fit`` of a fresh module with the module's own optimizer.

Printed: images per second of each side and their ratio (plugin / plain; target >= 0.97).
Each side runs once as warm-up (CUDA kernels, cuDNN autotuning), then ``--repeats`` times.

    python benchmarks/gpu.py --model resnet-152 --precision bf16-mixed --channels-last
    python benchmarks/gpu.py --model vgg-19-bn --precision bf16-mixed --channels-last
    python benchmarks/gpu.py --smoke          # tiny-cnn, 512 images, on CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from torch.utils.data import DataLoader, TensorDataset

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.site.rounds import SiteCall, train_round
from colearn_fl.trainer import make_trainer
from tasks.image.module import ImageClassifier


class Images(pl.LightningDataModule):
    """``n`` random 32x32 RGB images of 10 classes, the same tensors every call."""

    def __init__(self, n: int, batch: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.data = TensorDataset(torch.randn(n, 3, 32, 32, generator=generator),
                                  torch.randint(0, 10, (n,), generator=generator))
        self.batch = batch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch, shuffle=True, drop_last=True,
                          pin_memory=torch.cuda.is_available())


def module_fn(model: str, channels_last: bool) -> Any:
    def build(_config: dict[str, Any]) -> ImageClassifier:
        module = ImageClassifier(model=model, in_channels=3, num_classes=10, image_size=32)
        return module.to(memory_format=torch.channels_last) if channels_last else module
    return build


def plugin_round(build: Any, data: Images, epochs: int, precision: str, out: str) -> float:
    """Seconds of one site's round through ``train_round``."""
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    config = ConfigRecord({"server-round": 1, "local-epochs": epochs, "lr-schedule": "cosine",
                           "lr-max": 0.05, "lr-min": 0.0005})
    msg = Message(RecordDict({"arrays": state_dict_to_arrays(build({}).state_dict()),
                              "config": config}), dst_node_id=1, message_type=MessageType.TRAIN)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                      run_config={"output-dir": out, "precision": precision,
                                  "run-name": "gpu"})
    start = time.perf_counter()
    train_round(msg, SiteCall.of(context, build, lambda _ctx: data))
    _sync()
    return time.perf_counter() - start


def plain_fit(build: Any, data: Images, epochs: int, precision: str) -> float:
    """Seconds of ``Trainer.fit`` of the same model and data."""
    module = build({})
    start = time.perf_counter()
    make_trainer(precision, [], epochs).fit(module, datamodule=data)
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet-152")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--images", type=int, default=12_500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.precision, args.images, args.batch = "tiny-cnn", "32-true", 512, 64
        args.repeats = 1
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    build, data = module_fn(args.model, args.channels_last), Images(args.images, args.batch)
    with tempfile.TemporaryDirectory() as out:
        plugin_round(build, data, 1, args.precision, out)  # warm-up
        plain_fit(build, data, 1, args.precision)
        plugin = min(plugin_round(build, data, args.epochs, args.precision, out)
                     for _ in range(args.repeats))
        plain = min(plain_fit(build, data, args.epochs, args.precision)
                    for _ in range(args.repeats))
    images = args.images // args.batch * args.batch * args.epochs
    print(f"{args.model}, {args.precision}, channels_last {args.channels_last}, batch "
          f"{args.batch}, {images} images, {device}")
    print(f"plugin round      : {images / plugin:10.1f} images/s ({plugin:.2f} s)")
    print(f"plain Trainer.fit : {images / plain:10.1f} images/s ({plain:.2f} s)")
    print(f"throughput ratio (plugin / plain): {plain / plugin:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
