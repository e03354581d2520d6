"""The site side: a Flower ClientApp that trains and evaluates a user's LightningModule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from pytorch_lightning.loggers import CSVLogger

from colearn_fl.arrays import arrays_to_state_dict
from colearn_fl.callback import RoundStats, ServerSchedule
from colearn_fl.config import RunConfig
from colearn_fl.dp_mod import clipping_mod
from colearn_fl.errors import ConfigError
from colearn_fl.results import run_folder
from colearn_fl.task_adapter import PARTITION_ID
from colearn_fl.trainer import make_trainer
from colearn_fl.transport import encode_like
from strategies.wire import (
    LOCAL_EPOCHS,
    LR_MAX,
    LR_MIN,
    LR_SCHEDULE,
    NUM_EXAMPLES,
    SERVER_ROUND,
    TRAIN_LOSS,
)

ModuleFn = Callable[[dict[str, Any]], pl.LightningModule]
DataModuleFn = Callable[[Context], pl.LightningDataModule]


def client_app(
    module_fn: ModuleFn, datamodule_fn: DataModuleFn, mods: list[Mod] | None = None
) -> ClientApp:
    """A ClientApp that federates a LightningModule with co-learning.

    Parameters
    ----------
    module_fn : Callable[[dict], LightningModule]
        Builds the user's module from the run config; its ``configure_optimizers`` picks the
        optimizer, the server's cycle sets the LR.
    datamodule_fn : Callable[[Context], LightningDataModule]
        Builds this site's data (``train_dataloader`` for training, ``val_dataloader`` for
        evaluation) from the Flower context (``node_config`` holds ``data-dir`` or the
        simulation partition).
    mods : list of Flower mods, optional
        Flower client mods wrapped around both handlers, outermost first. They run outside
        colearn-fl's DP clipping mod (``colearn_fl.dp_mod.clipping_mod``, a pass-through
        unless ``dp-noise-multiplier > 0``), so they see each reply exactly as it leaves the
        site.

    Returns
    -------
    ClientApp
        Train replies carry the full state_dict, ``num-examples`` and ``train-loss``; evaluate
        replies carry ``num-examples`` and every metric the module logs in validation.
    """
    app = ClientApp(mods=[*(mods or []), clipping_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_round(msg, context, module_fn, datamodule_fn)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return evaluate_round(msg, context, module_fn, datamodule_fn)

    return app


def train_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Load the global model, train the round's epochs on the server's cycle, reply."""
    config = msg.content["config"]
    module = _load(module_fn, context, msg.content["arrays"])
    schedule = ServerSchedule(
        str(config[LR_SCHEDULE]), float(config[LR_MAX]), float(config[LR_MIN])
    )
    stats = RoundStats()
    epochs = int(config[LOCAL_EPOCHS])
    if epochs < 1:
        raise ConfigError(f"{LOCAL_EPOCHS}={epochs}: the server must send at least 1 epoch.")
    server_round = int(config[SERVER_ROUND])
    run = RunConfig.from_dict(context.run_config)
    torch.manual_seed(hash((run.seed, server_round, _site(context))) % 2**31)
    trainer = _trainer(context, run, server_round, [schedule, stats], epochs)
    trainer.fit(module, datamodule=datamodule_fn(context))
    metrics = MetricRecord({NUM_EXAMPLES: stats.examples_per_epoch,
                            TRAIN_LOSS: stats.mean_loss})
    # Reply in the precision the server sent (transport-dtype); buffers keep their dtypes.
    reply = RecordDict({"arrays": encode_like(module.state_dict(), msg.content["arrays"]),
                        "metrics": metrics})
    return Message(content=reply, reply_to=msg)


def evaluate_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Load the global model, validate it on this site's held-out data, reply metrics."""
    module = _load(module_fn, context, msg.content["arrays"])
    stats = RoundStats()
    run = RunConfig.from_dict(context.run_config)
    trainer = _trainer(context, run, int(msg.content["config"][SERVER_ROUND]), [stats])
    results = trainer.validate(module, datamodule=datamodule_fn(context), verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    metrics[NUM_EXAMPLES] = stats.eval_examples
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def _load(module_fn: ModuleFn, context: Context, arrays: ArrayRecord) -> pl.LightningModule:
    """The user's module with the global weights loaded (every key must match)."""
    module = module_fn(dict(context.run_config))
    try:
        module.load_state_dict(arrays_to_state_dict(arrays), strict=True)
    except RuntimeError as error:
        raise ConfigError(
            "the global model does not fit the model this site built from the run config "
            f"({str(error).splitlines()[0]} ...). The server and the sites must build the same "
            "network: give them the same model key and the task's shape keys (e.g. "
            "dataset='cifar10' when the server's data-dir does not exist at the sites)."
        ) from error
    return module


def _trainer(
    context: Context, run: RunConfig, server_round: int, callbacks: list[pl.Callback],
    epochs: int = 0,
) -> pl.Trainer:
    """A Trainer for one round at this site, logging to the run folder's ``sites/``."""
    logger = CSVLogger(
        save_dir=run_folder(run, context.run_id) / "sites",
        name=f"site-{_site(context)}",
        version=f"round-{server_round}-{'train' if epochs else 'evaluate'}",
    )
    return make_trainer(run.precision, callbacks, epochs, logger=logger)


def _site(context: Context) -> int:
    """This site's name in logs and seeds: its partition in simulation, else its node id."""
    return int(context.node_config.get(PARTITION_ID, context.node_id))
