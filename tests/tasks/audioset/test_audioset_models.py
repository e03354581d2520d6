"""Tests of the audioset task's models (CRNN + pooling heads), scores and Lightning module."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks import get_task
from tasks.audioset import build_module
from tasks.audioset.config import AudioSetConfig
from tasks.audioset.metrics import ClipScores, clip_bce, d_prime
from tasks.audioset.models import get_model, list_models
from tasks.audioset.module import AudioSetTagger
from tasks.errors import ConfigError

BATCH, STEPS, CLASSES = 3, 10, 527


@pytest.mark.parametrize("name", list_models())
def test_every_head_maps_clips_to_probabilities_with_normalised_weights(name: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model = get_model(name, num_classes=CLASSES, hidden=16, dropout=0.1)
    clips = torch.randn(BATCH, STEPS, 128)

    # Execute
    pooled = model(clips)
    pooled.probs.sum().backward()

    # Assert: probabilities, per-level weights over time summing to 1, every weight trained
    assert pooled.probs.shape == (BATCH, CLASSES)
    assert 0.0 < pooled.probs.min() and pooled.probs.max() < 1.0
    assert len(pooled.weights) == len(pooled.frame_probs) == (2 if name == "crnn-ma" else 1)
    for weights, frames in zip(pooled.weights, pooled.frame_probs, strict=True):
        assert weights.shape == frames.shape == (BATCH, STEPS, CLASSES)
        assert weights.min() >= 0.0
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(BATCH, CLASSES))
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_every_model_starts_every_class_at_the_rare_label_prior(name: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model = get_model(name, CLASSES, hidden=32, dropout=0.0).eval()

    # Execute
    probs = model(torch.randn(4, STEPS, 128)).probs

    # Assert: about OUTPUT_PRIOR = 0.01, not sigmoid(0) = 0.5
    assert 0.005 < probs.median().item() < 0.02


@pytest.mark.parametrize(("name", "pool"), [
    ("crnn-ap", lambda frames: frames.mean(dim=1)),
    ("crnn-mp", lambda frames: frames.amax(dim=1)),
])
def test_average_and_max_pooling_pool_the_frame_probabilities(name: str, pool) -> None:
    # Prepare
    model = get_model(name, CLASSES, hidden=8, dropout=0.0).eval()

    # Execute
    pooled = model(torch.randn(2, STEPS, 128))

    # Assert
    torch.testing.assert_close(pooled.probs, pool(pooled.frame_probs[0]))


def test_single_attention_is_the_weighted_sum_of_frame_probabilities() -> None:
    # Prepare
    model = get_model("crnn-sa", CLASSES, hidden=8, dropout=0.0).eval()

    # Execute
    pooled = model(torch.randn(2, STEPS, 128))

    # Assert
    expected = (pooled.weights[0] * pooled.frame_probs[0]).sum(dim=1)
    torch.testing.assert_close(pooled.probs, expected)


def test_multi_level_attention_combines_both_levels_through_a_final_layer() -> None:
    # Prepare
    model = get_model("crnn-ma", CLASSES, hidden=8, dropout=0.0).eval()

    # Execute
    pooled = model(torch.randn(2, STEPS, 128))

    # Assert: sigmoid(FC([clip of level 1, clip of level 2]))
    clips = [(w * f).sum(dim=1) for w, f in zip(pooled.weights, pooled.frame_probs,
                                                  strict=True)]
    expected = torch.sigmoid(model.head.fc_final(torch.cat(clips, dim=1)))
    torch.testing.assert_close(pooled.probs, expected)


def test_unknown_model_lists_the_valid_names() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"model='crnn-xl'.*crnn-ap, crnn-ma, crnn-mp"):
        get_model("crnn-xl", CLASSES, 8, 0.0)


def test_crnn_ma_is_the_default_model_and_the_task_settings_reach_it() -> None:
    # Execute
    module = build_module(AudioSetConfig(audioset_hidden=32, audioset_optimizer="sgd"),
                          model="", lr=0.002)

    # Assert
    assert module.hparams.model == "crnn-ma" and module.hparams.hidden == 32
    assert module.hparams.lr == 0.002 and isinstance(module.configure_optimizers(),
                                                     torch.optim.SGD)
    assert get_task("audioset").models() == ["crnn-ap", "crnn-ma", "crnn-mp", "crnn-sa"]


@pytest.mark.parametrize(("auc", "expected"), [
    (0.5, 0.0),  # chance: Phi^-1(0.5) = 0
    (0.5 * (1.0 + math.erf(1.0)), 2.0),  # AUC = Phi(sqrt 2) -> sqrt 2 * sqrt 2
    (0.5 * (1.0 + math.erf(-0.5)), -1.0),  # AUC = Phi(-1 / sqrt 2) -> -1
    (1.0, 6.72236),  # perfect ranking: clipped to 1 - 1e-6; sqrt 2 * 4.753424 (not inf)
])
def test_d_prime_of_a_known_auc(auc: float, expected: float) -> None:
    # Execute / Assert
    assert d_prime(auc).item() == pytest.approx(expected, abs=1e-5)


def test_scores_on_hand_made_predictions_skip_classes_without_positives() -> None:
    # Prepare: class 0 ranked perfectly (AP 1, AUC 1); class 1 ranks pos, neg, pos, neg
    # (AP (1/1 + 2/3) / 2 = 5/6, AUC 3 of 4 pairs); class 2 has no positive (undefined).
    probs = torch.tensor([[0.9, 0.9, 0.1], [0.2, 0.8, 0.2], [0.8, 0.3, 0.3], [0.1, 0.1, 0.4]])
    targets = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]])
    scores = ClipScores(num_classes=3)

    # Execute: two batches, as validation_step sees them
    scores.update(probs[:2], targets[:2])
    scores.update(probs[2:], targets[2:])
    result = scores.compute()

    # Assert
    assert result["map"].item() == pytest.approx((1.0 + 5.0 / 6.0) / 2.0)
    assert result["auroc"].item() == pytest.approx((1.0 + 0.75) / 2.0)
    assert result["d-prime"].item() == pytest.approx(d_prime(0.875).item())


def test_clip_bce_of_one_half_is_log_two() -> None:
    # Execute
    loss = clip_bce(torch.full((2, 4), 0.5), torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0]]))

    # Assert
    assert loss.item() == pytest.approx(math.log(2.0))


def test_tiny_trainer_logs_every_score_and_no_score_state_is_a_weight() -> None:
    # Prepare: 24 clips, 4 classes of 527 occur, class k lifts dimension k
    torch.manual_seed(0)
    targets = torch.zeros(24, CLASSES)
    targets[torch.arange(24), torch.arange(24) % 4] = 1.0
    clips = torch.randn(24, STEPS, 128) * 0.1
    clips[:, :, :4] += targets[:, :4].unsqueeze(1)
    loader = DataLoader(TensorDataset(clips, targets), batch_size=12)
    module = AudioSetTagger(model="crnn-sa", hidden=8, lr=0.01)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")

    # Execute
    trainer.fit(module, loader)
    (validated,) = trainer.validate(module, loader, verbose=False)
    (tested,) = trainer.test(module, loader, verbose=False)

    # Assert
    assert set(validated) == set(tested) == {"loss", "map", "auroc", "d-prime"}
    assert 0.0 < validated["map"] <= 1.0 and 0.0 < validated["auroc"] <= 1.0
    assert not any("scores" in key for key in module.state_dict())


def test_adam_at_the_common_default_lr_warns_with_the_tables_setting() -> None:
    # Execute / Assert: the project-wide default lr-max=0.05 is far too high for Adam
    with pytest.warns(UserWarning, match="lr-max=0.05.*lr-max=0.001"):
        build_module(AudioSetConfig(), lr=0.05)


def test_a_shard_without_scorable_classes_reports_a_constant_scorer() -> None:
    # Prepare: every clip negative for every class
    scores = ClipScores(num_classes=3)
    scores.update(torch.rand(4, 3), torch.zeros(4, 3, dtype=torch.long))

    # Execute
    result = {k: v.item() for k, v in scores.compute().items()}

    # Assert: finite values, no NaN in history.json
    assert result == {"map": 0.0, "auroc": 0.5, "d-prime": 0.0}
