"""The default ServerApp and ClientApp (pyproject's ``[tool.flwr.app.components]``).

Both read the ``task`` run-config key and run that registered task's model and data through
the same code path a user's own app takes (``register_site_functions``,
``run_colearning``) and the same DP clipping mod
(``colearn_fl.site.clipping_mod.clipping_mod``). Each message's run config is parsed once and
the task's factories are bound to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from colearn_fl.config import RunConfig
from colearn_fl.logs import quiet_ray
from colearn_fl.server.failure_line import one_line_failures
from colearn_fl.site.client_app import register_site_functions
from colearn_fl.site.clipping_mod import clipping_mod
from colearn_fl.site.secagg_mod import secagg_mod

if TYPE_CHECKING:
    from colearn_fl.task_adapter import DataModuleFn, ModuleFn

# This module loads without torch or Lightning (the handlers import them when they run):
# Flower's simulation loads the ClientApp before it starts Ray, so Ray starts at once.
quiet_ray()  # flwr run loads this module before it starts Ray
# SecAgg+ when secure-aggregation=true; central DP clipping when dp-noise-multiplier > 0
client = ClientApp(mods=[secagg_mod, clipping_mod])
server = ServerApp()


def site_factories(run: RunConfig) -> tuple[ModuleFn, DataModuleFn]:
    """The module and data factories of the task ``run`` names, bound to ``run``."""
    from colearn_fl.task_adapter import TaskAdapter

    factories = TaskAdapter.of_run(run).factories(run)
    return factories.module_fn, factories.datamodule_fn


register_site_functions(client, site_factories)  # train, evaluate, bn_refresh, lr_find, ...


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run co-learning for the task the run config names."""
    from colearn_fl.server.server_app import run_colearning
    from colearn_fl.task_adapter import TaskAdapter

    one_line_failures()  # a bad key ends the stream with one line, not a traceback
    run = RunConfig.from_dict(context.run_config)
    task = TaskAdapter.of_run(run).factories(run)
    run_colearning(grid, context, task.module_fn, task.central_datamodule_fn, task.default_lr,
                   config=run)
