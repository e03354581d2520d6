"""Tests of the toxic task: models, AUROC logging, config, factories and a short federation."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tasks import get_task
from tasks.errors import ConfigError
from tasks.shared import Site
from tasks.toxic import build_central_datamodule, build_datamodule, build_module
from tasks.toxic.config import ToxicConfig
from tasks.toxic.models import CapsuleLayer, get_model, list_models, squash
from tasks.toxic.module import ToxicClassifier, auroc_scores
from tasks.toxic.synth import write_synthetic

# Hand-made scores (rows x labels) and targets; AUC per label counted over (pos, neg) pairs.
SCORES = [[0.1, 0.5, 0.9, 0.1, 0.5, 0.2],
          [0.4, 0.5, 0.2, 0.2, 0.5, 0.6],
          [0.35, 0.5, 0.3, 0.3, 0.5, 0.7],
          [0.8, 0.5, 0.1, 0.4, 0.5, 0.8]]
TARGETS = [[0, 0, 1, 1, 1, 0],
           [0, 0, 0, 0, 1, 1],
           [1, 0, 0, 0, 0, 0],
           [1, 0, 0, 0, 0, 1]]
# toxic 3/4 pairs; severe_toxic no positive -> 0.5, undefined; obscene 1; threat 0;
# insult all tied -> 1/2; identity_hate (0.6>0.2, 0.8>0.2, 0.8>0.7) -> 3/4.
EXPECTED_AUC = [0.75, 0.5, 1.0, 0.0, 0.5, 0.75]
EXPECTED_MACRO = (0.75 + 1.0 + 0.0 + 0.5 + 0.75) / 5  # severe_toxic left out


def _trainer(**kwargs: object) -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", **kwargs)


@pytest.mark.parametrize("name", list_models())
def test_every_model_maps_ids_to_logits_and_trains(name: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model = get_model(name, vocab_size=50, num_labels=6, pad_id=0)
    ids = torch.tensor([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.int32)

    # Execute
    logits = model(ids)
    logits.sum().backward()

    # Assert
    assert logits.shape == (3, 6) and torch.isfinite(logits).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_padding_does_not_change_the_output(name: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model = get_model(name, vocab_size=50, num_labels=6, pad_id=1).eval()
    short = torch.tensor([[5, 7, 9]])
    padded = torch.tensor([[5, 7, 9, 1, 1, 1, 1]])

    # Execute / Assert
    torch.testing.assert_close(model(short), model(padded))


def test_unknown_model_lists_the_valid_names() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"model='bert'.*capsule, gru, lstm"):
        get_model("bert", 10, 6, 0)


def test_squash_keeps_direction_and_bounds_the_length() -> None:
    # Prepare: |(3, 4)| = 5 -> length 25 / 26
    vector = torch.tensor([[3.0, 4.0]])

    # Execute / Assert
    torch.testing.assert_close(squash(vector), torch.tensor([[3.0, 4.0]]) / 5 * 25 / 26)


def test_one_routing_iteration_averages_the_predictions() -> None:
    # Prepare: identity prediction, one output capsule of 2 -> v = squash(sum_i u_i) with c = 1
    layer = CapsuleLayer(in_dim=2, num_capsules=1, capsule_dim=2, routings=1)
    with torch.no_grad():
        layer.predict.weight.copy_(torch.eye(2))
    inputs = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])  # the third position is padding

    # Execute
    outputs = layer(inputs, mask)

    # Assert
    expected = squash(squash(torch.tensor([3.0, 4.0])) + squash(torch.tensor([0.0, 1.0])))
    torch.testing.assert_close(outputs, expected.view(1, 1, 2))


def test_auroc_scores_leave_undefined_labels_out_of_the_macro() -> None:
    # Prepare: torchmetrics would report 0 for severe_toxic (no positive row)
    per_label = torch.tensor([0.75, 0.0, 1.0, 0.0, 0.5, 0.75])

    # Execute
    macro, values = auroc_scores(per_label, torch.tensor(TARGETS))

    # Assert
    assert values == EXPECTED_AUC and macro == pytest.approx(EXPECTED_MACRO)
    assert auroc_scores(torch.zeros(6), torch.zeros(3, 6)) == (0.5, [0.5] * 6)


class _Fixed(nn.Module):
    """Returns the logits of SCORES for row ``ids[:, 0]``."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.logit(torch.tensor(SCORES))[ids[:, 0].long()]


def test_validation_logs_hand_computed_auroc_and_loss() -> None:
    # Prepare: two batches of two rows, so the metric accumulates over the epoch
    module = ToxicClassifier(vocab_size=10, pad_id=0)
    module.net = _Fixed()
    data = TensorDataset(torch.arange(4, dtype=torch.int32).view(4, 1),
                         torch.tensor(TARGETS, dtype=torch.float32))
    p, y = torch.tensor(SCORES), torch.tensor(TARGETS, dtype=torch.float32)
    expected_loss = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())

    # Execute
    (results,) = _trainer().validate(module, DataLoader(data, batch_size=2), verbose=False)

    # Assert
    assert results["auroc"] == pytest.approx(EXPECTED_MACRO)
    labels = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    assert [results[f"auc-{n}"] for n in labels] == pytest.approx(EXPECTED_AUC)
    assert results["loss"] == pytest.approx(expected_loss, rel=1e-5)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=400, num_test=200,
                           noise=0.0)


def test_tiny_trainer_fits_validates_and_tests(synthetic: Path) -> None:
    # Prepare
    torch.manual_seed(0)
    config = ToxicConfig(tokenizer="word-hash", hash_buckets=500, seq_len=24)
    data = build_datamodule(config, Site(str(synthetic), partition=(0, 2), batch_size=32))
    module = build_module(config, model="capsule")

    # Execute
    trainer = _trainer(max_epochs=1, limit_train_batches=3)
    trainer.fit(module, datamodule=data)
    (validated,) = trainer.validate(module, datamodule=data, verbose=False)
    (tested,) = trainer.test(module, datamodule=data, verbose=False)

    # Assert
    keys = {"loss", "auroc", "auc-toxic", "auc-severe_toxic", "auc-obscene", "auc-threat",
            "auc-insult", "auc-identity_hate"}
    assert set(validated) == keys and set(tested) == keys
    assert 0.0 <= validated["auroc"] <= 1.0 and validated["loss"] > 0.0


def test_optimizer_is_adam_at_lr_max_without_scheduler() -> None:
    # Execute
    optimizer = build_module(ToxicConfig(), lr=0.01).configure_optimizers()

    # Assert
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize(
    ("config", "name", "model", "vocab_size"),
    [(ToxicConfig(), "", "lstm", 384),
     (ToxicConfig(tokenizer="word-hash", hash_buckets=77), "capsule", "capsule", 77)],
)
def test_build_module_sizes_the_model_for_the_tokenizer(config: ToxicConfig, name: str,
                                                        model: str, vocab_size: int) -> None:
    # Execute
    module = build_module(config, model=name)

    # Assert
    assert module.hparams.model == model and module.hparams.vocab_size == vocab_size
    assert module.net.encoder.embedding.num_embeddings == vocab_size
    assert model in get_task("toxic").models()


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (ToxicConfig(tokenizer="bpe"), "tokenizer='bpe' is not known; use one of: byt5"),
        (ToxicConfig(tokenizer="pretrained"), "tokenizer='pretrained' needs tokenizer-dir"),
        (ToxicConfig(tokenizer_dir="/tok"), "tokenizer-dir='/tok' is set but tokenizer='byt5'"),
        (ToxicConfig(seq_len=1), "seq-len=1"),
        (ToxicConfig(hash_buckets=1), "hash-buckets=1"),
    ],
)
def test_bad_task_keys_raise_config_error(config: ToxicConfig, match: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        config.validate()


def test_default_config_is_valid() -> None:
    # Execute / Assert: no error
    ToxicConfig().validate()


def test_build_datamodule_uses_the_sites_files_and_the_task_keys(tmp_path: Path) -> None:
    # Prepare
    config = ToxicConfig(tokenizer="word-hash", seq_len=9)

    # Execute
    data = build_datamodule(config, Site(str(tmp_path)))

    # Assert: a deployment site uses all of its own files
    assert data.data_dir == str(tmp_path) and data.partition is None
    assert data.seq_len == 9 and data.encoder.vocab_size == 20000


def test_build_datamodule_reads_the_default_directory_when_the_site_names_none() -> None:
    # Execute
    data = build_datamodule(ToxicConfig(tokenizer="word-hash"), Site(partition=(1, 3)))

    # Assert
    assert data.data_dir == "~/.cache/colearn-fl/jigsaw-toxic" and data.partition == (1, 3)


def test_central_datamodule_is_the_scored_test_rows_or_none(synthetic: Path,
                                                            tmp_path: Path) -> None:
    # Execute
    central = build_central_datamodule(ToxicConfig(tokenizer="word-hash"), Site(str(synthetic)))
    absent = build_central_datamodule(ToxicConfig(), Site(str(tmp_path)))
    central.setup("test")

    # Assert: ~30% of 200 test rows are unscored
    assert absent is None
    assert 120 < len(central.test_set) < 170 and central.train_set is None
