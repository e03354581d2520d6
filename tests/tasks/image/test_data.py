"""CIFAR-10 batches and ImageNet-style folders: readers, augmentation, detection, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.errors import ConfigError, DataError
from tasks.image import (
    DATASETS,
    FOLDERS,
    ImageConfig,
    build_central_datamodule,
    build_module,
    resolve,
    resolve_dataset,
)
from tasks.image.cifar10 import load_cifar10, write_cifar10_batch
from tasks.image.data import IMAGE_SETS, AugmentedImages, ImageDataModule
from tasks.image.folder import FolderDataModule, count_classes
from tasks.shared import Site

CLASSES = ("cat", "dog", "ship")


def write_cifar(root: Path, per_batch: int = 20, batches: int = 2, test: int = 20) -> Path:
    """A tiny ``cifar-10-batches-py``: class c is an image of constant value 20 * c."""
    folder = root / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    names = [(f"data_batch_{i + 1}", per_batch) for i in range(batches)] + [("test_batch", test)]
    for name, count in names:
        labels = rng.permutation(np.arange(count) % 10)
        images = np.repeat(labels * 20, 3 * 32 * 32).reshape(count, 3, 32, 32)
        write_cifar10_batch(folder / name, images.astype(np.uint8), labels)
    return root


def write_folders(root: Path, per_class: int = 4, with_val: bool = True) -> Path:
    """``train/<class>/*.png`` (and ``val/``): class i is a solid colour, 40x30 pixels."""
    colours = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    for split in ("train", "val") if with_val else ("train",):
        for name, colour in zip(CLASSES, colours, strict=True):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 30), colour).save(root / split / name / f"{i}.png")
    return root


def test_cifar_batches_decode_channel_planes_in_order(tmp_path: Path) -> None:
    # Prepare: one image whose red plane is 1, green 2, blue 3 (the file's plane order)
    image = np.stack([np.full((32, 32), v, np.uint8) for v in (1, 2, 3)])[None]
    write_cifar10_batch(tmp_path / "data_batch_1", image, np.array([4]))

    # Execute
    images, labels = load_cifar10(tmp_path, "train")

    # Assert
    assert images.shape == (1, 3, 32, 32) and images.dtype == torch.uint8
    assert images[0, :, 5, 7].tolist() == [1, 2, 3] and labels.tolist() == [4]


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"expected uint8 \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "ints in 0..9"),
        ({b"pixels": 1}, "expected a dict with b'data' and b'labels'"),
    ],
)
def test_malformed_cifar_batch_names_the_file(tmp_path: Path, batch: dict, match: str) -> None:
    # Prepare
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch))

    # Execute / Assert
    with pytest.raises(DataError, match=f"{path}.*{match}"):
        load_cifar10(tmp_path, "train")


def test_missing_cifar_gives_download_instructions(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no test batches.*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path, "test")


def test_cifar_site_trains_on_augmented_images_and_validates_on_plain_ones(
        tmp_path: Path) -> None:
    # Prepare
    data = ImageDataModule(Site(str(write_cifar(tmp_path)), partition=(1, 2), batch_size=4),
                           dataset="cifar10")

    # Execute
    data.setup("fit")
    torch.manual_seed(0)
    images, labels = next(iter(data.train_dataloader()))

    # Assert: 40 training images split in two; validation = half of the 20 test images
    assert len(data.train_set) == 20 and len(data.val_set) == 10
    assert isinstance(data.train_set, AugmentedImages)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert data.val_set.tensors[0].shape == (10, 3, 32, 32)


def test_augmentation_is_a_shifted_crop_of_the_zero_padded_image() -> None:
    # Prepare: a single-channel ramp image so every shift is recognisable
    ramp = (torch.arange(32 * 32).view(1, 1, 32, 32) % 251).to(torch.uint8)
    mean, std = torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.25)
    data = AugmentedImages(ramp, torch.tensor([0]), mean, std)
    # The border is black (0) before normalising, as torchvision's RandomCrop(padding=4).
    padded = (torch.nn.functional.pad(ramp[0].float(), (4, 4, 4, 4)) / 255.0 - 0.5) / 0.25
    crops = [padded[:, t:t + 32, s:s + 32] for t in range(9) for s in range(9)]
    candidates = crops + [c.flip(-1) for c in crops]

    # Execute
    torch.manual_seed(3)
    drawn = [data[0][0] for _ in range(20)]

    # Assert: each draw is one of the 162 shifted (and possibly flipped) crops, not all equal
    assert all(any(torch.equal(d, c) for c in candidates) for d in drawn)
    assert len({tuple(d.flatten()[:50].tolist()) for d in drawn}) > 1


def test_dataset_is_detected_from_data_dir(tmp_path: Path) -> None:
    # Prepare
    cifar = write_cifar(tmp_path / "c")
    folders = write_folders(tmp_path / "f")
    (tmp_path / "nothing").mkdir()
    config = ImageConfig()

    # Execute / Assert
    assert resolve_dataset(config, str(cifar)) == "cifar10"
    assert resolve_dataset(config, str(cifar / "cifar-10-batches-py")) == "cifar10"
    assert resolve_dataset(config, str(folders)) == "imagefolder"
    assert resolve_dataset(config, "") == "fashion-mnist"
    assert resolve_dataset(config, str(tmp_path / "only-on-the-server")) == "fashion-mnist"
    assert resolve_dataset(ImageConfig(dataset="cifar10"), "") == "cifar10"
    with pytest.raises(ConfigError, match="holds no image data set.*set dataset="):
        resolve_dataset(config, str(tmp_path / "nothing"))


def test_resolve_fills_in_the_data_set_and_the_class_count(tmp_path: Path) -> None:
    # Prepare
    cifar = str(write_cifar(tmp_path / "c"))
    folders = str(write_folders(tmp_path / "f"))

    # Execute
    from_cifar = resolve(ImageConfig(), cifar)
    from_folders = resolve(ImageConfig(image_size=48), folders)
    declared = resolve(ImageConfig(dataset="imagefolder", num_classes=1000), folders)
    absent = resolve(ImageConfig(dataset="imagefolder"), str(tmp_path / "only-on-the-server"))

    # Assert
    assert (from_cifar.dataset, from_cifar.num_classes) == ("cifar10", 0)
    assert from_folders == ImageConfig(dataset=FOLDERS, image_size=48, num_classes=3)
    assert declared.num_classes == 1000  # a declared count wins over the folders
    assert (absent.dataset, absent.num_classes) == (FOLDERS, 0)


def test_module_takes_the_data_sets_shape(tmp_path: Path) -> None:
    # Execute
    cifar = build_module(resolve(ImageConfig(), str(write_cifar(tmp_path / "c"))), "tiny-cnn")
    folders = build_module(resolve(ImageConfig(image_size=48),
                                   str(write_folders(tmp_path / "f"))))
    declared = build_module(resolve(ImageConfig(dataset="imagefolder", num_classes=1000), ""))

    # Assert
    assert (cifar.hparams.in_channels, cifar.hparams.num_classes) == (3, 10)
    assert cifar.hparams.model == "tiny-cnn"
    assert (folders.hparams.num_classes, folders.hparams.image_size) == (3, 48)
    assert declared.hparams.num_classes == 1000
    with pytest.raises(ConfigError, match="set num-classes"):
        build_module(resolve(ImageConfig(dataset="imagefolder"), ""))


def test_the_config_knows_every_data_set() -> None:
    # Assert: the config's list is the in-memory sets plus the folders
    assert DATASETS == (*IMAGE_SETS, FOLDERS)
    with pytest.raises(ConfigError, match="dataset='mnist' is not known.*cifar10"):
        ImageConfig(dataset="mnist").validate()


def test_folder_site_reads_crops_of_the_requested_size(tmp_path: Path) -> None:
    # Prepare
    root = write_folders(tmp_path)
    data = FolderDataModule(Site(str(root), batch_size=6), image_size=24)

    # Execute
    data.setup("fit")
    images, labels = next(iter(data.train_dataloader()))
    val_images, val_labels = next(iter(data.val_dataloader()))

    # Assert: red images of class 0 are red after normalisation too (R high, G and B low)
    assert count_classes(root) == 3 and len(data.train_set) == 12 and len(data.val_set) == 12
    assert images.shape == (6, 3, 24, 24) and val_images.shape == (6, 3, 24, 24)
    red = val_images[val_labels == 0]
    assert (red[:, 0] > 2).all() and (red[:, 1] < -1).all() and (red[:, 2] < -1).all()


def test_folder_site_without_val_holds_out_ten_percent(tmp_path: Path) -> None:
    # Prepare: 3 classes x 10 images, no val/
    data = FolderDataModule(Site(str(write_folders(tmp_path, per_class=10, with_val=False)),
                                 batch_size=4), image_size=16)

    # Execute
    data.setup("fit")

    # Assert: 3 of 30 held out, disjoint from training
    held = set(data.val_set.dataset.indices)
    assert len(held) == 3 and len(data.train_set) == 27
    assert held.isdisjoint(data.train_set.indices)


def test_folder_errors_name_the_layout(tmp_path: Path) -> None:
    # Prepare: val/ with a class train/ lacks
    root = write_folders(tmp_path / "ok")
    (root / "val" / "zebra").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "zebra" / "0.png")
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)

    # Execute / Assert
    with pytest.raises(DataError, match=r"only in val/: \['zebra'\]"):
        FolderDataModule(Site(str(root), batch_size=2), image_size=16).setup("fit")
    with pytest.raises(DataError, match="does not exist; expected <data-dir>/train/<class>"):
        FolderDataModule(Site(str(tmp_path / "missing"), batch_size=2)).setup("fit")
    with pytest.raises(DataError, match="holds no images in class folders"):
        FolderDataModule(Site(str(tmp_path / "empty"), batch_size=2)).setup("fit")


def test_server_evaluates_on_all_of_val(tmp_path: Path) -> None:
    # Prepare
    root = write_folders(tmp_path, per_class=2)

    # Execute
    config = resolve(ImageConfig(image_size=16), str(root))
    central = build_central_datamodule(config, Site(str(root)))
    central.setup("test")
    images, _ = next(iter(central.test_dataloader()))

    # Assert
    assert len(central.test_set) == 6 and images.shape[-1] == 16
    assert central.train_set is None  # the server does not index the training images


def test_held_out_folder_images_are_not_augmented(tmp_path: Path) -> None:
    # Prepare: no val/, so validation is a hold-out of train/
    data = FolderDataModule(Site(str(write_folders(tmp_path, per_class=10, with_val=False)),
                                 batch_size=4), image_size=16)

    # Execute
    data.setup("fit")

    # Assert: training draws augmented crops, the hold-out the deterministic eval transform
    held = data.val_set.dataset.dataset
    assert held.transform is not data.train_set.dataset.transform
    assert torch.equal(data.val_set[0][0], data.val_set[0][0])
    assert held.samples is data.train_set.dataset.samples  # one scan of train/


def test_an_evaluate_round_reads_only_the_test_split(tmp_path: Path) -> None:
    # Prepare
    data = ImageDataModule(Site(str(write_cifar(tmp_path)), partition=(0, 2), batch_size=4),
                           dataset="cifar10")

    # Execute: what a site's evaluate round asks for
    data.setup("validate")

    # Assert: its half of the 20 test images, and no training split loaded
    assert len(data.val_set) == 10 and data.train_set is None
