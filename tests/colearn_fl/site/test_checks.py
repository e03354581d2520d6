"""A user module's edge cases at a site, each with the error that names the fix: no
optimizer, no loss, no (or empty) validation data, too few examples for one batch, a module
that does not fit the global model."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from torch import nn
from torch.utils.data import DataLoader

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.errors import ConfigError, DataError
from colearn_fl.site.rounds import SiteCall, data_check_round, evaluate_round, train_round
from tests.tiny import TinyClassifier, TinyData, rule_data

ROUND = {"server-round": 1, "local-epochs": 1, "lr-schedule": "cosine", "lr-max": 0.1,
         "lr-min": 0.001}


def call(tmp_path, module_fn=lambda cfg: TinyClassifier(), data=None) -> SiteCall:
    context = Context(run_id=7, node_id=3, state=RecordDict(),
                      node_config={"partition-id": 0, "num-partitions": 1},
                      run_config={"output-dir": str(tmp_path)})
    return SiteCall.of(context, module_fn, lambda ctx: data or TinyData(n=32))


def message(kind: str, module: nn.Module | None = None) -> Message:
    arrays = state_dict_to_arrays((module or TinyClassifier()).state_dict())
    return Message(RecordDict({"arrays": arrays, "config": ConfigRecord(ROUND)}),
                   dst_node_id=3, message_type=kind)


class NoOptimizer(TinyClassifier):
    def configure_optimizers(self):
        return None


class NoLoss(TinyClassifier):
    def training_step(self, batch, batch_idx):
        self(batch[0])  # computes, returns nothing


class NoValidation(pl.LightningDataModule):
    """Training data only: no val_dataloader."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(32, 0), batch_size=16)


class EmptyValidation(TinyData):
    def val_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(0, 1), batch_size=16)


class DropLast(TinyData):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(10, 0), batch_size=16, drop_last=True)


class Wider(TinyClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, 2))


def test_no_optimizer_names_configure_optimizers(flower_identity: None, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"NoOptimizer.configure_optimizers\(\) returned no "
                                          r"optimizer.*torch.optim.SGD"):
        train_round(message(MessageType.TRAIN), call(tmp_path, lambda cfg: NoOptimizer()))


def test_no_loss_says_training_step_returned_none(flower_identity: None, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no training_step of NoLoss returned a loss.*"
                                          r"Return the loss tensor"):
        train_round(message(MessageType.TRAIN), call(tmp_path, lambda cfg: NoLoss()))


@pytest.mark.parametrize(("data", "match"), [
    (NoValidation(), "NoValidation has no val_dataloader.*fraction-evaluate=0"),
    (EmptyValidation(), r"EmptyValidation.val_dataloader\(\) is empty.*fraction-evaluate=0"),
])
def test_a_site_without_validation_data_says_how_to_turn_evaluation_off(
    flower_identity: None, tmp_path, data: TinyData, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        evaluate_round(message(MessageType.EVALUATE), call(tmp_path, data=data))
    check = data_check_round(message("query.data_check"), call(tmp_path, data=data))
    assert check.content["metrics"]["val-examples"] == 0


def test_fewer_examples_than_one_batch_fail_the_data_check(flower_identity: None,
                                                           tmp_path) -> None:
    with pytest.raises(DataError, match=r"yields no batch: 10 example\(s\) in batches of 16 "
                                        r"with drop_last=True"):
        data_check_round(message("query.data_check"), call(tmp_path, data=DropLast()))


def test_a_module_that_does_not_fit_names_the_keys_and_shapes(flower_identity: None,
                                                               tmp_path) -> None:
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match=r"does not fit the TinyClassifier this site built "
                                          r"\(shapes differ: net.0.weight \(8, 4\) here, "
                                          r"\(16, 4\) in the global model, net.0.bias .* "
                                          r"and 3 more\)"):
        train_round(message(MessageType.TRAIN, Wider()), call(tmp_path))
