"""The default ServerApp and ClientApp (pyproject's ``[tool.flwr.app.components]``).

Both read the ``task`` run-config key and run that registered task's model and data through
the same code path a user's own app takes (``train_round``, ``evaluate_round``,
``run_colearning``) and the same DP clipping mod (``colearn_fl.dp_mod.clipping_mod``).
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from colearn_fl.client import evaluate_round, train_round
from colearn_fl.dp_mod import clipping_mod
from colearn_fl.server import run_colearning
from colearn_fl.task_adapter import TaskAdapter

client = ClientApp(mods=[clipping_mod])  # central DP clipping when dp-noise-multiplier > 0
server = ServerApp()


def task_of(context: Context) -> TaskAdapter:
    """The registered task the run config names, with its factories in Flower's form."""
    return TaskAdapter.of_run(context.run_config)


@client.train()
def train(msg: Message, context: Context) -> Message:
    """Train the task's model for one co-learning round on this site's data."""
    task = task_of(context)
    return train_round(msg, context, task.module_fn, task.datamodule_fn)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this site's held-out data."""
    task = task_of(context)
    return evaluate_round(msg, context, task.module_fn, task.datamodule_fn)


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run co-learning for the task the run config names."""
    task = task_of(context)
    run_colearning(grid, context, task.module_fn, task.central_datamodule_fn)
