"""Tests of the speech models: registry, TensorFlow shapes, the Lightning module."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.errors import ConfigError
from tasks.speech.models import SameConv2d, get_model, list_models
from tasks.speech.module import KeywordSpotter


@pytest.mark.parametrize("name", list_models())
def test_every_model_maps_features_to_logits_and_learns(name: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model = get_model(name, (98, 40), num_classes=12, dropout=0.5)
    features, labels = torch.randn(3, 1, 98, 40), torch.tensor([0, 5, 11])

    # Execute
    logits = model(features)
    torch.nn.functional.cross_entropy(logits, labels).backward()

    # Assert: every parameter gets a gradient
    assert logits.shape == (3, 12)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_conv_has_tensorflows_layer_sizes() -> None:
    # Prepare: conv 64 x (1 x 20 x 8) + 64 = 10,304; conv 64 x (64 x 10 x 4) + 64 = 163,904;
    # SAME 2 x 2 pool of 98 x 40 -> 49 x 20, so linear 64 * 49 * 20 * 12 + 12 = 752,652.
    model = get_model("conv", (98, 40), num_classes=12)

    # Execute
    count = sum(p.numel() for p in model.parameters())

    # Assert
    assert count == 10_304 + 163_904 + 752_652


@pytest.mark.parametrize(("size", "stride", "expected"), [((98, 40), 1, (98, 40)),
                                                          ((98, 40), 2, (49, 20)),
                                                          ((97, 39), 2, (49, 20))])
def test_same_convolution_output_is_ceil_input_over_stride(size, stride, expected) -> None:
    # Prepare
    conv = SameConv2d(1, 2, (10, 8), stride=stride)

    # Execute
    output = conv(torch.zeros(1, 1, *size))

    # Assert
    assert tuple(output.shape[-2:]) == expected


def test_unknown_model_lists_the_valid_names() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"model='lstm'.*conv, tiny-conv"):
        get_model("lstm", (98, 40), 12)


def test_spotter_fits_validates_and_tests_with_a_tiny_trainer() -> None:
    # Prepare: 0.1 s clips (8 frames), 2 keywords
    torch.manual_seed(0)
    waves, labels = torch.randn(16, 1600) * 0.1, torch.arange(16) % 4
    loader = DataLoader(TensorDataset(waves, labels), batch_size=8)
    model = KeywordSpotter(model="tiny-conv", num_classes=4, clip_samples=1600)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")

    # Execute
    trainer.fit(model, loader)
    fitted = dict(trainer.callback_metrics)
    (validated,) = trainer.validate(model, loader, verbose=False)
    (tested,) = trainer.test(model, loader, verbose=False)

    # Assert
    assert "train-loss" in fitted
    assert set(validated) == set(tested) == {"loss", "accuracy"}
    assert 0.0 <= tested["accuracy"] <= 1.0


def test_each_step_is_clipped_to_max_grad_norm() -> None:
    # Prepare: lr 1, Nesterov momentum 0.5: the first step moves the parameters by
    # (1 + 0.5) * the clipped gradient, so by 1.5 * 0.01 in L2 norm.
    torch.manual_seed(0)
    model = KeywordSpotter(model="tiny-conv", num_classes=4, clip_samples=1600, lr=1.0,
                           momentum=0.5, max_grad_norm=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    loader = DataLoader(TensorDataset(torch.randn(8, 1600), torch.arange(8) % 4), batch_size=8)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")

    # Execute
    trainer.fit(model, loader)

    # Assert
    moved = [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]
    assert float(torch.nn.utils.get_total_norm(moved)) == pytest.approx(0.015, rel=1e-4)


def test_optimizer_is_nesterov_sgd_without_scheduler() -> None:
    # Execute
    optimizer = KeywordSpotter(model="tiny-conv", lr=0.01, momentum=0.8).configure_optimizers()

    # Assert
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.01, 0.8, True)
