"""CoLearnSchedule over Flower's server optimizers: what it sends, what it accepts, and the
aggregate, on hand-computed arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvgM

from strategies import SERVER_OPTIMIZERS, CoLearnSchedule, ScheduleError, server_optimizer
from tests.strategies.test_colearn import StaticGrid, model, reply

ROOT = Path(__file__).resolve().parents[2]


def test_strategies_imports_only_flower_numpy_and_the_standard_library() -> None:
    # Execute: a fresh interpreter imports the whole strategy layer
    code = ("import json, sys, strategies, strategies.wire, strategies.server_optimizers; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    # Assert
    assert not loaded & {"torch", "pytorch_lightning", "lightning", "colearn_fl", "tasks"}


@pytest.mark.parametrize("name", SERVER_OPTIMIZERS)
def test_schedule_over_every_server_optimizer(flower_identity: None, name: str) -> None:
    # Prepare
    inner = server_optimizer(name, proximal_mu=0.1 if name == "fedprox" else 0.0)
    wrapped = CoLearnSchedule(inner, lr_max=0.1, lr_min=0.01, epochs_initial=2,
                              transport_dtype="float16")
    # Execute: round 1 sent, two sites reply (float32 and float16 models)
    messages = list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(),
                                            StaticGrid([1, 2])))
    half = ArrayRecord({"w": Array(np.array([2.0, 4.0], np.float16)), "n": Array(np.array(4))})
    arrays, _ = wrapped.aggregate_train(1, [reply(1, model([1, 2], 2)), reply(2, half)])
    # Assert: the schedule (and FedProx's own key) in the config, the model in float16, and
    # the aggregate in the global model's dtypes whatever the optimizer computes in
    config = dict(messages[0].content["config"])
    assert {k: config[k] for k in ("local-epochs", "lr-schedule", "lr-max", "lr-min")} == {
        "local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.01}
    assert ("proximal-mu" in config) == (name == "fedprox")
    assert messages[0].content["arrays"]["w"].dtype == "float16"
    assert arrays["w"].dtype == "float32" and arrays["n"].dtype == "int64"
    assert np.isfinite(arrays["w"].numpy()).all()
    assert wrapped.rounds[1]["sites-averaged"] == 2


def test_fedavgm_one_round_then_momentum_by_hand(flower_identity: None) -> None:
    # Prepare: server LR 1, momentum 0.9, global w0 = [1, 2]
    wrapped = CoLearnSchedule(FedAvgM(server_learning_rate=1.0, server_momentum=0.9))
    grid = StaticGrid([1, 2])
    # Execute, round 1: replies [0, 0] (weight 1) and [2, 4] (weight 3) average to [1.5, 3];
    # the pseudo-gradient w0 - avg = [-0.5, -1] is the first momentum, so w1 = avg
    list(wrapped.configure_train(1, model([1, 2], 0), ConfigRecord(), grid))
    first, _ = wrapped.aggregate_train(1, [reply(1, model([0, 0], 0), examples=1),
                                           reply(2, model([2, 4], 0), examples=3)])
    # round 2: both reply [2, 4]: pseudo-gradient [1.5, 3] - [2, 4] = [-0.5, -1];
    # momentum 0.9 * [-0.5, -1] + [-0.5, -1] = [-0.95, -1.9]; w2 = [1.5, 3] - momentum
    list(wrapped.configure_train(2, first, ConfigRecord(), grid))
    second, _ = wrapped.aggregate_train(2, [reply(1, model([2, 4], 0)),
                                            reply(2, model([2, 4], 0))])
    # Assert
    np.testing.assert_allclose(first["w"].numpy(), [1.5, 3.0])
    np.testing.assert_allclose(second["w"].numpy(), [2.45, 4.9], rtol=1e-6)
    assert second["w"].dtype == "float32"


def _report(node: int, epochs: int, first: float, last: float) -> Message:
    msg = reply(node, model([1, 1], 1))
    msg.content["metrics"] = MetricRecord({"num-examples": 1, "train-loss": 0.5,
                                           "epochs-run": epochs, "lr-first": first,
                                           "lr-last": last})
    return msg


def test_sites_report_what_they_did_and_a_stock_site_is_named_once(flower_identity: None,
                                                                    caplog) -> None:
    # Prepare: round 1 sends 1 epoch of cosine 0.1 -> 0.01
    wrapped = CoLearnSchedule(server_optimizer("fedavg"), lr_max=0.1, lr_min=0.01)
    grid = StaticGrid([1, 2])
    # Execute: two rounds; node 1 follows, node 2 is a stock client (no report)
    for server_round, epochs in ((1, 1), (2, 2)):
        list(wrapped.configure_train(server_round, model([0, 0], 0), ConfigRecord(), grid))
        _, metrics = wrapped.aggregate_train(server_round, [
            _report(1, epochs, 0.1, 0.0105), reply(2, model([1, 1], 1))])
    # Assert: per-site records, the report never averaged, one warning for node 2
    sites = sorted(wrapped.rounds[2]["site-reports"], key=lambda s: s["node-id"])
    assert [(s["node-id"], s["followed"]) for s in sites] == [(1, True), (2, False)]
    assert sites[0]["epochs-run"] == 2 and sites[0]["lr-first"] == 0.1
    assert wrapped.rounds[2]["sites-following"] == 1
    assert set(metrics) == {"train-loss"}  # FedAvg leaves out the weight itself
    assert caplog.text.count("node 2 did not follow the co-learning schedule") == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_per_epoch_curves_are_recorded_per_site_and_never_averaged(
        flower_identity: None, streaming: bool) -> None:
    # Prepare: two epochs; site 1 validated (its first epoch's accuracy not finite), 2 did not
    wrapped = CoLearnSchedule(server_optimizer("fedavg"), lr_max=0.1, lr_min=0.01,
                              epochs_schedule="fixed", epochs_initial=2,
                              streaming=streaming)
    wrapped.site_names[1] = "site-1"
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    first, second = _report(1, 2, 0.1, 0.0105), _report(2, 2, 0.1, 0.0105)
    first.content["metrics"]["epoch-train-loss"] = [0.9, 0.5]
    first.content["metrics"]["epoch-lr"] = [0.055, 0.0105]
    first.content["metrics"]["epoch-val-acc"] = [float("nan"), 0.75]
    second.content["metrics"]["epoch-train-loss"] = [0.8, 0.4]

    # Execute
    _, metrics = wrapped.aggregate_train(1, [first, second])

    # Assert: each site's series as sent (NaN as None), the averaged metrics without them
    sites = sorted(wrapped.rounds[1]["site-reports"], key=lambda s: s["node-id"])
    assert sites[0]["epochs"] == {"train-loss": [0.9, 0.5], "lr": [0.055, 0.0105],
                                  "val-acc": [None, 0.75]}
    assert sites[1]["epochs"] == {"train-loss": [0.8, 0.4]}
    assert (sites[0]["site"], sites[1]["site"]) == ("site-1", None)
    assert sites[0]["train-loss"] == 0.5
    assert set(metrics) == {"train-loss"}


def test_a_site_that_ran_other_epochs_did_not_follow(flower_identity: None) -> None:
    wrapped = CoLearnSchedule(server_optimizer("fedavg"), lr_max=0.1, lr_min=0.01)
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    wrapped.aggregate_train(1, [_report(1, 3, 0.1, 0.01)])
    assert wrapped.rounds[1]["site-reports"][0]["followed"] is False


def test_evaluation_with_different_metric_names_is_averaged_over_the_shared_ones(
        flower_identity: None) -> None:
    # Prepare: one of our sites and one stock site (snake_case, other names)
    wrapped = CoLearnSchedule(server_optimizer("fedavg"))
    instruction = Message(RecordDict(),
                          dst_node_id=1, message_type=MessageType.EVALUATE)
    ours = Message(RecordDict({"metrics": MetricRecord(
        {"num-examples": 10, "loss": 0.4, "accuracy": 0.9})}), reply_to=instruction)
    stock = Message(RecordDict({"m": MetricRecord(
        {"num_examples": 30, "eval_loss": 0.2, "accuracy": 0.7})}), reply_to=instruction)
    # Execute
    metrics = wrapped.aggregate_evaluate(1, [ours, stock])
    # Assert: weighted by examples over the names both send; the round goes on
    assert set(metrics) == {"accuracy"}
    assert metrics["accuracy"] == pytest.approx((10 * 0.9 + 30 * 0.7) / 40)


def test_bfloat16_failures_are_explained_once(flower_identity: None, caplog) -> None:
    wrapped = CoLearnSchedule(server_optimizer("fedavg"), transport_dtype="bfloat16")
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    instruction = Message(RecordDict(), dst_node_id=2,
                          message_type=MessageType.TRAIN)
    failed = Message(Error(code=1, reason="cannot read bfloat16"), reply_to=instruction)
    wrapped.aggregate_train(1, [reply(1, model([1, 1], 1)), failed])
    assert "transport-dtype='bfloat16'" in caplog.text
    assert "use transport-dtype='float16' or 'float32'" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "sgd"}, "server-optimizer='sgd' is not known; use one of: fedavg"),
        ({"name": "fedavgm", "server_momentum": 1.0}, "server-momentum=1.0"),
        ({"name": "fedprox", "proximal_mu": -1.0}, "proximal-mu=-1.0"),
        ({"name": "fedadam", "server_tau": 0.0}, "server-tau=0.0"),
    ],
)
def test_server_optimizer_errors_name_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        server_optimizer(**kwargs)


def test_a_budget_of_pooled_epochs_is_spread_over_the_rounds() -> None:
    # "7 epochs in 3 rounds", as the run config asks for it
    wrapped = CoLearnSchedule(server_optimizer("fedavg"), epochs_schedule="budget",
                              epochs_budget=7, num_rounds=3)
    assert [wrapped.round_schedule(r)["local-epochs"] for r in (1, 2, 3)] == [1, 2, 4]


def test_running_statistics_are_averaged_never_stepped(flower_identity: None) -> None:
    # Prepare: a BatchNorm variance under FedAvgM (server LR 1, momentum 0.9)
    def bn(var: float, w: float) -> ArrayRecord:
        return ArrayRecord({"w": Array(np.array([w], np.float32)),
                            "bn.running_var": Array(np.array([var], np.float32))})

    wrapped = CoLearnSchedule(FedAvgM(server_learning_rate=1.0, server_momentum=0.9))
    grid = StaticGrid([1, 2])
    list(wrapped.configure_train(1, bn(1.0, 1.0), ConfigRecord(), grid))
    first, _ = wrapped.aggregate_train(1, [reply(1, bn(0.5, 0.5)), reply(2, bn(0.5, 0.5))])
    list(wrapped.configure_train(2, first, ConfigRecord(), grid))
    # Execute: round 2's sites report variance 0.2 (and w 0.2)
    second, _ = wrapped.aggregate_train(2, [reply(1, bn(0.2, 0.2)), reply(2, bn(0.2, 0.2))])
    # Assert: the parameter gets momentum, 0.5 - (0.9 * 0.5 + 0.3) = -0.25; the variance
    # would too (negative: NaN at evaluation) but is the sites' average, 0.2
    np.testing.assert_allclose(second["w"].numpy(), [-0.25], rtol=1e-6)
    np.testing.assert_allclose(second["bn.running_var"].numpy(), [0.2], rtol=1e-6)


def test_a_key_the_optimizer_does_not_read_is_named_once(caplog) -> None:
    server_optimizer("fedavg", server_momentum=0.5)
    server_optimizer("fedadam", server_tau=0.01)  # tau is FedAdam's own: no warning
    assert caplog.text.count("does not use") == 1
    assert "server-optimizer='fedavg' does not use server-momentum" in caplog.text


@pytest.mark.parametrize("name", SERVER_OPTIMIZERS)
def test_integer_buffers_take_the_sites_average_under_every_server_optimizer(
        flower_identity: None, name: str) -> None:
    # Prepare: a parameter and a step counter (not a BatchNorm name); momentum 0.9 for FedAvgM
    def state(w: float, steps: int) -> ArrayRecord:
        return ArrayRecord({"w": Array(np.array([w], np.float32)),
                            "step": Array(np.array(steps, np.int64))})

    wrapped = CoLearnSchedule(server_optimizer(name, server_momentum=0.9 if name == "fedavgm"
                                               else 0.0))
    grid, arrays = StaticGrid([1, 2]), state(0.0, 0)
    # Execute: three rounds in which both sites advanced the counter to 35, then 40, 45
    for server_round, steps in ((1, 35), (2, 40), (3, 45)):
        list(wrapped.configure_train(server_round, arrays, ConfigRecord(), grid))
        arrays, _ = wrapped.aggregate_train(server_round, [reply(1, state(1.0, steps)),
                                                           reply(2, state(1.0, steps))])
    # Assert: the counter is the sites' average, 45, whatever the optimizer does to w
    assert arrays["step"].dtype == "int64" and int(arrays["step"].numpy()) == 45
