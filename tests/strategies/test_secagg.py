"""Secure aggregation (strategies.secagg) against real site mods in one process: the server
learns the weighted mean, within the quantisation error, and nothing that decodes to a site's
model; sites that drop after sharing keys are recovered down to the threshold."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import Stage
from flwr.serverapp.strategy import FedAvg

from strategies import CoLearnSchedule
from strategies.secagg import SecureAggregationGrid, Settings
from strategies.secagg.site import MASKED
from tests.secagg_fleet import FleetGrid, model, shifted

NODES = [11, 12, 13, 14]
SETTINGS = Settings()
STEP = 2 * SETTINGS.clipping_range / SETTINGS.quantization_range  # one quantisation step


def train_messages(global_model: ArrayRecord, nodes: list[int]) -> list[Message]:
    return [Message(RecordDict({"arrays": global_model,
                                "config": ConfigRecord({"server-round": 1})}),
                    dst_node_id=n, message_type=MessageType.TRAIN) for n in nodes]


def weighted_mean(global_model: ArrayRecord, nodes: list[int]) -> dict[str, np.ndarray]:
    """Plain weighted averaging of what ``shifted`` trains at ``nodes``, in float64."""
    models = [shifted(n, global_model) for n in nodes]
    total = sum(n for _, n in models)
    return {k: sum(m[k].numpy().astype(np.float64) * n for m, n in models) / total
            for k in global_model.keys()}


def secure_round(fleet: FleetGrid, nodes: list[int] = NODES) -> list[Message]:
    grid = SecureAggregationGrid(fleet, SETTINGS)
    return list(grid.send_and_receive(train_messages(model(), nodes), timeout=30))


def assert_mean(reply: Message, expected: dict[str, np.ndarray]) -> None:
    arrays = reply.content["arrays"]
    for key, values in expected.items():
        got = arrays[key].numpy()
        if values.dtype.kind == "f" and key != "bn.num_batches_tracked":
            assert np.abs(got - values).max() <= STEP, key
        else:
            assert got == np.rint(values), key


def test_the_mean_equals_plain_weighted_averaging_within_one_quantisation_step(
        flower_identity: None) -> None:
    # Prepare
    fleet = FleetGrid(NODES)
    # Execute
    replies = secure_round(fleet)
    # Assert: one reply per site, its own metrics, and the same mean model in each
    assert sorted(r.metadata.src_node_id for r in replies) == NODES
    assert not any(r.has_error() for r in replies)
    expected = weighted_mean(model(), NODES)
    for reply in replies:
        assert_mean(reply, expected)
        node = reply.metadata.src_node_id
        assert dict(reply.content["metrics"]) == {"num-examples": 10 * node,
                                                  "train-loss": pytest.approx(0.1 * node)}


def test_nothing_the_server_receives_decodes_to_a_sites_model(flower_identity: None) -> None:
    # Prepare
    fleet = FleetGrid(NODES)
    sent = model()
    # Execute
    secure_round(fleet)
    # Assert: no reply holds a floating array; each masked vector, read as an unmasked one
    # would be, is nowhere near the site's true update
    received = [r for r in fleet.received if not r.has_error()]
    assert len(received) == 4 * len(NODES)  # four stages, every site
    for reply in received:
        for record in reply.content.array_records.values():
            assert all(a.dtype == "int64" for a in record.values())
        if MASKED not in reply.content:
            continue
        node = reply.metadata.src_node_id
        trained, examples = shifted(node, sent)
        vector = reply.content[MASKED]
        assert (vector["0"].numpy() != [examples, 0]).any()  # the count is masked too
        for i, key in enumerate(["w", "b", "bn.running_var"], start=1):
            update = trained[key].numpy() - sent[key].numpy()
            read = vector[str(i)].numpy() / examples * STEP - SETTINGS.clipping_range
            assert np.mean(np.abs(read - update) < 0.05) < 0.05, key


def test_a_site_that_leaves_after_sharing_keys_is_left_out_of_the_mean(
        flower_identity: None) -> None:
    # Prepare: site 14 shares its keys, then never answers again
    fleet = FleetGrid(NODES)
    fleet.leave[14] = Stage.COLLECT_MASKED_VECTORS
    # Execute
    replies = secure_round(fleet)
    # Assert: the mean of the other three, their masks and 14's pairwise masks removed
    assert sorted(r.metadata.src_node_id for r in replies) == NODES[:3]
    expected = weighted_mean(model(), NODES[:3])
    for reply in replies:
        assert_mean(reply, expected)


def test_a_site_that_leaves_before_unmasking_still_counts(flower_identity: None) -> None:
    # Prepare: site 14 sends its masked vector, then never answers the unmask stage
    fleet = FleetGrid(NODES)
    fleet.leave[14] = Stage.UNMASK
    # Execute
    replies = secure_round(fleet)
    # Assert: its vector is in the sum (its seed rebuilt from the others' shares)
    assert sorted(r.metadata.src_node_id for r in replies) == NODES
    assert_mean(replies[0], weighted_mean(model(), NODES))


def test_below_the_threshold_the_round_fails_with_one_line(
        flower_identity: None, caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: 2 of 4 sites leave after sharing keys; the threshold (a majority) is 3
    fleet = FleetGrid(NODES)
    fleet.leave.update({13: Stage.COLLECT_MASKED_VECTORS, 14: Stage.COLLECT_MASKED_VECTORS})
    # Execute
    with caplog.at_level(logging.WARNING, logger="flwr"):
        replies = secure_round(fleet)
    # Assert: every reply is an error; the log says it once, with the counts
    line = ("secure aggregation failed: 2 of 4 sites dropped out (at the collect masked "
            "vectors stage), 2 remain, fewer than secagg-threshold=3")
    assert all(r.has_error() and line in r.error.reason for r in replies)
    assert [r.getMessage() for r in caplog.records if line in r.getMessage()] == [
        f"Round 1: {line}; the round is not aggregated"]


def test_a_round_out_of_time_says_so(flower_identity: None) -> None:
    # Prepare: no time left for any stage (every site then counts as dropped)
    grid = SecureAggregationGrid(FleetGrid(NODES), SETTINGS)
    # Execute
    replies = list(grid.send_and_receive(train_messages(model(), NODES), timeout=0.0))
    # Assert
    assert all("4 of 4 sites dropped out (at the setup stage, round-timeout passed)"
               in r.error.reason for r in replies)


def test_a_threshold_above_the_sampled_sites_fails_the_round(flower_identity: None) -> None:
    grid = SecureAggregationGrid(FleetGrid(NODES), Settings(threshold=5))
    replies = list(grid.send_and_receive(train_messages(model(), NODES), timeout=5))
    assert all("secagg-threshold=5 > the 4 site(s) sampled" in r.error.reason for r in replies)


def test_other_messages_pass_through(flower_identity: None) -> None:
    # Prepare: an evaluation message, which the fleet's app has no handler for
    fleet = FleetGrid(NODES[:2])
    grid = SecureAggregationGrid(fleet)
    msg = Message(RecordDict(), dst_node_id=11, message_type=MessageType.EVALUATE)
    # Execute
    replies = list(grid.send_and_receive([msg]))
    # Assert: sent as it was (the app's own error: no evaluate function), no secure round
    assert "No evaluate function registered" in replies[0].error.reason
    assert grid.rounds == []


def test_colearn_schedule_over_fedavg_learns_the_plain_runs_model(
        flower_identity: None) -> None:
    # Prepare: two rounds of the same sites, plain and secure
    records = {}

    def run(secure: bool) -> ArrayRecord:
        fleet = FleetGrid(NODES)
        strategy = CoLearnSchedule(FedAvg(min_available_nodes=4, fraction_evaluate=0.0),
                                   lr_max=0.1, lr_min=0.01)
        grid = SecureAggregationGrid(fleet, SETTINGS, strategy.rounds) if secure else fleet
        arrays = strategy.start(grid=grid, initial_arrays=model(), num_rounds=2,
                                timeout=30).arrays
        records.update(strategy.rounds)
        return arrays
    # Execute
    plain, secure = run(False), run(True)
    # Assert: every site averaged, the protocol's traffic recorded next to the round's
    assert [records[r]["sites-averaged"] for r in (1, 2)] == [4, 4]
    assert all(records[r]["bytes-secagg-received"] > records[r]["bytes-received"] / 2
               for r in (1, 2))
    # and the same model, to the quantisation error of two rounds
    for key in plain.keys():
        assert np.abs(secure[key].numpy() - plain[key].numpy()).max() <= 2 * STEP + 1e-7, key
        assert secure[key].dtype == plain[key].dtype
