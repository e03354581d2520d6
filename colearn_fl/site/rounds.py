"""A site's handlers: train, evaluate, and the query actions (data check, the SWA statistics
refresh, the LR range test), each given the message and the ``SiteCall`` it came with."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from logging import WARNING

import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore import log

from colearn_fl.arrays import arrays_to_state_dict, encode_like
from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.node_config import PARTITION_ID, SiteDevices, site_name
from colearn_fl.site.bn_refresh import refresh_reply
from colearn_fl.site.callbacks.lr_cycle import LRCycle
from colearn_fl.site.callbacks.optimizer_state import KeepOptimizerState
from colearn_fl.site.callbacks.proximal_term import ProximalTerm
from colearn_fl.site.callbacks.release_process_group import ReleaseProcessGroup
from colearn_fl.site.callbacks.round_stats import RoundStats
from colearn_fl.site.checks import (
    check_training_batches,
    check_validated,
    check_validation,
    examples_in,
    mismatch,
    validation_examples,
)
from colearn_fl.site.lr_range import range_test_reply
from colearn_fl.task_adapter import DataModuleFn, LoggerFn, ModuleFn
from colearn_fl.trainer import make_logger, make_trainer
from strategies import wire


@dataclass(frozen=True)
class SiteCall:
    """What a site's handler works with: the message's context, its run config (parsed once
    per message) and the run's module and data factories.

    Parameters
    ----------
    context : Context
        The Flower context (``node_config``: ``data-dir`` or the simulation partition).
    run : RunConfig
        ``context.run_config``, parsed.
    module_fn : Callable[[dict], LightningModule]
        Builds the module from the raw run config.
    datamodule_fn : Callable[[Context], LightningDataModule]
        Builds this site's data from ``context``.
    logger_fn : Callable[[dict, str, str], Logger], optional
        The user's own Lightning logger for each round's Trainer, besides the ``logger`` key's.
    """

    context: Context
    run: RunConfig
    module_fn: ModuleFn
    datamodule_fn: DataModuleFn
    logger_fn: LoggerFn | None = None

    @classmethod
    def of(cls, context: Context, module_fn: ModuleFn, datamodule_fn: DataModuleFn,
           logger_fn: LoggerFn | None = None) -> SiteCall:
        """A call for ``context``, parsing its run config."""
        return cls(context, RunConfig.from_dict(context.run_config), module_fn, datamodule_fn,
                   logger_fn)


def data_check_round(msg: Message, call: SiteCall) -> Message:
    """Open this site's data as a training round would; reply its sizes (an error in the
    data becomes the reply's error, which stops the run before round 1)."""
    data = call.datamodule_fn(call.context)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    check_training_batches(loader, data)
    train = examples_in(loader)
    # Unsized data (an IterableDataset) says so: its examples are counted as it trains.
    sizes = {wire.TRAIN_EXAMPLES: train} if train is not None else {wire.TRAIN_UNSIZED: 1}
    sizes[wire.VAL_EXAMPLES] = validation_examples(data)
    site = ConfigRecord({wire.SITE_NAME: site_name(call.context)})  # for the server's log
    return Message(content=RecordDict({"metrics": MetricRecord(sizes), "site": site}),
                   reply_to=msg)


def refresh_round(msg: Message, call: SiteCall) -> Message:
    """Recompute the received model's normalisation statistics over this site's training
    data (server-side SWA); nothing is trained."""
    received = _model(msg)
    return refresh_reply(_load(call, received), call.datamodule_fn(call.context), received,
                         msg)


def lr_find_round(msg: Message, call: SiteCall) -> Message:
    """Run Lightning's LR finder from the received model on this site's data
    (``lr-max='auto'``)."""
    received = _model(msg)
    return range_test_reply(_load(call, received), call.datamodule_fn(call.context),
                            _config(msg), msg, call.run.training.precision)


def train_round(msg: Message, call: SiteCall) -> Message:
    """Load the global model, train the round's epochs on the server's cycle, reply
    (with ``optimizer-state='keep'``, from the optimizer state this site's last round left).

    Under a server that sends no schedule (a stock Flower strategy) the site trains
    ``epochs-initial`` epochs with the module's own optimizer settings, and says so once. A
    ``proximal-mu`` from the server (Flower's FedProx) adds the proximal term. The reply
    reports what the site did: ``epochs-run``, ``lr-first`` and ``lr-last``.
    """
    received, config = _model(msg), _config(msg)
    module, run = _load(call, received), call.run
    epochs, callbacks = _round_plan(config, run.schedule.epochs_initial)
    if float(config.get(wire.PROXIMAL_MU, 0.0)) > 0:
        callbacks.append(ProximalTerm(float(config[wire.PROXIMAL_MU])))
    kept = _kept_optimizer_state(call) if run.training.optimizer_state == "keep" else None
    if kept is not None:
        callbacks.append(kept)
    stats = RoundStats()
    server_round = int(config.get(wire.SERVER_ROUND, 0))
    seed = hash((run.seed, server_round, _site(call.context))) % 2**31
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)  # the shuffle of distributed workers (devices > 1)
    trainer = _trainer(call, server_round, [*callbacks, stats], epochs,
                       validate=run.training.epoch_validation)
    trainer.fit(module, datamodule=call.datamodule_fn(call.context))
    stats.read_back(trainer)  # from rank 0, when spawned workers trained
    if not stats.batches:
        raise ConfigError(
            f"no training_step of {type(module).__name__} returned a loss in this round "
            f"({stats.examples_per_epoch} examples per epoch): Lightning then takes no optimizer "
            "step and the model does not change. Return the loss tensor (or a dict with "
            "'loss') from training_step.")
    metrics = MetricRecord({wire.NUM_EXAMPLES: stats.examples_per_epoch,
                            wire.TRAIN_LOSS: stats.mean_loss, wire.EPOCHS_RUN: stats.epochs_run,
                            wire.LR_FIRST: stats.lr_first, wire.LR_LAST: stats.lr_last,
                            **_epoch_series(stats)})
    # 16-bit when the server sent 16 bit (transport-dtype), else the module's own dtypes.
    reply = RecordDict({"arrays": encode_like(module.state_dict(), received),
                        "metrics": metrics})
    return Message(content=reply, reply_to=msg)


def _epoch_series(stats: RoundStats) -> dict[str, list[float]]:
    """The round's per-epoch curves as reply metrics (``epoch-<name>``), one value per epoch
    run (NaN where a metric was not logged)."""
    return {wire.EPOCH_PREFIX + name: [*series, *[math.nan] * (stats.epochs_run - len(series))]
            for name, series in stats.epochs.items() if series}


def _kept_optimizer_state(call: SiteCall) -> KeepOptimizerState | None:
    """``optimizer-state='keep'``: the callback that carries this site's optimizer state over;
    ``None`` (reset, said once) at a site with ``devices > 1``, whose spawned workers cannot
    hand the state back."""
    if SiteDevices.from_node_config(call.context.node_config).devices > 1:
        _reset_on_devices()
        return None
    return KeepOptimizerState(call.context.state)


@functools.cache
def _reset_on_devices() -> None:
    log(WARNING, "[colearn] optimizer-state='keep' is not supported at a site with devices > 1 "
        "(its spawned workers cannot hand the state back): this site builds a new optimizer "
        "every round (optimizer-state='reset')")


def _round_plan(config: ConfigRecord, epochs_initial: int) -> tuple[int, list[pl.Callback]]:
    """The round's epochs and the callbacks that follow the server's LR cycle (without a
    schedule from the server: ``epochs_initial`` and none)."""
    missing = tuple(key for key in wire.SCHEDULE_KEYS if key not in config)
    if missing:
        _no_schedule(missing, epochs_initial)
        return epochs_initial, []
    epochs = int(config[wire.LOCAL_EPOCHS])
    if epochs < 1:
        raise ConfigError(f"{wire.LOCAL_EPOCHS}={epochs}: the server must send at least 1 "
                          "epoch.")
    cycle = LRCycle(str(config[wire.LR_SCHEDULE]), float(config[wire.LR_MAX]),
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


def evaluate_round(msg: Message, call: SiteCall) -> Message:
    """Load the global model, validate it on this site's held-out data, reply metrics."""
    module = _load(call, _model(msg))
    data = call.datamodule_fn(call.context)
    check_validation(data)
    stats = RoundStats()
    trainer = _trainer(call, int(_config(msg).get(wire.SERVER_ROUND, 0)), [stats])
    results = trainer.validate(module, datamodule=data, verbose=False)
    check_validated(data, stats.eval_examples)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    metrics[wire.NUM_EXAMPLES] = stats.eval_examples
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def _load(call: SiteCall, arrays: ArrayRecord) -> pl.LightningModule:
    """The user's module with the global weights loaded (every key must match), on this
    site's torch threads."""
    _use_threads(call)
    module = call.module_fn(dict(call.context.run_config))
    received = arrays_to_state_dict(arrays)
    try:
        module.load_state_dict(received, strict=True)
    except RuntimeError as error:
        raise ConfigError(
            f"the global model does not fit the {type(module).__name__} this site built "
            f"({mismatch(module, received) or str(error).splitlines()[0]}). The server and the "
            "sites must build the same network: module_fn must build it from the run config "
            "alone, the same at every site and at the server (for the built-in tasks: the "
            "same model key and shape keys, e.g. dataset='cifar10' where the server's data-dir "
            "does not exist)."
        ) from error
    return module


def _trainer(call: SiteCall, server_round: int, callbacks: list[pl.Callback],
             epochs: int = 0, validate: bool = False) -> pl.Trainer:
    """A Trainer for one round at this site, logging to the run folder's ``sites/`` (and to
    the user's own logger)."""
    context, run = call.context, call.run
    phase = "train" if epochs else "evaluate"
    name, version = f"site-{_site(context)}", f"round-{server_round}-{phase}"
    loggers = [make_logger(run.outputs.logger, run.outputs.folder(context.run_id) / "sites",
                           name, version)]
    if call.logger_fn is not None:
        loggers.append(call.logger_fn(dict(context.run_config), name, version))
    hardware = SiteDevices.from_node_config(context.node_config)
    if not epochs:  # evaluation: one device of the site's kind
        hardware = SiteDevices(accelerator=hardware.accelerator)
    if hardware.devices > 1:  # spawned workers, each with a process group to release
        callbacks = [*callbacks, ReleaseProcessGroup()]
    return make_trainer(run.training.precision, callbacks, epochs,
                        logger=[lg for lg in loggers if lg is not None] or False,
                        hardware=hardware, validate=validate)


def _use_threads(call: SiteCall) -> None:
    """Train and evaluate on ``site-threads`` torch threads; 0 = one thread at a simulated
    site (its node config holds a partition-id), torch's default at a deployed one.

    CPU kernels split their sums differently over a different number of threads, so the
    thread count changes a site's model in its last bits. Ray would give a simulated site
    ``client-resources-num-cpus`` threads: fixing it keeps a simulation's results the same
    however many sites train at once."""
    wanted = call.run.training.site_threads or (
        1 if PARTITION_ID in call.context.node_config else 0)
    if wanted and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def _site(context: Context) -> int:
    """This site's name in logs and seeds: its partition in simulation, else its node id."""
    return int(context.node_config.get(PARTITION_ID, context.node_id))
