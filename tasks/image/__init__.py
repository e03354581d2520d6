"""The ``image`` task: image classification on Fashion-MNIST, CIFAR-10 or ImageNet-style folders.

The data set is the ``dataset`` key, or, when it is ``''``, whatever the run's data directory
holds (idx files: Fashion-MNIST; ``cifar-10-batches-py``: CIFAR-10; ``train/`` class folders:
image folders; an empty or absent directory: Fashion-MNIST from its Debian location).
``resolve`` decides it (and an image-folder class count) from the RUN config's ``data-dir``,
never from a site's own directory, so the server and every site build the same network; in a
deployment whose server has no copy of the data, set ``dataset`` (and for image folders
``num-classes``) explicitly. The model is the ``model`` key (``tasks.image.models`` /
``tasks.image.zoo``).

Files: ``config`` (the keys), ``detect`` (which data set a directory holds), ``models`` and
``zoo`` (the networks), ``module`` (the LightningModule), ``data`` (Fashion-MNIST and CIFAR-10
in memory, read by ``fashion_mnist`` and ``cifar10``), ``folder`` (ImageNet-style folders).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytorch_lightning as pl

from tasks.errors import ConfigError
from tasks.image import (
    cifar_resnet,  # noqa: F401  (registers resnet-8 and resnet-20)
    zoo,  # noqa: F401  (registers the paper's models)
)
from tasks.image.config import DATASETS, FOLDERS, ImageConfig
from tasks.image.data import IMAGE_SETS, ImageDataModule
from tasks.image.detect import resolve_dataset
from tasks.image.folder import FolderDataModule, count_classes
from tasks.image.models import DEFAULT_MODEL, list_models
from tasks.image.module import ImageClassifier
from tasks.registry import Task, register_task
from tasks.shared import Site

__all__ = ["DATASETS", "FolderDataModule", "ImageClassifier", "ImageConfig", "ImageDataModule",
           "build_central_datamodule", "build_datamodule", "build_module", "resolve",
           "resolve_dataset"]


def resolve(config: ImageConfig, data_dir: str) -> ImageConfig:
    """``config`` with ``dataset`` (and an image-folder ``num_classes``) decided by the run's
    ``data_dir``: the data set it holds (empty or absent: Fashion-MNIST), and for image
    folders without ``num-classes`` the class folders of ``data_dir/train`` (0 if none)."""
    dataset = resolve_dataset(config, data_dir)
    classes = config.num_classes
    if dataset == FOLDERS and not classes and data_dir:
        classes = count_classes(data_dir)
    return replace(config, dataset=dataset, num_classes=classes)


def _dataset(config: ImageConfig) -> str:
    if not config.dataset:
        raise ConfigError("dataset='' is not resolved yet: pass the config through "
                          "tasks.image.resolve(config, data_dir) first, or set dataset to one "
                          f"of: {', '.join(DATASETS)}.")
    return config.dataset


def input_shape(config: ImageConfig) -> tuple[int, int, int]:
    """(channels, image side, classes) of the model for the (resolved) data set."""
    dataset = _dataset(config)
    if dataset != FOLDERS:
        images = IMAGE_SETS[dataset]
        return images.channels, images.size, images.num_classes
    if config.num_classes < 2:
        raise ConfigError(
            "dataset='imagefolder' needs the number of classes: set num-classes (e.g. "
            "num-classes=1000), or point data-dir at folders with at least two class folders "
            f"under train/ (found {config.num_classes})."
        )
    return 3, config.image_size, config.num_classes


def build_module(config: ImageConfig, model: str = "", lr: float = 0.05) -> ImageClassifier:
    """The model named ``model`` ('' = small-cnn) shaped for the data set, SGD starting at
    ``lr``. ``config`` must be resolved (``resolve``) or name its ``dataset`` (and, for image
    folders, ``num_classes``)."""
    channels, size, classes = input_shape(config)
    return ImageClassifier(model=model or DEFAULT_MODEL, in_channels=channels,
                           num_classes=classes, lr=lr, image_size=size)


def _default_dir(dataset: str) -> str:
    return IMAGE_SETS[dataset].default_dir if dataset in IMAGE_SETS else ""


def _datamodule(config: ImageConfig, site: Site) -> pl.LightningDataModule:
    if config.dataset == FOLDERS:
        return FolderDataModule(site, image_size=config.image_size)
    return ImageDataModule(site, dataset=config.dataset)


def build_datamodule(config: ImageConfig, site: Site) -> pl.LightningDataModule:
    """A site's data: ``site.data_dir`` (or the data set's default location), read as the
    resolved ``config`` says, so the data fits the model the server sent. ``config`` must be
    resolved (``resolve``) or name its ``dataset``."""
    site = site.located(_default_dir(_dataset(config)))
    if not site.data_dir:
        raise ConfigError("the image data set has no default location: set data-dir in the "
                          "run config (simulation) or in the site's node config.")
    return _datamodule(config, site)


def build_central_datamodule(config: ImageConfig, site: Site) -> pl.LightningDataModule | None:
    """The whole test split of ``site.data_dir`` (or the default location), or ``None`` when
    there is no test data there. ``config`` must be resolved (``resolve``) or name its
    ``dataset``."""
    site = site.pooled().located(_default_dir(_dataset(config)))
    if not site.data_dir:
        return None
    if config.dataset == FOLDERS:
        has_test = (Path(site.data_dir) / "val").is_dir()
    else:
        has_test = IMAGE_SETS[config.dataset].has_split(site.data_dir, "test")
    return _datamodule(config, site) if has_test else None


# lr-max="default" per model (SGD, Nesterov momentum 0.9): measured on Fashion-MNIST where a
# number is given (docs/results.md); "auto" (the federated LR range test) for the paper's deep
# models, whose LR was not measured here.
DEFAULT_LR: dict[str, float | str] = {"small-cnn": 0.05, "tiny-cnn": 0.05, "vgg-19-bn": 0.01}


def default_lr(config: ImageConfig, model: str) -> float | str:
    """The top of the LR cycle for ``lr-max='default'``: ``DEFAULT_LR``, else ``'auto'``."""
    return DEFAULT_LR.get(model or DEFAULT_MODEL, "auto")


register_task(
    Task(
        name="image",
        config=ImageConfig,
        build_module=build_module,
        build_datamodule=build_datamodule,
        build_central_datamodule=build_central_datamodule,
        metrics=("accuracy", "top5-accuracy"),  # top-5 with more than 5 classes
        models=list_models,
        resolve=resolve,
        default_lr=default_lr,
    )
)
