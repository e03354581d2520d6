"""The default ServerApp and ClientApp (pyproject's ``[tool.flwr.app.components]``).

Both read the ``task`` run-config key and run that registered task's model and data through
the same code path a user's own app takes (``register_site_functions``,
``run_colearning``) and the same DP clipping mod (``colearn_fl.dp_mod.clipping_mod``).
"""

from __future__ import annotations

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from colearn_fl.client import DataModuleFn, ModuleFn, register_site_functions
from colearn_fl.dp_mod import clipping_mod
from colearn_fl.server import run_colearning
from colearn_fl.task_adapter import TaskAdapter
from colearn_fl.trainer import quiet_ray

quiet_ray()  # flwr run loads this module before it starts Ray
client = ClientApp(mods=[clipping_mod])  # central DP clipping when dp-noise-multiplier > 0
server = ServerApp()


def task_of(context: Context) -> TaskAdapter:
    """The registered task the run config names, with its factories in Flower's form."""
    return TaskAdapter.of_run(context.run_config)


def site_factories(context: Context) -> tuple[Context, ModuleFn, DataModuleFn]:
    """The site functions' context and the task's module and data factories."""
    task = task_of(context)
    return context, task.module_fn, task.datamodule_fn


register_site_functions(client, site_factories)  # train, evaluate, bn_refresh, lr_find


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run co-learning for the task the run config names."""
    task = task_of(context)
    run_colearning(grid, context, task.module_fn, task.central_datamodule_fn, task.default_lr)
