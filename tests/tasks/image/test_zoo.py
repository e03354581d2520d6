"""The paper's image models: every registered model builds, trains a step and travels intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from colearn_fl.arrays import arrays_to_state_dict, state_dict_to_arrays
from tasks import get_task
from tasks.image.models import list_models
from tasks.image.module import ImageClassifier
from tasks.image.zoo import MinInputSize, densenet

# Minutes on 2 CPU cores for a forward/backward pass: run with -m slow.
HEAVY = {"resnet-152", "inception-v4", "inception-resnet-v2", "resnet-v2-101"}
PAPER_MODELS = {"vgg-19-bn", "resnet-152", "densenet-40", "inception-v4",
                "inception-resnet-v2", "resnet-v2-101"}


def _marked(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


def test_registry_lists_the_papers_models_and_the_image_task_offers_them() -> None:
    # Assert
    assert PAPER_MODELS <= set(list_models())
    assert get_task("image").models() == list_models()


@pytest.mark.parametrize("name", _marked(list_models()))
def test_model_trains_a_step_and_round_trips_through_arrays(name: str) -> None:
    # Prepare: CIFAR-shaped batch; the model through the task's own LightningModule
    torch.manual_seed(0)
    module = ImageClassifier(model=name, in_channels=3, num_classes=10, image_size=32)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])

    # Execute: one forward/backward pass, then the state dict over the wire format
    logits = module(images)
    nn.functional.cross_entropy(logits, labels).backward()
    state = module.state_dict()
    restored = arrays_to_state_dict(state_dict_to_arrays(state))

    # Assert
    assert logits.shape == (2, 10)
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)
    assert list(restored) == list(state)
    for key, value in state.items():
        assert restored[key].dtype == value.dtype, key  # BN counters stay int64
        assert torch.equal(restored[key], value), key


@pytest.mark.parametrize("name", ["vgg-19-bn", "densenet-40"])
def test_grey_28x28_images_fit_the_cifar_models(name: str) -> None:
    # Prepare: Fashion-MNIST shape (1 channel, 28x28 < VGG's 32x32 minimum)
    module = ImageClassifier(model=name, in_channels=1, num_classes=10, image_size=28).eval()

    # Execute
    logits = module(torch.zeros(2, 1, 28, 28))

    # Assert
    assert logits.shape == (2, 10)


def test_densenet_40_has_the_papers_size() -> None:
    # Prepare / Execute: depth 40, growth 12, 10 classes
    net = densenet(3, 10, depth=40, growth=12)
    dense = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    # Assert: 1 stem conv + 3 blocks x 12 layers; 16 + 3 * 12 * 12 = 448 features at the end;
    # Huang et al. report 1.0 M parameters.
    assert len(dense) == 1 + 3 * 12
    assert net[-1].in_features == 16 + 3 * 12 * 12
    assert 1.0e6 <= sum(p.numel() for p in net.parameters()) <= 1.1e6


def test_densenet_depth_must_fit_three_blocks() -> None:
    with pytest.raises(ValueError, match="depth - 4 must be divisible by 3"):
        densenet(3, 10, depth=41)


@pytest.mark.slow
def test_resnet_152_stem_follows_the_image_size() -> None:
    # Execute
    small = ImageClassifier(model="resnet-152", in_channels=3, image_size=32).net
    large = ImageClassifier(model="resnet-152", in_channels=3, image_size=224).net

    # Assert: CIFAR stem (3x3, stride 1, no max-pool) vs ImageNet stem (7x7, stride 2)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2)


def test_small_inputs_are_upsampled_to_the_minimum() -> None:
    # Prepare: a net that records the size it is given
    seen: list[tuple[int, ...]] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape))
            return x.mean((2, 3))

    wrapped = MinInputSize(Probe(), 75)

    # Execute
    wrapped(torch.ones(2, 3, 32, 32))
    wrapped(torch.ones(2, 3, 80, 80))

    # Assert: 32 -> 75, 80 untouched
    assert seen == [(2, 3, 75, 75), (2, 3, 80, 80)]


def test_vgg_classifier_follows_the_image_size() -> None:
    # Execute
    small = ImageClassifier(model="vgg-19-bn", in_channels=3, image_size=32).net.net

    # Assert: the CIFAR VGG ends in one 512 -> classes layer
    linears = [m for m in small.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 10)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_sites_train_channels_last_in_bf16() -> None:
    # Prepare
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,)))
    module = ImageClassifier(model="resnet-v2-101", in_channels=3, image_size=32)
    trainer = pl.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False)

    # Execute
    trainer.fit(module, DataLoader(data, batch_size=8))

    # Assert: 4-d conv weights in channels_last; the state dict stays float32
    conv = next(m for m in module.net.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(v.dtype in (torch.float32, torch.int64) for v in module.state_dict().values())
