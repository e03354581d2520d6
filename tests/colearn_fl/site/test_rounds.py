"""The site's train/evaluate handlers on a tiny module, called as Flower calls them."""

from __future__ import annotations

import math

import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from torch.utils.data import DataLoader

from colearn_fl.arrays import arrays_to_state_dict, state_dict_to_arrays
from colearn_fl.errors import ConfigError
from colearn_fl.site.rounds import (
    SiteCall,
    _no_schedule,
    data_check_round,
    evaluate_round,
    train_round,
)
from tests.tiny import TinyClassifier, TinyData, rule_data


def context(tmp_path) -> Context:
    return Context(run_id=7, node_id=3, node_config={"partition-id": 1, "num-partitions": 2},
                   state=RecordDict(), run_config={"output-dir": str(tmp_path), "seed": 0})


def instruction(kind: str, module: TinyClassifier, **config) -> Message:
    content = RecordDict({"arrays": state_dict_to_arrays(module.state_dict()),
                          "config": ConfigRecord({"server-round": 1, **config})})
    return Message(content, dst_node_id=3, message_type=kind)


ROUND = {"local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.001}


def test_train_round_replies_weights_examples_and_loss(flower_identity: None, tmp_path) -> None:
    # Prepare
    torch.manual_seed(0)
    global_model = TinyClassifier()
    msg = instruction(MessageType.TRAIN, global_model, **ROUND)
    # Execute
    reply = train_round(msg, SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                        lambda ctx: TinyData(n=48)))
    # Assert: full state_dict back (buffers included), trained, with the round's metrics
    state = arrays_to_state_dict(reply.content["arrays"])
    assert list(state) == list(global_model.state_dict())
    assert state["net.1.num_batches_tracked"].dtype == torch.int64
    assert int(state["net.1.num_batches_tracked"]) == 6  # 2 epochs x 3 batches
    assert not torch.equal(state["net.0.weight"], global_model.state_dict()["net.0.weight"])
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == 48
    assert math.isfinite(metrics["train-loss"])
    # what the site did: 2 epochs of 3 steps; cosine from 0.1, step 5 of 6 at position 5/6
    assert set(metrics) == {"num-examples", "train-loss", "epochs-run", "lr-first", "lr-last",
                            "epoch-train-loss", "epoch-lr", "epoch-loss", "epoch-accuracy"}
    assert metrics["epochs-run"] == 2 and metrics["lr-first"] == pytest.approx(0.1)
    cosine = 0.5 * (1 + math.cos(math.pi * 5 / 6))
    assert metrics["lr-last"] == pytest.approx(0.001 + 0.099 * cosine)
    # per epoch (TinyData validates): the LR each epoch ended on, the validation figures
    assert metrics["epoch-lr"][-1] == pytest.approx(metrics["lr-last"])
    assert len(metrics["epoch-lr"]) == len(metrics["epoch-accuracy"]) == 2
    assert (tmp_path / "run-7" / "sites" / "site-1" / "round-1-train").is_dir()



def test_a_training_round_draws_no_progress_bar(flower_identity: None, tmp_path,
                                                capsys) -> None:
    # Execute
    train_round(instruction(MessageType.TRAIN, TinyClassifier(), **ROUND),
                SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                            lambda ctx: TinyData(n=48)))
    # Assert: no bar redrawn per batch (Lightning's tqdm bar writes "it/s")
    out = capsys.readouterr()
    assert "it/s" not in out.out + out.err

def test_train_round_starts_from_the_global_weights(flower_identity: None, tmp_path) -> None:
    # Prepare: a global model whose weights differ from a fresh module's
    global_model = TinyClassifier()
    with torch.no_grad():
        for p in global_model.parameters():
            p.fill_(0.5)
    msg = instruction(MessageType.TRAIN, global_model, **{**ROUND, "lr-max": 1e-12,
                                                        "lr-min": 0.0, "local-epochs": 1})
    # Execute: an LR so small that training cannot move the weights measurably
    reply = train_round(msg, SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                        lambda ctx: TinyData(n=16)))
    # Assert
    weight = arrays_to_state_dict(reply.content["arrays"])["net.0.weight"]
    assert torch.allclose(weight, torch.full_like(weight, 0.5))


def test_evaluate_round_replies_examples_and_logged_metrics(flower_identity: None,
                                                            tmp_path) -> None:
    msg = instruction(MessageType.EVALUATE, TinyClassifier())
    reply = evaluate_round(msg, SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                           lambda ctx: TinyData(n=40)))
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == 20
    assert set(metrics) == {"num-examples", "loss", "accuracy"}
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert "arrays" not in reply.content


def test_zero_epochs_is_refused(flower_identity: None, tmp_path) -> None:
    msg = instruction(MessageType.TRAIN, TinyClassifier(), **{**ROUND, "local-epochs": 0})
    with pytest.raises(ConfigError, match="local-epochs=0"):
        train_round(msg, SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                    lambda ctx: TinyData()))


def test_without_a_schedule_the_site_trains_epochs_initial_with_its_own_lr(
        flower_identity: None, tmp_path, caplog) -> None:
    # Prepare: a stock Flower server sends only server-round; this run says epochs-initial=2
    msg = instruction(MessageType.TRAIN, TinyClassifier())
    ctx = context(tmp_path)
    ctx.run_config["epochs-initial"] = 2
    _no_schedule.cache_clear()  # said once per process: let this test see it
    # Execute
    reply = train_round(msg, SiteCall.of(ctx, lambda cfg: TinyClassifier(),
                                         lambda ctx: TinyData(n=32)))
    # Assert: 2 epochs at the module's own SGD LR (0.123), said once in the log
    metrics = reply.content["metrics"]
    assert metrics["epochs-run"] == 2
    assert metrics["lr-first"] == metrics["lr-last"] == pytest.approx(0.123)
    assert "no co-learning schedule (local-epochs, lr-schedule, lr-max, lr-min missing)" in (
        caplog.text)


def _update_norm(tmp_path, mu: float) -> float:
    torch.manual_seed(0)
    global_model = TinyClassifier()
    msg = instruction(MessageType.TRAIN, global_model, **ROUND, **{"proximal-mu": mu})
    reply = train_round(msg, SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                        lambda ctx: TinyData(n=64)))
    trained = arrays_to_state_dict(reply.content["arrays"])
    return float(sum(((trained[k] - v) ** 2).sum() for k, v in
                     global_model.named_parameters()) ** 0.5)


def test_fedprox_proximal_mu_shrinks_the_update(flower_identity: None, tmp_path) -> None:
    # Execute: the same round and seed with a growing proximal weight
    norms = [_update_norm(tmp_path, mu) for mu in (0.0, 1.0, 10.0)]
    # Assert: the pull towards the global model shrinks the update
    assert norms[0] > norms[1] > norms[2] > 0


class Stream(torch.utils.data.IterableDataset):
    """An unsized stream (no ``len``) of ``rule_data``'s samples, as streaming pipelines are."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        return iter(rule_data(self.n, 0))


class StreamData(TinyData):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(Stream(self.n), batch_size=self.batch_size)


def test_a_site_with_unsized_data_trains_counts_its_examples_and_follows_the_cycle(
    flower_identity: None, tmp_path
) -> None:
    # Prepare: 48 samples in batches of 16 (3 steps per epoch), 2 epochs
    msg = instruction(MessageType.TRAIN, TinyClassifier(), **ROUND)
    call = SiteCall.of(context(tmp_path), lambda cfg: TinyClassifier(),
                       lambda ctx: StreamData(n=48))
    # Execute
    reply = train_round(msg, call)
    check = data_check_round(instruction("query.data_check", TinyClassifier()), call)
    # Assert: counted during fit; the cycle spans the 6 steps (last step at 5/6)
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == 48
    cosine = 0.5 * (1 + math.cos(math.pi * 5 / 6))
    assert metrics["lr-last"] == pytest.approx(0.001 + 0.099 * cosine)
    assert dict(check.content["metrics"]) == {"train-unsized": 1, "val-examples": 24}
