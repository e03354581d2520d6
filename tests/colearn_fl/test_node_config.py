"""Which site a ClientApp is (``site_of``) and its share of one Dataset (``shard``), in a
simulation and at a deployed SuperNode."""

from __future__ import annotations

import pytest
import torch
from flwr.app import Context, RecordDict
from torch.utils.data import TensorDataset

import colearn_fl
from colearn_fl.errors import ConfigError

LABELS = [i % 5 for i in range(100)]  # 100 samples, 5 classes


def simulated(index: int, count: int = 4, **run_config) -> Context:
    return Context(run_id=1, node_id=10 + index, state=RecordDict(), run_config=run_config,
                   node_config={"partition-id": index, "num-partitions": count})


def deployed(data_dir: str = "/site-a", **run_config) -> Context:
    return Context(run_id=1, node_id=99, state=RecordDict(), run_config=run_config,
                   node_config={"data-dir": data_dir})


def dataset() -> TensorDataset:
    """Sample i is the number i; its label is i % 5 (``tensors[1]``)."""
    return TensorDataset(torch.arange(100), torch.tensor(LABELS))


def ids(part) -> list[int]:
    return [int(part[i][0]) for i in range(len(part))]


def test_site_of_a_simulated_and_a_deployed_site() -> None:
    sim = colearn_fl.site_of(simulated(1, **{"data-dir": "/shared"}))
    real = colearn_fl.site_of(deployed("/site-a"))
    assert (sim.index, sim.count, sim.data_dir, sim.simulated) == (1, 4, "/shared", True)
    assert (real.index, real.count, real.data_dir, real.simulated) == (None, None, "/site-a",
                                                                       False)


@pytest.mark.parametrize("partitioning", ["iid", "dirichlet"])
def test_shards_are_disjoint_cover_the_data_and_repeat_under_a_seed(partitioning: str) -> None:
    # Execute: every simulated site computes its own share, twice
    parts = [ids(colearn_fl.shard(dataset(), simulated(i), partitioning=partitioning,
                                  labels=LABELS, seed=3)) for i in range(4)]
    again = [ids(colearn_fl.shard(dataset(), simulated(i), partitioning=partitioning,
                                  labels=LABELS, seed=3)) for i in range(4)]
    # Assert
    assert parts == again
    assert sorted(i for part in parts for i in part) == list(range(100))
    assert all(part for part in parts)


def test_shard_defaults_come_from_the_run_config() -> None:
    # Prepare: the run's partitioning, alpha and seed, as flwr run would pass them
    run = {"partitioning": "dirichlet", "dirichlet-alpha": 0.1, "seed": 5}
    # Execute: labels read from the (input, label) items
    by_config = [ids(colearn_fl.shard(dataset(), simulated(i, **run))) for i in range(4)]
    explicit = [ids(colearn_fl.shard(dataset(), simulated(i), partitioning="dirichlet",
                                     alpha=0.1, seed=5, labels=LABELS)) for i in range(4)]
    # Assert
    assert by_config == explicit


def test_a_deployed_site_keeps_all_of_its_own_data() -> None:
    data = dataset()
    assert colearn_fl.shard(data, deployed()) is data


def test_dirichlet_without_labels_says_how_to_give_them() -> None:
    unlabeled = [0.5] * 10  # samples without a label
    with pytest.raises(ConfigError, match="needs each sample's class: give labels="):
        colearn_fl.shard(unlabeled, simulated(0, 2), partitioning="dirichlet")
