"""The site side: a Flower ClientApp that trains and evaluates a user's LightningModule."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError
from colearn_fl.node_config import site_name
from colearn_fl.site.clipping_mod import clipping_mod
from colearn_fl.site.secagg_mod import secagg_mod
from strategies import wire

if TYPE_CHECKING:
    from colearn_fl.task_adapter import DataModuleFn, LoggerFn, ModuleFn

# Each message type's handler in ``colearn_fl.site.rounds``, imported with the first message:
# a ClientApp loads without torch or Lightning, so Flower's simulation starts Ray (and the
# server imports torch) at once instead of after those imports.
HANDLERS = {"train": "train_round", "evaluate": "evaluate_round",
            wire.BN_REFRESH: "refresh_round", wire.LR_FIND: "lr_find_round",
            wire.DATA_CHECK: "data_check_round"}
ROUNDS = "colearn_fl.site.rounds"


def client_app(
    module_fn: ModuleFn, datamodule_fn: DataModuleFn, mods: list[Mod] | None = None,
    logger_fn: LoggerFn | None = None,
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
        colearn-fl's DP clipping mod (``colearn_fl.site.clipping_mod.clipping_mod``, a pass-through
        unless ``dp-noise-multiplier > 0``), so they see each reply exactly as it leaves the
        site, and inside the secure aggregation mod (``colearn_fl.site.secagg_mod``, which
        masks the model under ``secure-aggregation=true``), so they see it in the clear.
    logger_fn : Callable[[dict, str, str], Logger], optional
        Your own Lightning logger (W&B, Comet, Neptune, ...) for each round's Trainer at this
        site: ``logger_fn(run_config, "site-<s>", "round-<r>-train")``; it logs besides the
        ``logger`` key's (set ``logger='none'`` for yours alone).

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
    app = ClientApp(mods=[secagg_mod, *(mods or []), clipping_mod])
    return register_site_functions(app, lambda run: (module_fn, datamodule_fn),
                                   logger_fn=logger_fn)


SiteFactories = Callable[[RunConfig], "tuple[ModuleFn, DataModuleFn]"]  # a run's factories
ContextView = Callable[[Context], Context]  # the context a site's functions see


def register_site_functions(app: ClientApp, factories: SiteFactories,
                            view: ContextView | None = None,
                            logger_fn: LoggerFn | None = None) -> ClientApp:
    """Register co-learning's site functions on ``app``: ``train``, ``evaluate`` and the
    query actions of ``strategies.wire`` (``bn_refresh``, ``lr_find``).

    Each message's run config is parsed once, here, and passed down. ``factories(run)``
    gives the run's module and data factories, and ``view(context)`` the context the
    functions see (``simulate``: one holding its run config); the one place ``client_app``,
    ``colearn_fl.apps`` and ``simulate`` differ. ``logger_fn``: the user's own logger.
    """
    for message_type, handler in HANDLERS.items():
        category, _, action = message_type.partition(".")
        register = getattr(app, category)(action) if action else getattr(app, category)()
        register(_bound(handler, factories, view, logger_fn))
    return app


def _bound(handler: str, factories: SiteFactories, view: ContextView | None,
           logger_fn: LoggerFn | None) -> Callable[[Message, Context], Message]:
    def function(msg: Message, context: Context) -> Message:
        seen = view(context) if view else context
        try:
            run = RunConfig.from_dict(seen.run_config)  # once per message
            module_fn, datamodule_fn = factories(run)
            rounds = importlib.import_module(ROUNDS)  # torch and Lightning: first message
            return getattr(rounds, handler)(
                msg, rounds.SiteCall(seen, run, module_fn, datamodule_fn, logger_fn))
        except ColearnError as error:  # the server's log names the site, as its results do
            raise type(error)(f"[{site_name(seen)}] {error}") from error

    function.__name__ = handler
    return function
