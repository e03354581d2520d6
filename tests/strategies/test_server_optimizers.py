"""Flower's server optimizers as colearn-fl runs them: what Flower 1.41 computes, pinned on
hand-computed numbers (the docstring of strategies.server_optimizers says how it differs from
the papers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from strategies import CoLearnSchedule, server_optimizer
from tests.strategies.test_colearn import StaticGrid, reply


def test_flowers_fedadam_corrects_its_bias_with_round_plus_one(flower_identity: None) -> None:
    # Prepare: FedAdam, eta 0.1, betas 0.9 / 0.99, a tiny tau; w0 = 0, both sites reply 1
    wrapped = CoLearnSchedule(server_optimizer("fedadam", server_lr=0.1, server_tau=1e-9))
    w0 = ArrayRecord({"w": Array(np.zeros(1, np.float32))})
    list(wrapped.configure_train(1, w0, ConfigRecord(), StaticGrid([1, 2])))
    one = ArrayRecord({"w": Array(np.ones(1, np.float32))})
    # Execute: round 1
    arrays, _ = wrapped.aggregate_train(1, [reply(1, one), reply(2, one)])
    # Assert: delta 1, m = 0.1, v = 0.01 (both from 0); Flower's step is
    # eta * sqrt(1 - 0.99^2) / (1 - 0.9^2) * m / sqrt(v) = 0.1 * 0.7425; Kingma & Ba's
    # correction (exponent t = 1) would give 0.1 * 1.0, Reddi et al.'s Algorithm 2 (no
    # correction, v from tau^2) 0.1 * 0.1 / (0.1 + tau)
    factor = math.sqrt(1 - 0.99 ** 2) / (1 - 0.9 ** 2)
    assert factor == pytest.approx(0.7425, abs=1e-4)
    assert float(arrays["w"].numpy()[0]) == pytest.approx(0.1 * factor, rel=1e-5)
