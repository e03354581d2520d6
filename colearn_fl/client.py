"""The site side: a Flower ClientApp that trains and evaluates a user's LightningModule."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from logging import WARNING
from typing import Any

import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.supercore import log

from colearn_fl.arrays import arrays_to_state_dict
from colearn_fl.bn_refresh import refresh_reply
from colearn_fl.config import RunConfig
from colearn_fl.dp_mod import clipping_mod
from colearn_fl.errors import ConfigError
from colearn_fl.lr_range import range_test_reply
from colearn_fl.proximal import ProximalTerm
from colearn_fl.results import run_folder
from colearn_fl.round_stats import RoundStats
from colearn_fl.server_schedule import ServerSchedule
from colearn_fl.site_devices import SiteDevices
from colearn_fl.task_adapter import PARTITION_ID
from colearn_fl.trainer import make_logger, make_trainer
from colearn_fl.transport import encode_like
from strategies import wire

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
        replies carry ``num-examples`` and every metric the module logs in validation. Three
        query actions serve co-learning's extra rounds: ``data_check`` (open the data, reply
        its sizes, before round 1), ``bn_refresh`` (the SWA model's normalisation statistics
        over this site's training data) and ``lr_find`` (an LR range test for
        ``lr-max='auto'``).
    """
    app = ClientApp(mods=[*(mods or []), clipping_mod])
    return register_site_functions(app, lambda context: (context, module_fn, datamodule_fn))


SiteFactories = Callable[[Context], tuple[Context, ModuleFn, DataModuleFn]]


def register_site_functions(app: ClientApp, factories: SiteFactories) -> ClientApp:
    """Register co-learning's site functions on ``app``: ``train``, ``evaluate`` and the
    query actions of ``strategies.wire`` (``bn_refresh``, ``lr_find``).

    ``factories(context)`` gives the context the functions see and the module and data
    factories of the run (the one place ``client_app``, ``colearn_fl.apps`` and ``simulate``
    differ).
    """
    handlers = {"train": train_round, "evaluate": evaluate_round,
                wire.BN_REFRESH: refresh_round, wire.LR_FIND: lr_find_round,
                wire.DATA_CHECK: data_check_round}
    for message_type, handler in handlers.items():
        category, _, action = message_type.partition(".")
        register = getattr(app, category)(action) if action else getattr(app, category)()
        register(_bound(handler, factories))
    return app


def _bound(handler: Callable[..., Message], factories: SiteFactories) -> Callable[..., Message]:
    def function(msg: Message, context: Context) -> Message:
        return handler(msg, *factories(context))

    function.__name__ = handler.__name__
    return function


def data_check_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Open this site's data as a training round would; reply its sizes (an error in the
    data becomes the reply's error, which stops the run before round 1)."""
    data = datamodule_fn(context)
    data.prepare_data()
    data.setup("fit")
    sizes = {wire.TRAIN_EXAMPLES: len(data.train_dataloader().dataset)}
    try:
        sizes[wire.VAL_EXAMPLES] = len(data.val_dataloader().dataset)
    except Exception:  # noqa: BLE001 - a module without validation data still trains
        sizes[wire.VAL_EXAMPLES] = 0
    return Message(content=RecordDict({"metrics": MetricRecord(sizes)}), reply_to=msg)


def refresh_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Recompute the received model's normalisation statistics over this site's training
    data (server-side SWA); nothing is trained."""
    received = _model(msg)
    return refresh_reply(_load(module_fn, context, received), datamodule_fn(context),
                         received, msg)


def lr_find_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Run Lightning's LR finder from the received model on this site's data
    (``lr-max='auto'``)."""
    received = _model(msg)
    return range_test_reply(_load(module_fn, context, received), datamodule_fn(context),
                            _config(msg), msg, RunConfig.from_dict(context.run_config))


def train_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Load the global model, train the round's epochs on the server's cycle, reply.

    Under a server that sends no schedule (a stock Flower strategy) the site trains
    ``epochs-initial`` epochs with the module's own optimizer settings, and says so once. A
    ``proximal-mu`` from the server (Flower's FedProx) adds the proximal term. The reply
    reports what the site did: ``epochs-run``, ``lr-first`` and ``lr-last``.
    """
    received, config = _model(msg), _config(msg)
    module = _load(module_fn, context, received)
    run = RunConfig.from_dict(context.run_config)
    epochs, callbacks = _round_plan(config, run)
    if float(config.get(wire.PROXIMAL_MU, 0.0)) > 0:
        callbacks.append(ProximalTerm(float(config[wire.PROXIMAL_MU])))
    stats = RoundStats()
    server_round = int(config.get(wire.SERVER_ROUND, 0))
    seed = hash((run.seed, server_round, _site(context))) % 2**31
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)  # the shuffle of distributed workers (devices > 1)
    trainer = _trainer(context, run, server_round, [*callbacks, stats], epochs)
    trainer.fit(module, datamodule=datamodule_fn(context))
    stats.read_back(trainer)  # from rank 0, when spawned workers trained
    metrics = MetricRecord({wire.NUM_EXAMPLES: stats.examples_per_epoch,
                            wire.TRAIN_LOSS: stats.mean_loss, wire.EPOCHS_RUN: stats.epochs_run,
                            wire.LR_FIRST: stats.lr_first, wire.LR_LAST: stats.lr_last})
    # 16-bit when the server sent 16 bit (transport-dtype), else the module's own dtypes.
    reply = RecordDict({"arrays": encode_like(module.state_dict(), received),
                        "metrics": metrics})
    return Message(content=reply, reply_to=msg)


def _round_plan(config: ConfigRecord, run: RunConfig) -> tuple[int, list[pl.Callback]]:
    """The round's epochs and the callbacks that follow the server's LR cycle."""
    missing = tuple(key for key in wire.SCHEDULE_KEYS if key not in config)
    if missing:
        _no_schedule(missing, run.epochs_initial)
        return run.epochs_initial, []
    epochs = int(config[wire.LOCAL_EPOCHS])
    if epochs < 1:
        raise ConfigError(f"{wire.LOCAL_EPOCHS}={epochs}: the server must send at least 1 "
                          "epoch.")
    cycle = ServerSchedule(str(config[wire.LR_SCHEDULE]), float(config[wire.LR_MAX]),
                           float(config[wire.LR_MIN]))
    return epochs, [cycle]


@functools.cache
def _no_schedule(missing: tuple[str, ...], epochs: int) -> None:
    """Say once per process what a site does under a server that sends no schedule."""
    log(WARNING, "[colearn] the server sent no co-learning schedule (%s missing): this site "
        "trains epochs-initial=%d epoch(s) per round with its module's own optimizer "
        "settings. Run the server with colearn_fl.server_app or strategies.CoLearnSchedule "
        "to follow the schedule.", ", ".join(missing), epochs)


def _model(msg: Message) -> ArrayRecord:
    """The global model of an instruction (its one ArrayRecord, whatever its name)."""
    if len(msg.content.array_records) != 1:
        raise ConfigError("the server's message holds "
                          f"{len(msg.content.array_records)} ArrayRecords; a site expects "
                          "exactly one, the global model.")
    return next(iter(msg.content.array_records.values()))


def _config(msg: Message) -> ConfigRecord:
    """The instruction's config (its one ConfigRecord, or an empty one)."""
    return next(iter(msg.content.config_records.values()), ConfigRecord())


def evaluate_round(
    msg: Message, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn
) -> Message:
    """Load the global model, validate it on this site's held-out data, reply metrics."""
    module = _load(module_fn, context, _model(msg))
    stats = RoundStats()
    run = RunConfig.from_dict(context.run_config)
    trainer = _trainer(context, run, int(_config(msg).get(wire.SERVER_ROUND, 0)), [stats])
    results = trainer.validate(module, datamodule=datamodule_fn(context), verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    metrics[wire.NUM_EXAMPLES] = stats.eval_examples
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def _load(module_fn: ModuleFn, context: Context, arrays: ArrayRecord) -> pl.LightningModule:
    """The user's module with the global weights loaded (every key must match), on this
    site's torch threads."""
    _use_threads(context)
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
    logger = make_logger(run.logger, run_folder(run, context.run_id) / "sites",
                         f"site-{_site(context)}",
                         f"round-{server_round}-{'train' if epochs else 'evaluate'}")
    hardware = SiteDevices.from_node_config(context.node_config)
    if not epochs:  # evaluation: one device of the site's kind
        hardware = SiteDevices(accelerator=hardware.accelerator)
    return make_trainer(run.precision, callbacks, epochs, logger=logger, hardware=hardware)


def _use_threads(context: Context) -> None:
    """Train and evaluate on ``site-threads`` torch threads; 0 = one thread at a simulated
    site (its node config holds a partition-id), torch's default at a deployed one.

    CPU kernels split their sums differently over a different number of threads, so the
    thread count changes a site's model in its last bits. Ray would give a simulated site
    ``client-resources-num-cpus`` threads: fixing it keeps a simulation's results the same
    however many sites train at once."""
    wanted = RunConfig.from_dict(context.run_config).site_threads or (
        1 if PARTITION_ID in context.node_config else 0)
    if wanted and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def _site(context: Context) -> int:
    """This site's name in logs and seeds: its partition in simulation, else its node id."""
    return int(context.node_config.get(PARTITION_ID, context.node_id))
