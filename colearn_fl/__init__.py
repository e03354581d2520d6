"""colearn-fl: co-learning across data centers, as a Lightning plugin on a Flower federation.

Two lines federate a user's own LightningModule and LightningDataModule::

    clientapp = colearn_fl.client_app(module_fn, datamodule_fn)
    serverapp = colearn_fl.server_app(module_fn)

and ``colearn_fl.shard(dataset, context)`` gives a ``datamodule_fn`` its site's share of one
Dataset in a simulation and all of a deployed site's own data (``site_of(context)``: which
site this is).

``import colearn_fl`` is cheap: torch, Lightning and Flower are imported when one of these
names is first used (``simulate`` and the CLI's ``--help`` stay fast, and a tool that only
reads the package's metadata pays nothing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it (imported on first use).
_PUBLIC = {
    "client_app": "colearn_fl.site.client_app",
    "server_app": "colearn_fl.server.server_app",
    "simulate": "colearn_fl.simulation",
    "LRCycle": "colearn_fl.site.callbacks.lr_cycle",
    "site_of": "colearn_fl.node_config",
    "shard": "colearn_fl.node_config",
}

__all__ = ["LRCycle", "client_app", "server_app", "shard", "simulate", "site_of"]  # sorted

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from colearn_fl.node_config import shard, site_of
    from colearn_fl.server.server_app import server_app
    from colearn_fl.simulation import simulate
    from colearn_fl.site.callbacks.lr_cycle import LRCycle
    from colearn_fl.site.client_app import client_app


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'colearn_fl' has no attribute {name!r}; its public "
                             f"names are {', '.join(__all__)}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
