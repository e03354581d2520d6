"""Flower's message-API strategies by name: the server optimizer under the co-learning schedule.

``server-optimizer`` picks how the server turns the sites' models into the next global model:
plain weighted averaging (``fedavg``, the paper's), server momentum (``fedavgm``, Hsu et al.
2019), a proximal term at the sites (``fedprox``, Li et al. 2020) or an adaptive server
optimizer (``fedadam``, ``fedyogi``, ``fedadagrad``; Reddi et al. 2021). ``CoLearnSchedule``
adds the round schedule over any of them.

Flower 1.41's adaptive optimizers are not exactly Reddi et al.'s Algorithm 2 (which applies no
bias correction and starts ``v`` at ``v_-1 >= tau**2``), and colearn-fl does not patch them:

- ``FedAdam``, ``FedYogi`` and ``FedAdagrad`` start ``m`` and ``v`` at 0;
- ``FedAdam`` scales ``eta`` by Adam's bias correction with the round plus one,
  ``sqrt(1 - beta_2**(t + 1)) / (1 - beta_1**(t + 1))``: 0.742 at round 1 (betas 0.9 and
  0.99), where Kingma & Ba's correction (exponent ``t``) gives 1.0, so its first step is
  about 0.74 of Adam's. ``FedYogi`` and ``FedAdagrad`` apply no correction.

``tests/strategies/test_server_optimizers.py`` pins FedAdam's first step, so an upgrade of
Flower that changes it shows. Whatever the optimizer, running statistics and non-floating
arrays take the sites' weighted average (``strategies.running_stats``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
)
from flwr.supercore import log

from strategies.errors import ScheduleError

ADAPTIVE = {"fedadam": FedAdam, "fedyogi": FedYogi, "fedadagrad": FedAdagrad}
# Every server optimizer aggregates by the example-weighted mean (then, for the optimizers, a
# server step from it). Exact types: subclasses such as FedMedian aggregate otherwise.
MEAN_BASED = (FedAvg, FedAvgM, FedProx, *ADAPTIVE.values())
SERVER_OPTIMIZERS = ("fedavg", "fedavgm", "fedprox", *ADAPTIVE)
DEFAULT_SERVER_LR = {"fedavgm": 1.0, "fedadam": 0.1, "fedyogi": 0.1, "fedadagrad": 0.1}
# The run-config keys each optimizer reads, and their defaults (a key that differs from its
# default under an optimizer that does not read it is ignored, with a warning).
OPTIMIZER_KEYS = {"fedavg": (), "fedavgm": ("server-lr", "server-momentum"),
                  "fedprox": ("proximal-mu",),
                  **{name: ("server-lr", "server-tau") for name in ADAPTIVE}}
KEY_DEFAULTS = {"server-lr": 0.0, "server-momentum": 0.0, "proximal-mu": 0.0, "server-tau": 1e-3}


def check_server_optimizer(name: str, server_lr: float = 0.0, server_momentum: float = 0.0,
                           proximal_mu: float = 0.0, server_tau: float = 1e-3) -> None:
    """Raise ``ScheduleError`` naming the first server-optimizer key out of range."""
    if name not in SERVER_OPTIMIZERS:
        raise ScheduleError(f"server-optimizer={name!r} is not known; use one of: "
                            f"{', '.join(SERVER_OPTIMIZERS)}.")
    for key, value, ok in (
        ("server-lr", server_lr, server_lr >= 0),
        ("server-momentum", server_momentum, 0 <= server_momentum < 1),
        ("proximal-mu", proximal_mu, proximal_mu >= 0),
        ("server-tau", server_tau, server_tau > 0),
    ):
        if not (math.isfinite(value) and ok):
            raise ScheduleError(f"{key}={value}: out of range (server-lr >= 0, where 0 means "
                                "the optimizer's default; 0 <= server-momentum < 1; "
                                "proximal-mu >= 0; server-tau > 0).")


def server_optimizer(name: str = "fedavg", *, server_lr: float = 0.0,
                     server_momentum: float = 0.0, proximal_mu: float = 0.0,
                     server_tau: float = 1e-3, **kwargs: Any) -> FedAvg:
    """The Flower strategy ``name`` with its own settings.

    Parameters
    ----------
    name : str (default: "fedavg")
        One of ``SERVER_OPTIMIZERS``.
    server_lr : float (default: 0.0)
        FedAvgM's server learning rate, or the adaptive optimizers' ``eta``; 0 = the
        optimizer's default (``DEFAULT_SERVER_LR``).
    server_momentum : float (default: 0.0)
        FedAvgM's server momentum.
    proximal_mu : float (default: 0.0)
        FedProx's proximal weight, sent to the sites as ``proximal-mu``.
    server_tau : float (default: 1e-3)
        The adaptive optimizers' ``tau`` (degree of adaptivity).
    **kwargs : Any
        ``FedAvg``'s arguments (``fraction_train``, ``min_available_nodes``, ...).
    """
    check_server_optimizer(name, server_lr, server_momentum, proximal_mu, server_tau)
    given = {"server-lr": server_lr, "server-momentum": server_momentum,
             "proximal-mu": proximal_mu, "server-tau": server_tau}
    unused = [key for key, value in given.items()
              if value != KEY_DEFAULTS[key] and key not in OPTIMIZER_KEYS[name]]
    if unused:
        log(WARNING, "server-optimizer=%r does not use %s; they are ignored", name,
            ", ".join(unused))
    lr = server_lr or DEFAULT_SERVER_LR.get(name, 1.0)
    if name == "fedavgm":
        return FedAvgM(server_learning_rate=lr, server_momentum=server_momentum, **kwargs)
    if name == "fedprox":
        return FedProx(proximal_mu=proximal_mu, **kwargs)
    if name in ADAPTIVE:
        return ADAPTIVE[name](eta=lr, tau=server_tau, **kwargs)
    return FedAvg(**kwargs)


# What a server optimizer learns over the rounds (flwr 1.41's attribute names): FedAvgM's
# momentum and the model it steps from; FedAdam / FedYogi / FedAdagrad's moments.
OPTIMIZER_STATE = ("current_arrays", "momentum_vector", "m_t", "v_t")


def optimizer_state(strategy: FedAvg) -> dict[str, Any]:
    """A copy of ``strategy``'s server-optimizer state (empty for FedAvg and FedProx), in
    plain NumPy, for a checkpoint: resuming without it would restart momentum and moments at
    zero, a different run than the uninterrupted one."""
    state: dict[str, Any] = {}
    for name in OPTIMIZER_STATE:
        value = getattr(strategy, name, None)
        if isinstance(value, ArrayRecord):
            state[name] = ("arrays", [(k, a.numpy().copy()) for k, a in value.items()])
        elif isinstance(value, dict):
            state[name] = ("dict", [(k, np.array(v, copy=True)) for k, v in value.items()])
        elif isinstance(value, list):
            state[name] = ("list", [np.array(v, copy=True) for v in value])
    return state


def load_optimizer_state(strategy: FedAvg, state: dict[str, Any]) -> None:
    """Put back what ``optimizer_state`` copied (the attributes ``strategy`` has)."""
    for name, (kind, values) in state.items():
        if not hasattr(strategy, name):
            continue
        if kind == "arrays":
            value: Any = ArrayRecord(OrderedDict((k, Array(v)) for k, v in values))
        elif kind == "dict":
            value = dict(values)
        else:
            value = list(values)
        setattr(strategy, name, value)
