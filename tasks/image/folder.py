"""ImageNet-style class folders (torchvision ``ImageFolder``) for one site.

Layout: ``<data-dir>/train/<class>/<image>`` and ``<data-dir>/val/<class>/<image>``, one folder
per class with the same class folders in both (ImageNet's validation images as distributed
lie in one flat folder: sort them into class folders first, e.g. with the widely used
``valprep.sh``). Any image format PIL reads works; grey or RGBA images are converted to RGB.

Training images get the usual ImageNet augmentation (random-resized crop to ``image-size``,
horizontal flip); evaluation images are resized to ``image-size * 256 / 224`` and centre
cropped. Both are normalised with ImageNet's channel statistics. A site without ``val/``
validates on a seeded 10% hold-out of ``train/`` (seen with the evaluation transform).
Images are read from disk as they are drawn: use ``num-workers`` to decode in parallel.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from torch.utils.data import Subset
from torchvision import datasets, transforms

from tasks.errors import DataError
from tasks.shared import (
    HOLD_OUT_FRACTION,
    Site,
    SiteDataModule,
    cap_indices,
    hold_out_indices,
    partition_rows,
    validation_rows,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = ("<data-dir>/train/<class>/<image> and <data-dir>/val/<class>/<image> (val/ "
          "optional at a site; the server needs it), one folder per class")


def count_classes(data_dir: str | Path) -> int:
    """Number of class folders in ``data_dir/train`` (0 when there is no such folder)."""
    train = Path(data_dir) / "train"
    return sum(1 for p in train.iterdir() if p.is_dir()) if train.is_dir() else 0


def train_transform(image_size: int) -> transforms.Compose:
    """Random-resized crop + horizontal flip + ImageNet normalisation."""
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def eval_transform(image_size: int) -> transforms.Compose:
    """Resize to ``image_size * 256 / 224``, centre crop, ImageNet normalisation."""
    return transforms.Compose([
        transforms.Resize(round(image_size * 256 / 224)), transforms.CenterCrop(image_size),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def open_folder(root: Path, transform: transforms.Compose) -> datasets.ImageFolder:
    """``ImageFolder(root)``, or one ``DataError`` naming the expected layout."""
    if not root.is_dir():
        raise DataError(f"image folders: {root} does not exist; expected {LAYOUT}.")
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"image folders: {root} holds no images in class folders ({error}); "
                        f"expected {LAYOUT}.") from error


class FolderDataModule(SiteDataModule):
    """One site's ImageNet-style folders (a simulation partition or its own folders).

    Parameters
    ----------
    site : Site
        Where ``train/`` and (optionally at a site) ``val/`` are, and how this site samples
        them (``data_dir`` set).
    image_size : int
        Side of the square crops the model sees (default: 224).
    """

    def __init__(self, site: Site, image_size: int = 224) -> None:
        super().__init__(site)
        self.root = Path(site.data_dir)
        self.image_size = image_size

    def setup(self, stage: str) -> None:
        """Index the folders once (no image is decoded here)."""
        if stage in ("fit", "validate") and self.train_set is None:
            self._setup_fit()
        elif stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._capped(open_folder(self.root / "val",
                                                     eval_transform(self.image_size)))

    def _setup_fit(self) -> None:
        train = open_folder(self.root / "train", train_transform(self.image_size))
        rows = cap_indices(len(train), self.max_samples, self.seed)
        if (self.root / "val").is_dir():
            test = self._capped(open_folder(self.root / "val", eval_transform(self.image_size)))
            _check_same_classes(train, test.dataset)  # type: ignore[attr-defined]
        else:
            rest, held = hold_out_indices(len(rows), HOLD_OUT_FRACTION, self.seed)
            as_eval = copy.copy(train)  # the same file index, seen without augmentation
            as_eval.transform = eval_transform(self.image_size)
            test = Subset(as_eval, rows[held].tolist())
            rows = rows[rest]
        labels = np.asarray(train.targets)[rows]
        mine = partition_rows(labels, self.site)
        self.train_set = Subset(train, rows[mine].tolist())
        self.test_set = self.test_set or test
        shard = validation_rows(len(test), self.site)
        self.val_set = Subset(test, shard.tolist())

    def _capped(self, folder: datasets.ImageFolder) -> Subset:
        return Subset(folder, cap_indices(len(folder), self.max_samples, self.seed).tolist())


def _check_same_classes(train: datasets.ImageFolder, val: datasets.ImageFolder) -> None:
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise DataError(f"image folders: train/ and val/ must hold the same class folders "
                        f"(only in train/: {only_train}; only in val/: {only_val}).")
