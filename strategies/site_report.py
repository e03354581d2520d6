"""What a site reports it did in a round (epochs, first and last LR), checked against what
the server sent: recorded with the round, never averaged."""

from __future__ import annotations

from typing import Any

from strategies.cycles import lr_at
from strategies.wire import EPOCHS_RUN, LOCAL_EPOCHS, LR_FIRST, LR_LAST, LR_MAX, LR_MIN, LR_SCHEDULE

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
