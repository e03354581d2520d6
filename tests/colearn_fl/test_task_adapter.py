"""The adapter: a Flower run config and Context become a task's plain arguments, once."""

from __future__ import annotations

import pytest
from flwr.app import Context, RecordDict

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.task_adapter import TaskAdapter, context_site, task_site
from tasks.shared import Site

RUN = {"data-dir": "/shared/fmnist", "batch-size": 16, "seed": 3, "max-samples": 100,
       "partitioning": "dirichlet", "dirichlet-alpha": 0.3, "num-workers": 1}


def _context(node_config: dict, run_config: dict | None = None) -> Context:
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(),
                   run_config=dict(RUN if run_config is None else run_config))


def _site(context: Context) -> Site:
    return context_site(context, RunConfig.from_dict(context.run_config))


def test_site_of_carries_every_data_setting_of_the_run_config() -> None:
    # Execute
    site = task_site(RunConfig.from_dict(RUN), "/x", (1, 4))

    # Assert
    assert site == Site(data_dir="/x", partition=(1, 4), batch_size=16, partitioning="dirichlet",
                        dirichlet_alpha=0.3, seed=3, max_samples=100, num_workers=1)


def test_a_simulated_site_reads_its_partition_of_the_run_data_dir() -> None:
    site = _site(_context({"partition-id": 1, "num-partitions": 2}))
    assert (site.data_dir, site.partition, site.seed) == ("/shared/fmnist", (1, 2), 3)


def test_a_deployed_site_reads_all_of_its_own_data_dir_even_with_partition_keys() -> None:
    site = _site(_context({"data-dir": "/site", "partition-id": 0, "num-partitions": 2}))
    assert (site.data_dir, site.partition, site.batch_size) == ("/site", None, 16)


def test_a_site_without_data_keys_reads_all_of_the_run_data_dir() -> None:
    assert _site(_context({})).partition is None


@pytest.mark.parametrize(
    ("node", "match"),
    [
        ({"partition-id": 0}, "partition-id=0 was given without num-partitions"),
        ({"partition-id": 2, "num-partitions": 2}, "partition-id=2 is out of range"),
        ({"partition-id": "a", "num-partitions": 2}, "node config partition-id='a': expected"),
        ({"num-partitions": 0}, "num-partitions=0: must be >= 1"),
    ],
)
def test_bad_node_config_names_the_key(node: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _site(_context(node))


def test_module_fn_builds_the_run_configs_model_at_lr_max() -> None:
    # Prepare
    adapter = TaskAdapter.named("image")

    # Execute: the parsed form and the Flower form (a raw run config) build the same model
    run = {"model": "tiny-cnn", "lr-max": 0.02, "data-dir": ""}
    module = adapter.module(RunConfig.from_dict(run))
    flower_form = adapter.module_fn(run)

    # Assert
    assert (module.hparams.model, module.hparams.lr) == ("tiny-cnn", 0.02)
    assert (flower_form.hparams.model, flower_form.hparams.lr) == ("tiny-cnn", 0.02)


def test_task_keys_are_parsed_checked_and_resolved_against_the_run_data_dir() -> None:
    # Prepare
    adapter = TaskAdapter.named("image")

    # Execute: an empty or absent run data-dir means Fashion-MNIST (the default data set)
    config = adapter.config(RunConfig.from_dict({"image-size": 48, "data-dir": "/no/such/dir"}))

    # Assert
    assert (config.image_size, config.dataset) == (48, "fashion-mnist")
    with pytest.raises(ConfigError, match="image-size=4: must be >= 8"):
        adapter.config(RunConfig.from_dict({"image-size": 4}))
    with pytest.raises(ConfigError, match="image-size='big': expected an integer"):
        adapter.config(RunConfig.from_dict({"image-size": "big"}))


def test_site_datamodule_is_a_simulated_sites_view_and_none_is_the_pooled_data() -> None:
    # Prepare
    adapter = TaskAdapter.named("image")
    run = RunConfig.from_dict({"data-dir": "/data/fmnist", "batch-size": 8})

    # Execute
    site, pooled = adapter.site_datamodule(run, (2, 4)), adapter.site_datamodule(run, None)

    # Assert
    assert (site.partition, pooled.partition) == ((2, 4), None)
    assert site.data_dir == pooled.data_dir == "/data/fmnist"
