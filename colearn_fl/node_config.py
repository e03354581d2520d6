"""Node-config keys (per SuperNode): which site this is, where its data is, its hardware.

A simulated site has ``partition-id`` / ``num-partitions`` (Flower's simulation sets them) and
reads its share of the run config's ``data-dir``; a deployed site has its own ``data-dir`` and
reads all of it (``node_partition``; for a user's own data: ``site_of`` and ``shard``).

Node config is per site (each SuperNode's ``--node-config``), run config per run: a data
center with 8 GPUs says ``devices=8`` on its own SuperNode, and the run stays the same for
every other site. With ``devices > 1`` the site's training rounds run Lightning's
distributed data parallel over them:

- the strategy is ``ddp_spawn``: Lightning's ``ddp`` relaunches the command that started the
  process, which inside a ClientApp is Flower's ``flwr-clientapp``, not a training script;
  ``ddp_spawn`` starts the workers from the ClientApp itself and hands rank 0's weights and
  metrics back to it;
- each step averages the gradients of ``devices`` batches of ``batch-size`` (a global batch
  of ``devices x batch-size``), every worker seeing its share of the data, so an epoch has
  ``1 / devices`` of the steps; the server's LR cycle spans the round's steps whatever they
  are, and the epochs are the server's;
- the reply is rank 0's state_dict (BatchNorm statistics: rank 0's, from its share), with
  the examples and loss summed over the workers.

Evaluation, the SWA statistics round and the LR range test run on one device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from colearn_fl.errors import ConfigError
from tasks.partition import check_num_partitions, check_partition_id

# Node-config keys (per SuperNode's --node-config; simulation sets the partition keys).
DATA_DIR = "data-dir"  # a deployed site's own data
PARTITION_ID = "partition-id"  # a simulated site's share of the run config's data-dir
NUM_PARTITIONS = "num-partitions"
SITE_NAME = "site-name"  # how a site is named in the server's log (default: see site_name)
ACCELERATOR, DEVICES, STRATEGY = "accelerator", "devices", "strategy"  # a site's hardware
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp_spawn")  # "auto" = ddp_spawn with devices > 1


def site_name(context: Any) -> str:
    """How this site is named in the server's log and its error messages: its node-config
    ``site-name``, else ``site-<partition-id>`` in a simulation (as its results folder is
    named), else its node-config ``data-dir``, else ``node-<Flower's node id>``."""
    node = context.node_config
    if node.get(SITE_NAME):
        return str(node[SITE_NAME])
    if node.get(DATA_DIR):
        return str(node[DATA_DIR])
    if PARTITION_ID in node:
        return f"site-{node[PARTITION_ID]}"
    return f"node-{context.node_id}"


def node_partition(node: Mapping[str, Any]) -> tuple[str, tuple[int, int] | None]:
    """A node config's own ``data-dir`` (``''`` when it has none) and, when it has no
    data-dir of its own, its simulation partition ``(partition-id, num-partitions)`` (``None``:
    it reads all of the run's data). A ``ConfigError`` names a half-given or malformed key."""
    own_dir = str(node.get(DATA_DIR, "") or "")
    if own_dir:
        return own_dir, None
    if PARTITION_ID in node:
        if NUM_PARTITIONS not in node:
            raise ConfigError(
                f"partition-id={node[PARTITION_ID]!r} was given without num-partitions; the "
                "node config needs both (simulation sets them) or neither (a site with its "
                "own data-dir).")
        partition = (_node_int(node, PARTITION_ID), _node_int(node, NUM_PARTITIONS))
        check_partition_id(*partition)
        return "", partition
    if NUM_PARTITIONS in node:
        check_num_partitions(_node_int(node, NUM_PARTITIONS))
    return "", None


def _node_int(node: Mapping[str, Any], key: str) -> int:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(
            f"node config {key}={value!r}: expected an int; simulation sets partition-id and "
            "num-partitions together, a deployment site sets data-dir instead."
        )
    return int(value)


@dataclass(frozen=True)
class SiteDevices:
    """Where a site trains: Lightning's ``accelerator``, ``devices`` and ``strategy``."""

    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any]) -> SiteDevices:
        """The node config's hardware keys (absent: one device, chosen by Lightning)."""
        accelerator = str(node.get(ACCELERATOR, "auto"))
        strategy = str(node.get(STRATEGY, "auto"))
        devices = node.get(DEVICES, 1)
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ConfigError(f"node config {DEVICES}={devices!r}: expected an int >= 1, the "
                              "number of GPUs (or CPU processes) this site trains on, e.g. "
                              "--node-config \"devices=8\".")
        if accelerator not in ACCELERATORS:
            raise ConfigError(f"node config {ACCELERATOR}={accelerator!r}: use one of "
                              f"{', '.join(ACCELERATORS)}.")
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"node config {STRATEGY}={strategy!r}: a site supports {', '.join(STRATEGIES)}. "
                "Lightning's 'ddp' relaunches the command that started the process, which "
                "inside a ClientApp is flwr-clientapp; 'ddp_spawn' starts the workers itself.")
        return cls(accelerator, devices, strategy)

    def trainer_kwargs(self) -> dict[str, Any]:
        """``accelerator``, ``devices`` and ``strategy`` for ``pl.Trainer``."""
        strategy = "ddp_spawn" if self.devices > 1 and self.strategy == "auto" else self.strategy
        return {"accelerator": self.accelerator, "devices": self.devices, "strategy": strategy}


@dataclass(frozen=True)
class SiteInfo:
    """Which site a ClientApp runs as (``site_of``).

    Parameters
    ----------
    index : int | None
        The site's partition (``partition-id``) in a simulation; ``None`` at a deployed site
        with its own data-dir.
    count : int | None
        The number of simulated sites (``num-partitions``); ``None`` at a deployed site.
    data_dir : str
        The folder to read: the node's own ``data-dir`` at a deployed site, the run config's
        ``data-dir`` in a simulation (``''``: your default location).
    """

    index: int | None
    count: int | None
    data_dir: str

    @property
    def simulated(self) -> bool:
        """Whether this site reads one share of data the other sites also read."""
        return self.index is not None


def site_of(context: Any) -> SiteInfo:
    """This site, from its Flower ``Context``: in a simulation its partition of the run
    config's ``data-dir``, at a deployed SuperNode all of its node-config ``data-dir``.

    >>> site = colearn_fl.site_of(context)
    >>> site.index, site.count, site.data_dir  # (1, 4, '') simulated; (None, None, '/d') deployed
    """
    from colearn_fl.config import parse_section
    from colearn_fl.sections import SiteData

    own_dir, partition = node_partition(context.node_config)
    if own_dir:
        return SiteInfo(None, None, own_dir)
    data_dir = parse_section(SiteData, context.run_config).data_dir
    return SiteInfo(*(partition or (None, None)), data_dir)


def shard(dataset: Any, context: Any, partitioning: str | None = None,
          alpha: float | None = None, seed: int | None = None,
          labels: Sequence[int] | None = None) -> Any:
    """This site's share of ``dataset``: its IID or Dirichlet partition in a simulation, the
    whole ``dataset`` at a deployed site (which holds only its own data). The same
    ``datamodule_fn`` then runs under ``flwr run`` simulation and at a real SuperNode.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        The whole data set, with ``len``.
    context : flwr.app.Context
        The ClientApp's context (``site_of``).
    partitioning : {'iid', 'dirichlet'}, optional
        Default: the run config's ``partitioning``.
    alpha : float, optional
        Dirichlet concentration; default: the run config's ``dirichlet-alpha``.
    seed : int, optional
        Seed of the split (every site computes the same one); default: the run config's.
    labels : sequence of int, optional
        Class of each sample, for ``dirichlet``; default: ``dataset.targets`` or
        ``dataset.labels``, else each sample's second item.

    Returns
    -------
    torch.utils.data.Subset or the dataset
        Disjoint across the simulated sites, covering ``dataset``, the same for a seed.
    """
    from torch.utils.data import Subset

    from colearn_fl.config import coerce, parse_section
    from colearn_fl.sections import SiteData
    from tasks.partition import partition_indices

    site = site_of(context)
    if not site.simulated:
        return dataset
    data = parse_section(SiteData, context.run_config)
    partitioning = partitioning or data.partitioning
    if partitioning == "iid":
        labels = [0] * len(dataset)  # iid ignores the labels
    elif labels is None:
        labels = _labels(dataset)
    if seed is None:
        seed = coerce("seed", context.run_config.get("seed", 0), int)
    parts = partition_indices(np.asarray(labels), int(site.count or 1),
                              partitioning,  # type: ignore[arg-type]
                              data.dirichlet_alpha if alpha is None else alpha, seed)
    return Subset(dataset, parts[int(site.index or 0)].tolist())


def _labels(dataset: Any) -> list[int]:
    """Each sample's class: ``targets`` / ``labels`` (torchvision's names), else item [1]."""
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if values is not None:
            return [int(v) for v in values]
    try:
        return [int(dataset[i][1]) for i in range(len(dataset))]
    except (TypeError, IndexError, ValueError) as error:
        raise ConfigError(
            "shard(..., partitioning='dirichlet') needs each sample's class: give labels=..., "
            "or a dataset with .targets / .labels, or one whose items are (input, label) "
            f"({type(error).__name__}: {error}).") from None
