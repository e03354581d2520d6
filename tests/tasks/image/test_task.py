"""Tests of the image task: model registry, data module, Lightning module and factories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from tasks import get_task
from tasks.errors import ConfigError
from tasks.image import (
    ImageClassifier,
    ImageConfig,
    ImageDataModule,
    build_central_datamodule,
    build_datamodule,
    build_module,
    resolve,
)
from tasks.image.fashion_mnist import DEFAULT_DATA_DIR, write_idx
from tasks.image.models import get_model, list_models
from tasks.shared import Site

NUM_TRAIN, NUM_TEST = 200, 40


def _write_data(directory: Path, with_test: bool = True) -> Path:
    """Tiny Fashion-MNIST look-alike: label c has all pixels equal to 20 * c."""
    rng = np.random.default_rng(0)
    splits = [("train", NUM_TRAIN)] + ([("t10k", NUM_TEST)] if with_test else [])
    for prefix, count in splits:
        labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        images = np.repeat(labels * 20, 28 * 28).reshape(count, 28, 28).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def _trainer() -> pl.Trainer:
    return pl.Trainer(max_epochs=1, limit_train_batches=2, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu")


@pytest.mark.parametrize("name", list_models())
def test_every_model_maps_images_to_logits(name: str) -> None:
    # Prepare
    model = get_model(name, in_channels=1, num_classes=10).eval()

    # Execute: 28x28 and another size (adaptive pooling).
    logits = model(torch.zeros(3, 1, 28, 28))
    other = model(torch.zeros(2, 1, 32, 32))

    # Assert
    assert logits.shape == (3, 10) and other.shape == (2, 10)


def test_unknown_model_lists_the_valid_names() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"model='resnet-9000'.*small-cnn"):
        get_model("resnet-9000", 1, 10)


def test_small_cnn_is_the_default_model() -> None:
    # Execute
    module = build_module(resolve(ImageConfig(), ""), model="", lr=0.1)

    # Assert
    assert module.hparams.model == "small-cnn"
    assert module.hparams.lr == 0.1
    assert "small-cnn" in get_task("image").models()


def test_partitions_split_the_capped_train_set(tmp_path: Path) -> None:
    # Prepare
    data_dir = str(_write_data(tmp_path))
    modules = [ImageDataModule(Site(data_dir, partition=(i, 4), batch_size=16, max_samples=100))
               for i in range(4)]

    # Execute
    for module in modules:
        module.setup("fit")

    # Assert: 100 of 200 train samples over 4 sites -> 25 each; val shards of 40 test -> 10.
    assert [len(m.train_set) for m in modules] == [25, 25, 25, 25]
    assert [len(m.val_set) for m in modules] == [10, 10, 10, 10]
    assert all(len(m.test_set) == NUM_TEST for m in modules)


def test_validation_is_this_sites_shard_of_the_test_split(tmp_path: Path) -> None:
    # Prepare
    data_dir = str(_write_data(tmp_path))
    sites = [ImageDataModule(Site(data_dir, partition=(i, 2), batch_size=8)) for i in range(2)]

    # Execute
    for site in sites:
        site.setup("validate")

    # Assert: the two shards together are the whole (normalised) test split, disjointly.
    shard_images = torch.cat([site.val_set.tensors[0] for site in sites])
    full_images = sites[0].test_set.tensors[0]
    assert len(shard_images) == len(full_images) == NUM_TEST
    sort = torch.argsort(shard_images.flatten(1)[:, 0])
    expected = torch.sort(full_images.flatten(1)[:, 0]).values
    torch.testing.assert_close(shard_images.flatten(1)[sort, 0], expected)


def test_images_are_normalised_once_to_float(tmp_path: Path) -> None:
    # Prepare: label 0 images are all zeros -> (0 - 0.2860) / 0.3530 everywhere.
    module = ImageDataModule(Site(str(_write_data(tmp_path)), batch_size=4))

    # Execute
    module.setup("fit")
    images, labels = next(iter(module.val_dataloader()))

    # Assert
    assert images.dtype == torch.float32 and images.shape == (4, 1, 28, 28)
    zero = images[labels == 0]
    torch.testing.assert_close(zero, torch.full_like(zero, -0.2860 / 0.3530))


def test_site_without_test_files_holds_out_ten_percent(tmp_path: Path) -> None:
    # Prepare
    module = ImageDataModule(Site(str(_write_data(tmp_path, with_test=False)), batch_size=16))

    # Execute
    module.setup("fit")

    # Assert: 200 train samples -> 180 train, 20 validation.
    assert (len(module.train_set), len(module.val_set)) == (180, 20)


def test_shuffle_follows_torchs_global_seed(tmp_path: Path) -> None:
    # Prepare: the client seeds torch per (seed, round, site) before each round's fit
    data_dir = str(_write_data(tmp_path))
    module = ImageDataModule(Site(data_dir, batch_size=50, seed=3))
    module.setup("fit")

    def first_batch_labels(torch_seed: int) -> torch.Tensor:
        torch.manual_seed(torch_seed)
        return next(iter(module.train_dataloader()))[1]

    # Execute / Assert: same seed, same order; another seed (another round), another order
    assert torch.equal(first_batch_labels(1), first_batch_labels(1))
    assert not torch.equal(first_batch_labels(1), first_batch_labels(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"partition": (4, 4)}, "partition-id=4"),
        ({"partition": (0, 0)}, "num-partitions=0"),
        ({"partitioning": "shards"}, "partitioning='shards'"),
        ({"batch_size": 0}, "batch-size=0"),
    ],
)
def test_bad_site_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    # Execute / Assert: the site is checked before any data module exists
    with pytest.raises(ConfigError, match=match):
        ImageDataModule(Site("unused", **kwargs))


def test_tiny_trainer_fits_and_validates(tmp_path: Path) -> None:
    # Prepare
    torch.manual_seed(0)
    data = ImageDataModule(Site(str(_write_data(tmp_path)), partition=(0, 2), batch_size=16))
    model = ImageClassifier()
    trainer = _trainer()

    # Execute
    trainer.fit(model, datamodule=data)
    fitted = dict(trainer.callback_metrics)
    (validated,) = trainer.validate(model, datamodule=data, verbose=False)
    (tested,) = trainer.test(model, datamodule=data, verbose=False)

    # Assert
    expected = {"loss", "accuracy", "top5-accuracy"}  # 10 classes: top-5 too
    assert {"train-loss", "loss", "accuracy"} <= set(fitted)
    assert set(validated) == expected and set(tested) == expected
    assert validated["top5-accuracy"] >= validated["accuracy"]
    assert 0.0 <= validated["accuracy"] <= 1.0 and validated["loss"] > 0.0


def test_optimizer_is_nesterov_sgd_without_scheduler() -> None:
    # Execute
    optimizer = ImageClassifier(lr=0.2, momentum=0.8, weight_decay=0.0).configure_optimizers()

    # Assert
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.2, 0.8, True)


def test_build_datamodule_keeps_the_sites_sampling(tmp_path: Path) -> None:
    # Prepare
    data_dir = str(_write_data(tmp_path))
    site = Site(data_dir, partition=(1, 2), batch_size=32, partitioning="dirichlet",
                dirichlet_alpha=1.0, seed=5)

    # Execute
    data = build_datamodule(resolve(ImageConfig(), data_dir), site)

    # Assert
    assert isinstance(data, ImageDataModule) and data.site == site
    assert data.partition == (1, 2)
    assert (data.partitioning, data.dirichlet_alpha, data.seed) == ("dirichlet", 1.0, 5)
    assert data.batch_size == 32 and data.data_dir == data_dir


def test_a_site_reads_its_own_files_as_the_run_data_dir_says(tmp_path: Path) -> None:
    # Prepare: the run's data-dir is the server's path, absent here: Fashion-MNIST by default
    own = str(_write_data(tmp_path / "site"))
    config = resolve(ImageConfig(), "/elsewhere/on/the/server")

    # Execute
    data = build_datamodule(config, Site(own))
    data.setup("fit")

    # Assert: a deployment site uses all of its own files, read as Fashion-MNIST.
    assert config.dataset == "fashion-mnist"
    assert data.data_dir == own and data.partition is None
    assert len(data.train_set) == NUM_TRAIN


def test_a_site_without_a_directory_reads_the_default_location() -> None:
    # Prepare
    fashion = resolve(ImageConfig(), "")
    cifar = ImageConfig(dataset="cifar10")

    # Execute
    data = build_datamodule(fashion, Site(partition=(0, 2)))

    # Assert: Fashion-MNIST has a default location, CIFAR-10 none
    assert data.data_dir == DEFAULT_DATA_DIR and data.partition == (0, 2)
    with pytest.raises(ConfigError, match="the image data set has no default location"):
        build_datamodule(cifar, Site())


def test_an_unresolved_config_says_to_resolve_it() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"dataset='' is not resolved.*resolve\(config"):
        build_module(ImageConfig())
    with pytest.raises(ConfigError, match="dataset='' is not resolved"):
        build_datamodule(ImageConfig(), Site("unused"))


def test_central_datamodule_is_the_whole_test_split_or_none(tmp_path: Path) -> None:
    # Prepare
    with_test = str(_write_data(tmp_path / "full"))
    without_test = str(_write_data(tmp_path / "train-only", with_test=False))

    # Execute
    central = build_central_datamodule(resolve(ImageConfig(), with_test), Site(with_test))
    absent = build_central_datamodule(resolve(ImageConfig(), without_test), Site(without_test))
    nowhere = build_central_datamodule(ImageConfig(dataset="cifar10"), Site())
    central.setup("test")

    # Assert
    assert absent is None and nowhere is None
    assert central.partition is None and len(central.test_set) == NUM_TEST
    assert central.train_set is None  # the server does not load the training split
