"""CoLearn: the paper's configuration of the co-learning schedule, over FedAvg."""

from __future__ import annotations

import inspect
from typing import Any

from flwr.serverapp.strategy import FedAvg

from strategies.colearn_schedule import CoLearnSchedule

# CoLearnSchedule's own keyword arguments; CoLearn passes every other one to FedAvg.
SCHEDULE_ARGUMENTS = tuple(inspect.signature(CoLearnSchedule.__init__).parameters)[2:]


class CoLearn(CoLearnSchedule):
    """Co-learning across data centers: ``CoLearnSchedule`` over ``FedAvg``.

    Implementation of Mi et al., "Collaborative deep learning across multiple data centers",
    Sci China Inf Sci 63:182102 (2020), https://arxiv.org/abs/1810.06877: each round the
    server sends the global model with the round's number of local epochs (ILE) and the LR
    cycle the sites follow inside the round (CLR), then averages the sites' full state_dicts
    weighted by ``num-examples``. FedAvg is this class with ``lr_schedule="constant"`` and
    ``epochs_schedule="fixed"``. To add the schedule to another Flower strategy (FedAvgM,
    FedProx, FedAdam, ...), wrap it: ``CoLearnSchedule(FedAdam(...), lr_max=...)``.

    Parameters
    ----------
    **kwargs : Any
        ``CoLearnSchedule``'s keyword arguments (``lr_schedule``, ``lr_max``, ``lr_min``,
        ``lr_gamma``, ``epochs_schedule``, ``epochs_initial``, ``epochs_mult``,
        ``epochs_step``, ``transport_dtype``, ``round_offset``) and ``FedAvg``'s
        (``fraction_train``, ``min_available_nodes``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        schedule = {key: kwargs.pop(key) for key in SCHEDULE_ARGUMENTS if key in kwargs}
        super().__init__(FedAvg(**kwargs), **schedule)
