"""The ``image`` task: image classification on Fashion-MNIST, CIFAR-10 or ImageNet-style folders.

The data set is the ``dataset`` key, or, when it is ``''``, whatever the run config's
``data-dir`` holds (idx files: Fashion-MNIST; ``cifar-10-batches-py``: CIFAR-10; ``train/``
class folders: image folders; an empty ``data-dir``: Fashion-MNIST from its Debian location).
The model is the ``model`` key (``tasks.image_models`` / ``tasks.image_zoo``). Both are read from
the run config, never from a site's node config, so the server and every site build the same
network; in a deployment whose server has no copy of the data, set ``dataset`` (and for image
folders ``num-classes``) explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from flwr.app import Context

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.errors import ConfigError
from tasks import (
    Task,
    cifar10,
    fashion_mnist,
    image_zoo,  # noqa: F401  (registers the paper's models)
    register_task,
)
from tasks.common import SiteSource, site_arguments, site_source
from tasks.image_data import IMAGE_SETS, ImageDataModule
from tasks.image_folder import FolderDataModule, count_classes
from tasks.image_models import DEFAULT_MODEL, list_models
from tasks.image_module import ImageClassifier

__all__ = ["ImageClassifier", "ImageConfig", "ImageDataModule", "FolderDataModule",
           "central_datamodule_fn", "datamodule_fn", "module_fn"]

FOLDERS = "imagefolder"
DATASETS = (*IMAGE_SETS, FOLDERS)


@dataclass(frozen=True)
class ImageConfig:
    """The image task's own run-config keys."""

    dataset: str = ""  # fashion-mnist, cifar10, imagefolder; "" = detect from data-dir
    image_size: int = 224  # imagefolder: side of the crops; in-memory sets keep theirs
    num_classes: int = 0  # imagefolder: 0 = count the class folders of data-dir/train

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad key."""
        if self.dataset and self.dataset not in DATASETS:
            raise ConfigError(f"dataset={self.dataset!r} is not known; use one of: "
                              f"{', '.join(DATASETS)} (or '' to detect it from data-dir).")
        if self.image_size < 8:
            raise ConfigError(f"image-size={self.image_size}: must be >= 8 (e.g. 224).")
        if self.num_classes < 0:
            raise ConfigError(f"num-classes={self.num_classes}: must be >= 0 (0 = count "
                              "the class folders of data-dir/train).")


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


def input_shape(config: ImageConfig, dataset: str, data_dir: str) -> tuple[int, int, int]:
    """(channels, image side, classes) of the model for ``dataset``."""
    if dataset != FOLDERS:
        images = IMAGE_SETS[dataset]
        return images.channels, images.size, images.num_classes
    classes = config.num_classes or (count_classes(data_dir) if data_dir else 0)
    if classes < 2:
        raise ConfigError(
            f"dataset='imagefolder' needs the number of classes: set num-classes (e.g. "
            f"num-classes=1000), or point data-dir (now {data_dir!r}) at folders with at least "
            "two class folders under train/."
        )
    return 3, config.image_size, classes


def module_fn(run_config: Mapping[str, Any]) -> ImageClassifier:
    """The model named by ``model`` ('' = small-cnn) shaped for the data set, SGD at lr-max."""
    config = RunConfig.from_dict(run_config)
    image = parse_section(ImageConfig, run_config)
    dataset = resolve_dataset(image, config.data_dir)
    channels, size, classes = input_shape(image, dataset, config.data_dir)
    return ImageClassifier(model=config.model or DEFAULT_MODEL, in_channels=channels,
                           num_classes=classes, lr=config.lr_max, image_size=size)


def _datamodule(run_config: Mapping[str, Any], source: SiteSource) -> pl.LightningDataModule:
    config = RunConfig.from_dict(run_config)
    image = parse_section(ImageConfig, run_config)
    # From the run config only, as in module_fn: the data must fit the model the server sent.
    dataset = resolve_dataset(image, config.data_dir)
    common = site_arguments(config, source.partition)
    if dataset == FOLDERS:
        return FolderDataModule(source.data_dir, image_size=image.image_size, **common)
    return ImageDataModule(source.data_dir, dataset=dataset, **common)


def _default_dir(run_config: Mapping[str, Any]) -> str:
    dataset = resolve_dataset(parse_section(ImageConfig, run_config), "")
    return IMAGE_SETS[dataset].default_dir if dataset in IMAGE_SETS else ""


def datamodule_fn(context: Context) -> pl.LightningDataModule:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition."""
    source = site_source(context, _default_dir(context.run_config))
    if not source.data_dir:
        raise ConfigError("the image data set has no default location: set data-dir in the "
                          "run config (simulation) or in the site's node config.")
    return _datamodule(context.run_config, source)


def central_datamodule_fn(run_config: Mapping[str, Any]) -> pl.LightningDataModule | None:
    """The server's whole test split, or ``None`` when ``data-dir`` has no test data."""
    data_dir = RunConfig.from_dict(run_config).data_dir or _default_dir(run_config)
    image = parse_section(ImageConfig, run_config)
    if not data_dir:
        return None
    dataset = resolve_dataset(image, data_dir)
    if dataset == FOLDERS:
        has_test = (Path(data_dir) / "val").is_dir()
    else:
        has_test = IMAGE_SETS[dataset].has_split(data_dir, "test")
    return _datamodule(run_config, SiteSource(data_dir)) if has_test else None


register_task(
    Task(
        name="image",
        module_fn=module_fn,
        datamodule_fn=datamodule_fn,
        central_datamodule_fn=central_datamodule_fn,
        metrics=("accuracy", "top5-accuracy"),  # top-5 with more than 5 classes
        models=list_models,
        config=ImageConfig,
    )
)
