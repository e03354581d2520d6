"""``KeywordSpotter``, the ``speech`` task's LightningModule.

Log-mel frontend (on the model's device), input batch norm, and the network the registry
(``tasks.speech.models``) builds; logs ``train-loss``, ``loss`` and ``accuracy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from tasks.speech.features import FeatureSpec, LogMel
from tasks.speech.models import DEFAULT_MODEL, get_model
from tasks.supervised import Stage, SupervisedModule

# A batch is (float waveforms [B, samples], int64 labels [B]).


class KeywordSpotter(SupervisedModule):
    """Waveforms -> features -> keyword logits; logs ``train-loss``, ``loss`` and ``accuracy``.

    The features are computed inside the module, so on the site's GPU when it has one. A
    ``BatchNorm2d(1)`` standardises them (not in TensorFlow's models: it lets one LR range
    suit log-mels and MFCCs alike). Parameters are primitives so Lightning's CSV logger can
    write them to ``hparams.yaml``.

    Parameters
    ----------
    model : str
        Speech model registry name (default: ``'conv'``).
    num_classes : int
        Keywords + silence + unknown (default: 12).
    sample_rate, clip_samples, window_ms, hop_ms, n_mels, f_min, f_max, mfcc
        The feature frontend, as ``FeatureSpec`` (defaults: 16000, 16000, 30.0, 10.0, 40, 20.0,
        7600.0, False).
    dropout : float
        Dropout after each convolution, in training (default: 0.5).
    lr : float
        Initial SGD learning rate; the server's cycle overrides it every step (default: 0.05).
    momentum : float
        Nesterov momentum (default: 0.9).
    max_grad_norm : float
        Every step's gradient is clipped to this L2 norm; 0 = off (default: 1.0).
    """

    def __init__(self, model: str = DEFAULT_MODEL, num_classes: int = 12,
                 sample_rate: int = 16000, clip_samples: int = 16000, window_ms: float = 30.0,
                 hop_ms: float = 10.0, n_mels: int = 40, f_min: float = 20.0,
                 f_max: float = 7600.0, mfcc: bool = False, dropout: float = 0.5,
                 lr: float = 0.05, momentum: float = 0.9, max_grad_norm: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = FeatureSpec(sample_rate, clip_samples, window_ms, hop_ms, n_mels, f_min, f_max,
                           mfcc)
        self.features = LogMel(spec)
        self.normalise = nn.BatchNorm2d(1)
        self.net = get_model(model, (spec.num_frames, n_mels), num_classes, dropout)
        # Separate metric objects: validation and test accumulate independently.
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of waveforms ``[B, clip_samples]`` in ``[-1, 1]``."""
        return self.net(self.normalise(self.features(waves)))

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def score(self, stage: Stage, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        accuracy = self.val_accuracy if stage == "validate" else self.test_accuracy
        accuracy(outputs, targets)
        self.log("accuracy", accuracy, on_step=False, on_epoch=True, batch_size=len(targets))

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        # The tutorial's models end in a linear layer over ~63k (conv) or ~8k (tiny-conv)
        # activations: at the project's LR range (lr-max 0.05, momentum 0.9) one unbounded
        # step blows the logits up and training diverges to NaN within an epoch.
        if gradient_clip_val is None and self.hparams.max_grad_norm > 0:
            gradient_clip_val, gradient_clip_algorithm = self.hparams.max_grad_norm, "norm"
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (LRCycle callback) sets the LR.
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr,
                               momentum=self.hparams.momentum, nesterov=True)
