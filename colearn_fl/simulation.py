"""Run a co-learning federation in-process with Flower's simulation engine.

``flwr run .`` is the user's way in; ``simulate`` runs the very same ServerApp/ClientApp code
(``run_colearning``, ``register_site_functions``) from Python, with a run config given
as a dict (Flower's ``run_simulation`` takes none), for tests, notebooks and the benchmarks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.logs import quiet_ray
from colearn_fl.server.server_app import run_colearning
from colearn_fl.site.client_app import register_site_functions
from colearn_fl.site.clipping_mod import clipping_mod
from colearn_fl.site.secagg_mod import secagg_mod
from colearn_fl.task_adapter import CentralDataFn, DataModuleFn, DefaultLrFn, ModuleFn, TaskAdapter


def simulate(
    run_config: Mapping[str, Any],
    num_sites: int = 4,
    cpus_per_site: float = 1,
    module_fn: ModuleFn | None = None,
    datamodule_fn: DataModuleFn | None = None,
    central_datamodule_fn: CentralDataFn | None = None,
    mods: list[Mod] | None = None,
    ray_address: str | None = None,
    gpus_per_site: float = 0.0,
) -> Path:
    """Simulate ``num_sites`` sites running co-learning; return the run folder.

    Parameters
    ----------
    run_config : Mapping
        Run-config overrides (kebab-case keys, as in ``--run-config``); the rest default.
        An empty ``run-name`` becomes ``sim-<unix time>``.
    num_sites : int (default: 4)
        Simulated SuperNodes; each gets ``partition-id`` / ``num-partitions``.
    cpus_per_site : float (default: 1)
        CPUs Ray reserves per ClientApp (how many sites train at once). Each site trains on
        ``site-threads`` torch threads (default 1) whatever this is, so the results do not
        depend on it.
    module_fn, datamodule_fn, central_datamodule_fn : optional
        A user's own factories; by default the ``task`` key's registered ones.
    mods : list of Flower mods, optional
        Client mods around every site's handlers, outermost first, as in
        ``colearn_fl.client_app``: they see the run config given here and each reply as it
        leaves the site (after the DP clipping mod).
    ray_address : str, optional
        A running Ray cluster to put the sites on (``'127.0.0.1:6379'``, ``'auto'``: the
        one ``ray start`` last started on this machine); default: ``$RAY_ADDRESS`` if set,
        else a private Ray instance that this run starts and stops. On a cluster the run
        leaves it running; each site reserves ``cpus_per_site`` / ``gpus_per_site`` of it.
    gpus_per_site : float (default: 0)
        GPUs Ray reserves per ClientApp (e.g. 0.5: two sites share a GPU).
    """
    config = dict(run_config)
    config.setdefault("run-name", "")
    if not config["run-name"]:
        config["run-name"] = f"sim-{int(time.time())}"
    parsed = RunConfig.from_dict(config)  # fail here, before any process starts
    if (module_fn is None) != (datamodule_fn is None):
        raise ConfigError("simulate() needs module_fn and datamodule_fn together (or neither, "
                          "to use the registered task named by the `task` key).")
    default_lr = None  # a user's own module: its hparams.lr (run_colearning)
    if module_fn is None or datamodule_fn is None:
        task = TaskAdapter.of_run(parsed).factories(parsed)  # simulate's config: parsed once
        module_fn, datamodule_fn = task.module_fn, task.datamodule_fn
        central_datamodule_fn = central_datamodule_fn or task.central_datamodule_fn
        default_lr = task.default_lr
    server, client = _apps(config, module_fn, datamodule_fn, central_datamodule_fn, mods or [],
                           default_lr)
    quiet_ray()
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=num_sites,
        backend_config={
            "client_resources": {"num_cpus": cpus_per_site, "num_gpus": gpus_per_site},
            "init_args": {"address": ray_cluster(ray_address)},
        },
    )
    return parsed.outputs.folder(0)


def ray_cluster(address: str | None = None) -> str:
    """The Ray address a simulation starts on: ``address``, else ``$RAY_ADDRESS``, else
    ``'local'`` (a private instance: ``ray.init()`` would otherwise join the cluster
    ``ray start`` last started on this machine, or another simulation's, and queue behind
    its actors)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def with_run_config(context: Context, config: Mapping[str, Any]) -> Context:
    """``context`` whose run config also holds ``config`` (overriding what it had).

    Flower refuses changes to a context's run_config: this is a copy (the state stays shared,
    as Flower keeps it per node).
    """
    return Context(run_id=context.run_id, node_id=context.node_id,
                   node_config=context.node_config, state=context.state,
                   run_config={**context.run_config, **config})


def _apps(
    config: dict[str, Any], module_fn: ModuleFn, datamodule_fn: DataModuleFn,
    central_datamodule_fn: CentralDataFn | None, mods: list[Mod],
    default_lr: DefaultLrFn | None,
) -> tuple[ServerApp, ClientApp]:
    """Server and client apps (and client mods) that see ``config`` as their run config."""

    def configured(context: Context) -> Context:
        return with_run_config(context, config)

    def seeing_config(mod: Mod) -> Mod:
        def configured_mod(msg: Message, context: Context, call_next: ClientAppCallable
                           ) -> Message:
            return mod(msg, configured(context), call_next)

        return configured_mod

    server = ServerApp()
    client = ClientApp(mods=[seeing_config(m) for m in [secagg_mod, *mods, clipping_mod]])

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_colearning(grid, configured(context), module_fn, central_datamodule_fn, default_lr)

    register_site_functions(client, lambda run: (module_fn, datamodule_fn), view=configured)
    return server, client
