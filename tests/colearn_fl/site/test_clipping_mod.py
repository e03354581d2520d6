"""The sites' half of central DP: the clipping mod clips float updates, keeps integer buffers,
passes other messages through and fails closed without the server's clipping norm."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)

from colearn_fl.site.clipping_mod import clipping_mod

DP_ON = {"dp-noise-multiplier": 1.0, "dp-clipping-norm": 1.0}


def train_instruction(kind: str = MessageType.TRAIN) -> Message:
    arrays = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32)),
                          "steps": Array(np.array(10, dtype=np.int64))})
    config = ConfigRecord({"server-round": 1, "clipping_norm": 1.0})
    return Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=3,
                   message_type=kind)


def trains_far(msg: Message, context: Context) -> Message:
    """A site whose update is (3, 4, 0, 0) (norm 5) and whose step counter moved by 50."""
    assert list(msg.content["arrays"].keys()) == ["w", "steps"]  # the app sees everything
    arrays = ArrayRecord({"w": Array(np.array([3, 4, 0, 0], dtype=np.float32)),
                          "steps": Array(np.array(60, dtype=np.int64))})
    reply = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 8})})
    return Message(reply, reply_to=msg)


def site_context(run_config: dict) -> Context:
    return Context(run_id=1, node_id=3, node_config={}, state=RecordDict(),
                   run_config=run_config)


def test_clipping_mod_clips_float_update_and_keeps_int_buffers(flower_identity: None) -> None:
    # Execute
    reply = clipping_mod(train_instruction(), site_context(DP_ON), trains_far)
    # Assert: the float update is scaled to norm 1; the int64 counter is untouched
    arrays = reply.content["arrays"]
    assert not reply.has_error()
    assert list(arrays.keys()) == ["w", "steps"]
    np.testing.assert_allclose(arrays["w"].numpy(), [0.6, 0.8, 0, 0], rtol=1e-6)
    assert arrays["w"].dtype == "float32"
    assert arrays["steps"].dtype == "int64" and int(arrays["steps"].numpy()) == 60


@pytest.mark.parametrize(
    ("kind", "run_config"),
    [(MessageType.TRAIN, {}), (MessageType.EVALUATE, DP_ON)],
)
def test_clipping_mod_passes_through_when_off_or_not_training(
    flower_identity: None, kind: str, run_config: dict
) -> None:
    reply = clipping_mod(train_instruction(kind), site_context(run_config), trains_far)
    np.testing.assert_array_equal(reply.content["arrays"]["w"].numpy(), [3, 4, 0, 0])


def test_clipping_mod_fails_closed_without_the_servers_clipping_norm(
    flower_identity: None,
) -> None:
    # Prepare: DP on at the site, but the server did not send clipping_norm
    msg = train_instruction()
    msg.content["config"] = ConfigRecord({"server-round": 1})
    # Execute
    reply = clipping_mod(msg, site_context(DP_ON), trains_far)
    # Assert: an error reply, never an unclipped model
    assert reply.has_error()
    assert "clipping_norm" in reply.error.reason


@pytest.mark.parametrize(("clip", "bit"), [(1.0, 1), (10.0, 0)])
def test_adaptive_clipping_reports_whether_the_site_clipped(
    flower_identity: None, clip: float, bit: int
) -> None:
    # Prepare: dp-clipping='adaptive'; the server's clip of the round is 1 (or 10)
    msg = train_instruction()
    msg.content["config"] = ConfigRecord({"server-round": 1, "clipping_norm": clip})
    # Execute: the update (3, 4, 0, 0) has norm 5
    reply = clipping_mod(msg, site_context({**DP_ON, "dp-clipping": "adaptive"}), trains_far)
    # Assert: Flower's norm_bit (1: clipped) in the metrics; the update scaled to norm
    # min(5, clip); the int64 counter untouched
    arrays = reply.content["arrays"]
    assert reply.content["metrics"]["norm_bit"] == bit
    np.testing.assert_allclose(arrays["w"].numpy(), np.array([3, 4, 0, 0]) * min(1, clip / 5),
                               rtol=1e-6)
    assert arrays["steps"].dtype == "int64" and int(arrays["steps"].numpy()) == 60
