"""What a site reports it did in a round (epochs, first and last LR, its per-epoch curves),
checked against what the server sent: recorded with the round, never averaged."""

from __future__ import annotations

import math
from typing import Any

from strategies.checks import Checked
from strategies.cycles import lr_at
from strategies.wire import (
    EPOCH_PREFIX,
    EPOCHS_RUN,
    LOCAL_EPOCHS,
    LR_FIRST,
    LR_LAST,
    LR_MAX,
    LR_MIN,
    LR_SCHEDULE,
)

SITE_REPORT = (EPOCHS_RUN, LR_FIRST, LR_LAST)  # what a site did; recorded, never averaged
LR_TOLERANCE = 1e-6  # relative: a reported LR within this of the cycle's counts as followed


def followed_schedule(sent: dict[str, Any], did: dict[str, Any]) -> bool:
    """Whether a site's report matches the round's epochs and LR cycle."""
    if set(did) != set(SITE_REPORT) or did[EPOCHS_RUN] != sent[LOCAL_EPOCHS]:
        return False
    top, bottom = sent[LR_MAX], sent[LR_MIN]
    start = lr_at(sent[LR_SCHEDULE], 0.0, top, bottom)
    slack = LR_TOLERANCE * max(top, 1e-12)
    return (abs(did[LR_FIRST] - start) <= slack
            and bottom - slack <= did[LR_LAST] <= top + slack)


def epoch_curves(checked: Checked) -> dict[str, list[float | None]]:
    """A reply's per-epoch series (``epoch-<name>`` metrics, which ``check_reply`` keeps apart
    from those averaged) as ``{name: one value per epoch}``; a value that is not a finite
    number (an epoch without that metric) is ``None``."""
    curves: dict[str, list[float | None]] = {}
    for key, value in checked.epochs.items():
        values = value if isinstance(value, list) else [value]
        curves[key.removeprefix(EPOCH_PREFIX)] = [
            float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
            for v in values]
    return curves
