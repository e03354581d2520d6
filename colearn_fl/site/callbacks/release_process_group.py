"""A site's distributed workers (``devices > 1``) destroy their process group at exit.

Lightning registers ``torch.distributed.destroy_process_group`` at exit for NCCL groups only.
A gloo group (workers on CPUs) is left to the interpreter's finalization, where gloo's worker
threads can still hold tensors with Python references: the worker then aborts
("terminate called without an active exception", SIGABRT) after its training finished, and
``ddp_spawn`` turns that into an error reply for the whole round. Destroying the group from an
exit handler, while the interpreter is still whole, is what PyTorch asks of every process that
creates one.
"""

from __future__ import annotations

import atexit

import pytorch_lightning as pl
import torch.distributed as dist


def release_process_group() -> None:
    """Destroy this process's default process group, if it has one (else nothing)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ReleaseProcessGroup(pl.Callback):
    """In each worker whose Trainer set up a process group, destroy it when the worker exits.

    At exit rather than in ``teardown``: hooks that run after this callback's ``teardown``
    (other callbacks', the module's, Lightning's collection of rank 0's results) may still
    use the group.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if dist.is_available() and dist.is_initialized():
            atexit.register(release_process_group)
