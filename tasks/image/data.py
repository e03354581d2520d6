"""In-memory image data sets (Fashion-MNIST, CIFAR-10) for one site, as a LightningDataModule.

Data per site:

- simulation (``site.partition`` set): every site reads the full data set from the run config's
  ``data-dir`` and keeps its partition of the training split (``partitioning``: ``iid`` or
  ``dirichlet``); it validates on its IID shard of the test split.
- deployment (no partition: the site's own ``data-dir``): the site uses all of its own files.
  A site whose directory has no test files validates on a seeded 10% hold-out of its training
  files, which is then removed from its training data.
- the server (``build_central_datamodule``) evaluates on the whole test split.

Fashion-MNIST is normalised once into float tensors (no augmentation). CIFAR-10 stays uint8 in
memory and each training image gets the usual augmentation when it is drawn: a random 32x32
crop of the image padded with 4 black pixels, and a horizontal flip with probability 1/2
(torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from tasks.image import cifar10, fashion_mnist
from tasks.shared import Site, SiteDataModule, capped_splits, partition_rows, validation_rows

Images = tuple[torch.Tensor, torch.Tensor]  # uint8 [N, C, H, W], int64 [N]


@dataclass(frozen=True)
class ImageSet:
    """An image data set that fits in memory: its shape, statistics and reader."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # random crop (4-pixel padding) + horizontal flip when training
    default_dir: str
    load: Callable[[str, str], Images]
    has_split: Callable[[str, str], bool]


def _load_fashion_mnist(data_dir: str, split: str) -> Images:
    images, labels = fashion_mnist.load_fashion_mnist(data_dir, split)  # type: ignore[arg-type]
    return images.unsqueeze(1), labels


IMAGE_SETS: dict[str, ImageSet] = {
    "fashion-mnist": ImageSet(
        "fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,), False,
        fashion_mnist.DEFAULT_DATA_DIR, _load_fashion_mnist,
        fashion_mnist.split_available),  # type: ignore[arg-type]
    "cifar10": ImageSet(
        "cifar10", 3, 32, 10, cifar10.MEAN, cifar10.STD, True, "",
        cifar10.load_cifar10,  # type: ignore[arg-type]
        lambda data_dir, split: bool(cifar10.split_files(data_dir, split))),  # type: ignore
}


class AugmentedImages(Dataset):
    """uint8 images, padded-random-cropped, flipped and normalised as each one is drawn.

    Draws from torch's global RNG (seeded per round and site by the client).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor, padding: int = 4) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std, self.padding = mean, std, padding

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pad = self.padding
        height, width = self.images.shape[-2:]
        padded = F.pad(self.images[index], (pad, pad, pad, pad))  # black border, as torchvision
        top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
        image = padded[:, top:top + height, left:left + width]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.float().div_(255.0).sub_(self.mean).div_(self.std), self.labels[index]


class ImageDataModule(SiteDataModule):
    """One site's in-memory image data (a simulation partition or its own files).

    Parameters
    ----------
    site : Site
        Where the data set's files are and how this site samples them (``data_dir`` set).
    dataset : str
        Key of ``IMAGE_SETS`` (default: ``'fashion-mnist'``).
    """

    def __init__(self, site: Site, dataset: str = "fashion-mnist") -> None:
        super().__init__(site)
        self.images = IMAGE_SETS[dataset]
        self.train_set: Dataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        """Load, cap, split and normalise once; later calls reuse the tensors.

        Only ``fit`` loads and partitions the training split; ``validate`` (a site's evaluate
        round) and ``test`` (the server) read the test split alone when there are test files.
        """
        need_train = stage == "fit" and self.train_set is None
        if need_train or self.test_set is None:
            train, test = self._raw_splits(need_train)
            if self.test_set is None:
                self.test_set = self._normalise(test)
            if need_train:
                assert train is not None  # _raw_splits(need_train=True) always loads it
                rows = partition_rows(train[1].numpy(), self.site)
                self.train_set = self._training(_take(train, rows))
        if stage in ("fit", "validate") and self.val_set is None:
            index = torch.from_numpy(validation_rows(len(self.test_set), self.site))
            self.val_set = TensorDataset(*(t[index] for t in self.test_set.tensors))

    def _raw_splits(self, need_train: bool) -> tuple[Images | None, Images]:
        """(train, test) after the ``max-samples`` cap; test = hold-out if no test files."""
        return capped_splits(self.site, self.images.has_split(self.data_dir, "test"), need_train,
                             read=lambda split: self.images.load(self.data_dir, split),
                             take=_take, size=lambda data: len(data[1]))

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, 1, 1)
        return (torch.tensor(self.images.mean).view(shape),
                torch.tensor(self.images.std).view(shape))

    def _normalise(self, data: Images) -> TensorDataset:
        """uint8 ``[N, C, H, W]`` -> float standardised per channel, once for the split."""
        mean, std = self._stats()
        return TensorDataset((data[0].float() / 255.0 - mean) / std, data[1])

    def _training(self, data: Images) -> Dataset:
        if not self.images.augment:
            return self._normalise(data)
        return AugmentedImages(data[0], data[1], *self._stats())


def _take(data: Images, index: np.ndarray) -> Images:
    rows = torch.from_numpy(np.asarray(index, dtype=np.int64))
    return data[0][rows], data[1][rows]
