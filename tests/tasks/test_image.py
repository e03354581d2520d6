"""Tests of the image task: model registry, data module, Lightning module and factories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from flwr.app import Context, RecordDict

from colearn_fl.errors import ConfigError
from tasks import get_task
from tasks.fashion_mnist import write_idx
from tasks.image import (
    ImageClassifier,
    ImageDataModule,
    central_datamodule_fn,
    datamodule_fn,
    module_fn,
)
from tasks.image_models import get_model, list_models

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


def _context(run_config: dict, node_config: dict) -> Context:
    return Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(),
                   run_config=run_config)


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
    module = module_fn({"model": "", "lr-max": 0.1})

    # Assert
    assert module.hparams.model == "small-cnn"
    assert module.hparams.lr == 0.1
    assert "small-cnn" in get_task("image").models()


def test_partitions_split_the_capped_train_set(tmp_path: Path) -> None:
    # Prepare
    data_dir = str(_write_data(tmp_path))
    modules = [ImageDataModule(data_dir, batch_size=16, partition_id=i, num_partitions=4,
                               max_samples=100) for i in range(4)]

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
    sites = [ImageDataModule(data_dir, batch_size=8, partition_id=i, num_partitions=2)
             for i in range(2)]

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
    module = ImageDataModule(str(_write_data(tmp_path)), batch_size=4)

    # Execute
    module.setup("fit")
    images, labels = next(iter(module.val_dataloader()))

    # Assert
    assert images.dtype == torch.float32 and images.shape == (4, 1, 28, 28)
    zero = images[labels == 0]
    torch.testing.assert_close(zero, torch.full_like(zero, -0.2860 / 0.3530))


def test_site_without_test_files_holds_out_ten_percent(tmp_path: Path) -> None:
    # Prepare
    module = ImageDataModule(str(_write_data(tmp_path, with_test=False)), batch_size=16)

    # Execute
    module.setup("fit")

    # Assert: 200 train samples -> 180 train, 20 validation.
    assert (len(module.train_set), len(module.val_set)) == (180, 20)


def test_shuffle_follows_torchs_global_seed(tmp_path: Path) -> None:
    # Prepare: the client seeds torch per (seed, round, site) before each round's fit
    data_dir = str(_write_data(tmp_path))
    module = ImageDataModule(data_dir, batch_size=50, seed=3)
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
        ({"partition_id": 0}, "partition-id=0 was given without num-partitions"),
        ({"partition_id": 4, "num_partitions": 4}, "partition-id=4 is out of range"),
        ({"num_partitions": 0}, "num-partitions=0"),
        ({"partitioning": "shards"}, "partitioning='shards'"),
        ({"batch_size": 0}, "batch-size=0"),
    ],
)
def test_bad_data_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    # Prepare
    arguments = {"data_dir": "unused", "batch_size": 8} | kwargs

    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        ImageDataModule(**arguments)


def test_tiny_trainer_fits_and_validates(tmp_path: Path) -> None:
    # Prepare
    torch.manual_seed(0)
    data = ImageDataModule(str(_write_data(tmp_path)), batch_size=16, partition_id=0,
                           num_partitions=2)
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


def test_datamodule_fn_simulation_partition(tmp_path: Path) -> None:
    # Prepare
    run_config = {"data-dir": str(_write_data(tmp_path)), "batch-size": 32,
                  "partitioning": "dirichlet", "dirichlet-alpha": 1.0, "seed": 5}
    context = _context(run_config, {"partition-id": 1, "num-partitions": 2})

    # Execute
    data = datamodule_fn(context)

    # Assert
    assert data.partition == (1, 2)
    assert (data.partitioning, data.dirichlet_alpha, data.seed) == ("dirichlet", 1.0, 5)
    assert data.batch_size == 32 and data.data_dir == str(tmp_path)


def test_datamodule_fn_node_data_dir_wins(tmp_path: Path) -> None:
    # Prepare
    own = str(_write_data(tmp_path / "site"))
    # The run config's data-dir is the server's path, absent here: Fashion-MNIST by default.
    context = _context({"data-dir": "/elsewhere/on/the/server"},
                       {"data-dir": own, "partition-id": 0, "num-partitions": 2})

    # Execute
    data = datamodule_fn(context)

    # Assert: a deployment site uses all of its own files.
    assert data.data_dir == own and data.partition is None


def test_datamodule_fn_rejects_a_non_integer_partition_id() -> None:
    # Prepare
    context = _context({}, {"partition-id": "one", "num-partitions": 2})

    # Execute / Assert
    with pytest.raises(ConfigError, match="partition-id='one'"):
        datamodule_fn(context)


def test_central_datamodule_is_the_whole_test_split_or_none(tmp_path: Path) -> None:
    # Prepare
    with_test = str(_write_data(tmp_path / "full"))
    without_test = str(_write_data(tmp_path / "train-only", with_test=False))

    # Execute
    central = central_datamodule_fn({"data-dir": with_test})
    absent = central_datamodule_fn({"data-dir": without_test})
    central.setup("test")

    # Assert
    assert absent is None
    assert central.partition is None and len(central.test_set) == NUM_TEST
    assert central.train_set is None  # the server does not load the training split
