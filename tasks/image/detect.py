"""Which image data set a directory holds (the ``dataset=''`` default: detect it)."""

from __future__ import annotations

from pathlib import Path

from tasks.errors import ConfigError
from tasks.image import cifar10, fashion_mnist
from tasks.image.config import FOLDERS, ImageConfig


def resolve_dataset(config: ImageConfig, data_dir: str) -> str:
    """The ``dataset`` key, or else the data set ``data_dir`` holds.

    A ``data_dir`` that is empty, or that does not exist on this machine (a deployment server's
    path, seen at a site that reads its own node-config ``data-dir``), means Fashion-MNIST, the
    default: other data sets are then named with the ``dataset`` key.
    """
    if config.dataset:
        return config.dataset
    if not data_dir or not Path(data_dir).is_dir():
        return "fashion-mnist"
    if cifar10.batches_dir(data_dir) is not None:
        return "cifar10"
    if (Path(data_dir) / "train").is_dir():
        return FOLDERS
    if any(fashion_mnist.split_available(data_dir, s) for s in ("train", "test")):
        return "fashion-mnist"
    raise ConfigError(
        f"data-dir={data_dir!r} holds no image data set colearn-fl recognises: Fashion-MNIST "
        "idx files (apt-get install dataset-fashion-mnist puts them in "
        f"{fashion_mnist.DEFAULT_DATA_DIR}), cifar-10-batches-py/ ({cifar10.DOWNLOAD}), or "
        "train/<class>/ image folders. Fix data-dir, or set dataset='fashion-mnist' | "
        "'cifar10' | 'imagefolder' (see docs/data.md)."
    )
