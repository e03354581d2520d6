"""Table 1 figures of the image models: parameters, bytes per round, seconds per local epoch.

For each registered image model: its parameter count, the bytes one site moves per co-learning
round at float32 (the full state dict down and up, buffers included), and the measured time of
training steps (forward, backward, Nesterov SGD step; batch 32, 32x32 RGB, 10 classes) on this
machine, as seconds per image and per local epoch of a CIFAR-10 site (50,000 / 4 = 12,500
images: an extrapolation from the measured steps, said as such in the table). ``--imagenet``
adds the ImageNet-size variants' sizes (224x224, 1000 classes; no timing).

    python benchmarks/model_zoo.py                  # every model, 2 timed steps each
    python benchmarks/model_zoo.py --models densenet-40 vgg-19-bn --steps 4
    python benchmarks/model_zoo.py --smoke          # tiny models only, for the test suite
"""

from __future__ import annotations

import argparse
import time

import torch

from colearn_fl.arrays import state_dict_to_arrays
from strategies.arrays import count_bytes
from tasks.image.models import list_models
from tasks.image.module import ImageClassifier

SITE_EPOCH_IMAGES = 50_000 // 4
PAPER_MODELS = ("vgg-19-bn", "resnet-152", "densenet-40", "inception-v4", "inception-resnet-v2",
                "resnet-v2-101")


def size(name: str, channels: int, classes: int, image_size: int) -> tuple[int, int]:
    """(parameters, bytes one site sends + receives per round at float32)."""
    module = ImageClassifier(model=name, in_channels=channels, num_classes=classes,
                             image_size=image_size)
    params = sum(p.numel() for p in module.parameters())
    return params, 2 * count_bytes(state_dict_to_arrays(module.state_dict()))


def seconds_per_image(name: str, steps: int, batch: int, device: str) -> float:
    """Mean wall time per training image over ``steps`` steps, after one warm-up step."""
    torch.manual_seed(0)
    module = ImageClassifier(model=name, in_channels=3, num_classes=10, image_size=32).to(device)
    module.train()
    optimizer = module.configure_optimizers()
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(images), labels).backward()
        optimizer.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / (steps * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--imagenet", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    names = args.models or (["tiny-cnn", "small-cnn"] if args.smoke else list_models())
    steps = 1 if args.smoke else args.steps
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = torch.get_num_threads()
    print(f"device {device} ({threads} threads); batch {args.batch}; {steps} timed steps")
    print("| model | params (M) | MB per site per round | s per image | "
          f"s per site epoch ({SITE_EPOCH_IMAGES:,} images, extrapolated) |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        params, wire = size(name, 3, 10, 32)
        per_image = seconds_per_image(name, steps, args.batch, device)
        print(f"| {name} | {params / 1e6:.2f} | {wire / 1e6:.1f} | {per_image:.4f} | "
              f"{per_image * SITE_EPOCH_IMAGES:,.0f} |", flush=True)
    if args.imagenet:
        print("\nImageNet variants (224x224, 1000 classes)\n")
        print("| model | params (M) | MB per site per round |\n|---|---:|---:|")
        for name in [n for n in names if n in PAPER_MODELS]:
            params, wire = size(name, 3, 1000, 224)
            print(f"| {name} | {params / 1e6:.2f} | {wire / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
