"""The one place a Flower run config and Context become a task's plain arguments.

Tasks are plain Lightning (``tasks.Task``): their factories take the task's own config
dataclass, a model name and an LR, or a ``tasks.shared.Site``. The apps speak Flower: a
``module_fn(run_config)``, a ``datamodule_fn(context)`` and a
``central_datamodule_fn(run_config)``. ``TaskAdapter`` turns one into the other.

A site's data is its node-config ``data-dir`` (a deployment site: all of its own files) or,
in simulation, its partition (node-config ``partition-id`` / ``num-partitions``) of the run
config's ``data-dir``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from flwr.app import Context

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.errors import ConfigError
from tasks import Task, get_task, list_tasks
from tasks.partition import check_num_partitions
from tasks.registry import PROJECT_LR
from tasks.shared import Site

# Node-config keys (per SuperNode; simulation sets the partition keys).
DATA_DIR = "data-dir"
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"


def site_of(config: RunConfig, data_dir: str = "",
            partition: tuple[int, int] | None = None) -> Site:
    """A ``Site`` with the run config's data settings.

    Parameters
    ----------
    config : RunConfig
        The parsed run config (batch size, partitioning, seed, caps, workers).
    data_dir : str
        The directory to read; ``''`` = the task's default location (default: ``''``).
    partition : tuple[int, int] | None
        ``(partition-id, num-partitions)``; ``None`` = every file (default: None).
    """
    return Site(data_dir=data_dir, partition=partition, batch_size=config.batch_size,
                partitioning=config.partitioning, dirichlet_alpha=config.dirichlet_alpha,
                seed=config.seed, max_samples=config.max_samples,
                num_workers=config.num_workers)


def context_site(context: Context) -> Site:
    """A site's data from its Flower context: its node-config ``data-dir`` (all of it), or
    its simulation partition of the run config's ``data-dir``."""
    node = context.node_config
    config = RunConfig.from_dict(context.run_config)
    own_dir = node.get(DATA_DIR, "")
    if own_dir:
        return site_of(config, str(own_dir))
    partition = None
    if PARTITION_ID in node:
        if NUM_PARTITIONS not in node:
            raise ConfigError(
                f"partition-id={node[PARTITION_ID]!r} was given without num-partitions; the "
                "node config needs both (simulation sets them) or neither (a site with its "
                "own data-dir).")
        partition = (_node_int(node, PARTITION_ID), _node_int(node, NUM_PARTITIONS))
    elif NUM_PARTITIONS in node:
        check_num_partitions(_node_int(node, NUM_PARTITIONS))
    return site_of(config, config.data_dir, partition)


def _node_int(node: Mapping[str, Any], key: str) -> int:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(
            f"node config {key}={value!r}: expected an int; simulation sets partition-id and "
            "num-partitions together, a deployment site sets data-dir instead."
        )
    return int(value)


def unknown_keys(run_config: Mapping[str, Any]) -> dict[str, str | None]:
    """Keys of ``run_config`` that neither colearn-fl nor any registered task defines, each
    with the closest key that is defined (or ``None``): likely typos, or a user app's own
    keys."""
    known = {f.name.replace("_", "-") for f in dataclasses.fields(RunConfig)} - {"extra"}
    for name in list_tasks():
        known |= {f.name.replace("_", "-") for f in dataclasses.fields(get_task(name).config)}
    return {key: next(iter(difflib.get_close_matches(key, sorted(known), n=1)), None)
            for key in run_config if key not in known}


def describe_unknown(unknown: Mapping[str, str | None]) -> str:
    """``'lr-mx' (did you mean 'lr-max'?), 'mine'``."""
    return ", ".join(f"{key!r}" + (f" (did you mean {near!r}?)" if near else "")
                     for key, near in unknown.items())


@dataclass(frozen=True)
class TaskAdapter:
    """A registered task's factories in the form the Flower apps call them.

    Parameters
    ----------
    task : Task
        The task (``tasks.get_task``).
    """

    task: Task

    @classmethod
    def named(cls, name: str) -> TaskAdapter:
        """The adapter of the task registered as ``name``."""
        return cls(get_task(name))

    @classmethod
    def of_run(cls, run_config: Mapping[str, Any]) -> TaskAdapter:
        """The adapter of the task the run config's ``task`` key names."""
        return cls.named(RunConfig.from_dict(run_config).task)

    def config(self, run_config: Mapping[str, Any]) -> Any:
        """The task's own keys, parsed, checked and resolved against the run's data-dir."""
        section = parse_section(self.task.config, run_config)
        return self.task.resolve(section, RunConfig.from_dict(run_config).data_dir)

    def default_lr(self, run_config: Mapping[str, Any]) -> float | str:
        """The top of the LR cycle for ``lr-max='default'``: the task's number for the run's
        model and optimizer, or ``'auto'`` where it has none."""
        return self.task.default_lr(self.config(run_config),
                                    RunConfig.from_dict(run_config).model)

    def module_fn(self, run_config: Mapping[str, Any]) -> pl.LightningModule:
        """The model the run config's ``model`` names, its optimizer starting at the cycle's
        top (the server's cycle sets the LR of every step in a round)."""
        config = RunConfig.from_dict(run_config)
        top, _ = config.cycle(self.default_lr(run_config))
        return self.task.build_module(self.config(run_config), model=config.model,
                                      lr=top if isinstance(top, float) else PROJECT_LR)

    def datamodule_fn(self, context: Context) -> pl.LightningDataModule:
        """A site's data: its node-config ``data-dir`` or its simulation partition."""
        return self.task.build_datamodule(self.config(context.run_config),
                                          context_site(context))

    def central_datamodule_fn(self, run_config: Mapping[str, Any]
                              ) -> pl.LightningDataModule | None:
        """The server's test data (all of the run config's ``data-dir``), or ``None``."""
        config = RunConfig.from_dict(run_config)
        return self.task.build_central_datamodule(self.config(run_config),
                                                  site_of(config, config.data_dir))

    def site_datamodule(self, run_config: Mapping[str, Any],
                        partition: tuple[int, int] | None) -> pl.LightningDataModule:
        """Simulated site ``partition`` of the run config's data (``None``: all of it), as a
        simulated site would see it; for the non-federated comparison methods."""
        config = RunConfig.from_dict(run_config)
        return self.task.build_datamodule(self.config(run_config),
                                          site_of(config, config.data_dir, partition))
