"""The site's secure aggregation mod: it checks its own model before it masks it (the reply
checks the server can no longer make), and never sends a model in the clear when its run
config asks for secure aggregation."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from colearn_fl.errors import ConfigError
from colearn_fl.site.secagg_mod import secagg_mod
from strategies.secagg import SecureAggregationGrid
from tests.secagg_fleet import FleetGrid, model, shifted

NODES = [1, 2, 3, 4]


def broken_at(node: int, how: str):
    """``shifted``, except that site ``node`` returns a model with a NaN or a wrong shape."""
    def train(at: int, received: ArrayRecord) -> tuple[ArrayRecord, int]:
        trained, examples = shifted(at, received)
        if at != node:
            return trained, examples
        arrays = OrderedDict((k, a.numpy()) for k, a in trained.items())
        arrays["w"] = (np.full_like(arrays["w"], np.nan) if how == "nan"
                       else np.zeros((2, 2), dtype=np.float32))
        return ArrayRecord(OrderedDict((k, Array(v)) for k, v in arrays.items())), examples
    return train


def round_messages(nodes: list[int]) -> list[Message]:
    return [Message(RecordDict({"arrays": model(), "config": ConfigRecord({"server-round": 1})}),
                    dst_node_id=n, message_type=MessageType.TRAIN) for n in nodes]


@pytest.mark.parametrize(("how", "why"), [
    ("nan", "'w' holds non-finite values"),
    ("shape", "'w' has shape (2, 2), the global model (6, 5)")])
def test_a_site_refuses_to_mask_a_model_that_would_spoil_the_sum(
        flower_identity: None, how: str, why: str) -> None:
    # Prepare: site 4 trains a model the server would have dropped
    fleet = FleetGrid(NODES, train=broken_at(4, how))
    # Execute
    replies = list(SecureAggregationGrid(fleet).send_and_receive(round_messages(NODES)))
    # Assert: its error reply says why; the round averages the other three
    failed = [r for r in replies if r.has_error()]
    assert [r.metadata.src_node_id for r in failed] == [4]
    assert "does not fit the sum, so it is not sent" in failed[0].error.reason
    assert why in failed[0].error.reason
    averaged = [r for r in replies if not r.has_error()]
    assert sorted(r.metadata.src_node_id for r in averaged) == [1, 2, 3]
    models = [shifted(n, model()) for n in (1, 2, 3)]
    expected = sum(m["w"].numpy().astype(np.float64) * n for m, n in models) / 60
    assert np.abs(averaged[0].content["arrays"]["w"].numpy() - expected).max() < 1e-7


def test_a_site_refuses_a_fractional_example_count(flower_identity: None) -> None:
    def train(at: int, received: ArrayRecord) -> tuple[ArrayRecord, int]:
        trained, _ = shifted(at, received)
        return trained, 2.5 if at == 2 else 10  # type: ignore[return-value]

    replies = list(SecureAggregationGrid(FleetGrid(NODES[:3], train=train)).send_and_receive(
        round_messages(NODES[:3])))
    failed = [r for r in replies if r.has_error()]
    assert [r.metadata.src_node_id for r in failed] == [2]
    assert "'num-examples' is 2.5: secure aggregation weighs" in failed[0].error.reason


def test_a_site_under_secure_aggregation_never_sends_its_model_in_the_clear(
        flower_identity: None) -> None:
    # Prepare: a plain training message to a site whose run config asks for secure aggregation
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                      run_config={"secure-aggregation": True})
    msg = round_messages([1])[0]
    trained = []
    # Execute / Assert: the app never trains
    with pytest.raises(ConfigError, match="asked for this site's model in the clear"):
        secagg_mod(msg, context, lambda m, c: trained.append(m))  # type: ignore[arg-type]
    assert trained == []


@pytest.mark.parametrize(("message_type", "secure"), [
    (MessageType.TRAIN, False), (MessageType.EVALUATE, True), ("query.bn_refresh", True)])
def test_other_messages_pass_through(flower_identity: None, message_type: str,
                                     secure: bool) -> None:
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                      run_config={"secure-aggregation": secure})
    msg = Message(RecordDict({"arrays": model()}), dst_node_id=1, message_type=message_type)
    seen = []
    secagg_mod(msg, context, lambda m, c: seen.append(m))  # type: ignore[arg-type]
    assert seen == [msg]
