"""``KeepOptimizerState``: a site's optimizer state lives on from one round to the next
(``optimizer-state='keep'``), while the server's cycle still sets the LR."""

from __future__ import annotations

import io

import pytorch_lightning as pl
import torch
from flwr.app import ConfigRecord, RecordDict
from pytorch_lightning.callbacks import Callback
from typing_extensions import override

STATE_KEY = "colearn-optimizer-state"  # the site's context.state record that holds it
GROUP_KEEPS = ("lr", "initial_lr")  # what the new round's optimizer keeps over the saved one


class KeepOptimizerState(Callback):
    """Restore the optimizers' state saved at the end of this site's previous round before
    training starts, and save it again when training ends.

    Adam's moments and SGD's momentum buffers then carry over between rounds, as in one long
    local run (they are the site's own: they never cross the wire, and they describe the
    site's last model, not the new global one). The LR of each param group stays what this
    round's ``configure_optimizers`` built, so ``LRCycle`` scales it as usual.

    Parameters
    ----------
    store : RecordDict
        Where the state is kept between rounds: the ClientApp's ``context.state``, which
        Flower keeps per node for as long as the SuperNode (or the simulation) runs. It holds
        one copy of the optimizers' state: for Adam, twice the model's parameters.
    """

    def __init__(self, store: RecordDict) -> None:
        self.store = store

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saved = self.store.get(STATE_KEY)
        if saved is None:
            return
        states = torch.load(io.BytesIO(saved["optimizers"]), weights_only=True)
        if len(states) != len(trainer.optimizers):
            return  # the module's optimizers changed: start afresh
        for optimizer, state in zip(trainer.optimizers, states, strict=True):
            kept = [{k: g[k] for k in GROUP_KEEPS if k in g} for g in optimizer.param_groups]
            optimizer.load_state_dict(state)
            for group, values in zip(optimizer.param_groups, kept, strict=True):
                group.update(values)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        buffer = io.BytesIO()
        torch.save([optimizer.state_dict() for optimizer in trainer.optimizers], buffer)
        self.store[STATE_KEY] = ConfigRecord({"optimizers": buffer.getvalue()})
