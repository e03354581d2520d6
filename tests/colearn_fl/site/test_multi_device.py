"""A site on several devices (node config ``devices``): Lightning's DDP over 2 CPU processes
(gloo) trains like one process on the global batch, and reports the whole site's figures."""

from __future__ import annotations

import atexit
import os

import pytest
import torch
import torch.distributed as dist
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from torch.utils.data import DataLoader, DistributedSampler

from colearn_fl.arrays import arrays_to_state_dict, state_dict_to_arrays
from colearn_fl.errors import ConfigError
from colearn_fl.node_config import SiteDevices
from colearn_fl.site.callbacks.release_process_group import (
    ReleaseProcessGroup,
    release_process_group,
)
from colearn_fl.site.rounds import SiteCall, _trainer, train_round
from tests.tiny import TinyData, TinyLinear, rule_data

ROUND = {"server-round": 1, "local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1,
         "lr-min": 0.001}


class OneReplica(TinyData):
    """One process drawing the order Lightning's DistributedSampler gives 2 workers together:
    the same permutation (seeded by PL_GLOBAL_SEED, which the site sets each round, plus the
    epoch), so one step's batch is the union of the two workers' batches."""

    def train_dataloader(self) -> DataLoader:
        data = rule_data(self.n, self.seed)
        sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True,
                                     seed=int(os.environ["PL_GLOBAL_SEED"]))
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler)


def _train(tmp_path, global_model: TinyLinear, data: TinyData, **node) -> Message:
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 0, "num-partitions": 1,
                                                        **node},
                      state=RecordDict(), run_config={"output-dir": str(tmp_path), "seed": 0})
    msg = Message(RecordDict({"arrays": state_dict_to_arrays(global_model.state_dict()),
                              "config": ConfigRecord(ROUND)}),
                  dst_node_id=5, message_type=MessageType.TRAIN)
    return train_round(msg, SiteCall.of(context, lambda cfg: TinyLinear(), lambda ctx: data))


def test_two_cpu_processes_train_like_one_on_the_global_batch(flower_identity: None,
                                                               tmp_path) -> None:
    # Prepare: one global model, 64 samples
    torch.manual_seed(0)
    global_model = TinyLinear()
    # Execute: 1 process with batches of 32; 2 gloo processes with batches of 16 each (Lightning
    # deals a seeded permutation out to the workers: rank 0 gets its items 0, 2, 4, ..., rank 1
    # items 1, 3, 5, ...; one step's two batches together are the one process's batch)
    one = _train(tmp_path / "one", global_model, OneReplica(n=64, batch_size=32))
    two = _train(tmp_path / "two", global_model, TinyData(n=64, batch_size=16), devices=2,
                 accelerator="cpu")
    # Assert: the same weights (gradients averaged over the ranks = over the global batch);
    # the reply counts the whole site's examples, the same steps, LRs and loss
    a = arrays_to_state_dict(one.content["arrays"])
    b = arrays_to_state_dict(two.content["arrays"])
    assert not torch.equal(a["net.0.weight"], global_model.state_dict()["net.0.weight"])
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    m1, m2 = one.content["metrics"], two.content["metrics"]
    assert m1["num-examples"] == m2["num-examples"] == 64
    assert m1["epochs-run"] == m2["epochs-run"] == 2
    assert m2["lr-first"] == pytest.approx(0.1) and m2["lr-last"] == pytest.approx(m1["lr-last"])
    assert m2["train-loss"] == pytest.approx(m1["train-loss"], rel=1e-5)


def test_node_config_hardware_keys_are_checked() -> None:
    # Assert: defaults; DDP by spawn for several devices; the errors name the key
    assert SiteDevices.from_node_config({}).trainer_kwargs() == {
        "accelerator": "auto", "devices": 1, "strategy": "auto"}
    assert SiteDevices.from_node_config({"devices": 8}).trainer_kwargs()["strategy"] == \
        "ddp_spawn"
    with pytest.raises(ConfigError, match="node config devices=0: expected an int >= 1"):
        SiteDevices.from_node_config({"devices": 0})
    with pytest.raises(ConfigError, match="node config strategy='ddp'.*flwr-clientapp"):
        SiteDevices.from_node_config({"devices": 2, "strategy": "ddp"})
    with pytest.raises(ConfigError, match="node config accelerator='tpu'"):
        SiteDevices.from_node_config({"accelerator": "tpu"})


def test_a_worker_with_a_process_group_destroys_it_at_exit(tmp_path, monkeypatch) -> None:
    # Prepare: this process as a one-worker gloo group (a file store: no port), the exit
    # handlers it registers captured instead of run at the test process's exit
    registered: list = []
    monkeypatch.setattr(atexit, "register", registered.append)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        # Execute: the Trainer's setup hook in a worker, then the worker's exit
        ReleaseProcessGroup().setup(None, None, "fit")  # type: ignore[arg-type]
        assert registered == [release_process_group]
        registered[0]()
        # Assert: the group is gone
        assert not dist.is_initialized()
    finally:
        release_process_group()  # a second release (NCCL: Lightning's own) is a no-op
    # without a group (one device), setup registers nothing
    ReleaseProcessGroup().setup(None, None, "fit")  # type: ignore[arg-type]
    assert registered == [release_process_group]


def test_only_a_site_training_on_several_devices_gets_the_release_callback(tmp_path) -> None:
    # Prepare: a one-device and a two-device site, as their node configs say
    def site(**node) -> SiteCall:
        context = Context(run_id=1, node_id=3, node_config=node, state=RecordDict(),
                          run_config={"output-dir": str(tmp_path)})
        return SiteCall.of(context, lambda cfg: TinyLinear(), lambda ctx: TinyData())

    # Execute: the site's training and evaluation Trainers
    one = _trainer(site(), 1, [], epochs=1)
    two = _trainer(site(accelerator="cpu", devices=2), 1, [], epochs=1)
    evaluation = _trainer(site(accelerator="cpu", devices=2), 1, [])
    # Assert
    assert not any(isinstance(c, ReleaseProcessGroup) for c in one.callbacks)
    assert sum(isinstance(c, ReleaseProcessGroup) for c in two.callbacks) == 1
    assert not any(isinstance(c, ReleaseProcessGroup) for c in evaluation.callbacks)
