"""colearn-fl: co-learning across data centers, as a Lightning plugin on a Flower federation.

Two lines federate a user's own LightningModule and LightningDataModule::

    clientapp = colearn_fl.client_app(module_fn, datamodule_fn)
    serverapp = colearn_fl.server_app(module_fn)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSchedule", "client_app", "server_app"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `strategies` and `tasks` can use colearn_fl's small modules
    # (errors, config, arrays) without a circular import through the apps.
    if name == "client_app":
        from colearn_fl.client import client_app

        return client_app
    if name == "server_app":
        from colearn_fl.server import server_app

        return server_app
    if name == "ServerSchedule":
        from colearn_fl.callback import ServerSchedule

        return ServerSchedule
    raise AttributeError(f"module 'colearn_fl' has no attribute {name!r}")
