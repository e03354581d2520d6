"""colearn-fl: co-learning across data centers, as a Lightning plugin on a Flower federation.

Two lines federate a user's own LightningModule and LightningDataModule::

    clientapp = colearn_fl.client_app(module_fn, datamodule_fn)
    serverapp = colearn_fl.server_app(module_fn)
"""

from __future__ import annotations

from colearn_fl.client import client_app
from colearn_fl.server import server_app
from colearn_fl.server_schedule import ServerSchedule

__all__ = ["ServerSchedule", "client_app", "server_app"]
