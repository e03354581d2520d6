"""A site's part of ``lr-max='auto'``: Lightning's LR range test on the site's own data.

The site runs ``Tuner.lr_find`` from the global model it received: the LR grows exponentially
over ``lr-find-steps`` training steps while the (smoothed) loss is recorded, and the search
stops once the loss exceeds 4x its best (divergence). Lightning restores the model afterwards;
nothing trained here is kept or sent.
"""

from __future__ import annotations

import math
import tempfile

import pytorch_lightning as pl
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from pytorch_lightning.tuner import Tuner

from colearn_fl.errors import ConfigError
from colearn_fl.site.checks import examples_in
from colearn_fl.trainer import make_trainer
from strategies import wire

DIVERGENCE = 4.0  # Lightning's early_stop_threshold: loss above 4x its best = diverged
SKIP_BEGIN = 10  # first steps left out of the minimum (the smoothed loss is unsettled there)
BELOW_MINIMUM = 10.0  # the suggestion: the LR of the lowest loss, divided by this


def range_test(module: pl.LightningModule, datamodule: pl.LightningDataModule, min_lr: float,
               max_lr: float, steps: int, precision: str = "32-true") -> tuple[float, float]:
    """Run the LR range test; return (suggested LR, divergence LR).

    The suggestion is the LR at which the smoothed loss was lowest, divided by 10 (the
    "minimum / 10" rule of the fast.ai LR finder): the largest LR that is still safely below
    where the loss stops falling. Lightning's own ``suggestion()`` takes the steepest slope
    against the LR on a linear axis, which the loss noise at tiny LRs dominates (measured on a
    small MLP that learns best near 0.5: it suggested 2.4e-5). The divergence LR is the LR at
    which the search stopped because the loss diverged, or ``max_lr`` when it never did (so a
    cap derived from it is conservative).
    """
    with tempfile.TemporaryDirectory(prefix="colearn-lr-find-") as folder:
        trainer = make_trainer(precision, [], epochs=1, root_dir=folder)
        trainer.fit_loop.max_epochs = -1  # lr_find sets max_steps; epochs must not stop it
        finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=min_lr,
                                        max_lr=max_lr, num_training=steps,
                                        early_stop_threshold=DIVERGENCE, update_attr=False)
    lrs = finder.results.get("lr", []) if finder is not None else []
    losses = finder.results.get("loss", []) if finder is not None else []
    points = [(loss, lr) for lr, loss in list(zip(lrs, losses, strict=True))[SKIP_BEGIN:]
              if math.isfinite(loss)]
    if not points:
        raise ConfigError(f"lr-max='auto': the LR range test at this site recorded {len(lrs)} "
                          f"step(s), too few for a suggestion (it needs more than "
                          f"{SKIP_BEGIN}); raise lr-find-steps (now {steps}) or set lr-max to "
                          "a number.")
    diverged = lrs[-1] if len(lrs) < steps else max_lr
    return float(min(points)[1] / BELOW_MINIMUM), float(diverged)


def range_test_reply(module: pl.LightningModule, datamodule: pl.LightningDataModule,
                     config: ConfigRecord, msg: Message, precision: str) -> Message:
    """The ``query.lr_find`` reply: ``lr-suggested``, ``lr-diverged`` and ``num-examples``."""
    suggested, diverged = range_test(
        module, datamodule, float(config[wire.LR_FIND_MIN]), float(config[wire.LR_FIND_MAX]),
        int(config[wire.LR_FIND_STEPS]), precision)
    # the weight of this site's answer; unsized data: the batches the test ran
    examples = examples_in(datamodule.train_dataloader()) or int(config[wire.LR_FIND_STEPS])
    metrics = MetricRecord({wire.LR_SUGGESTED: suggested, wire.LR_DIVERGED: diverged,
                            wire.NUM_EXAMPLES: examples})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
