"""The ``audioset`` task's LightningModule: a multi-label clip tagger trained with BCE.

Scored by macro mAP, macro AUC and d-prime (``tasks.audioset.metrics``) over the clips of an
epoch; the network comes from the task's model registry (``tasks.audioset.models``).
"""

from __future__ import annotations

import torch

from tasks.audioset.config import check_optimizer
from tasks.audioset.hdf5 import NUM_CLASSES
from tasks.audioset.metrics import AUROC, D_PRIME, MAP, ClipScores, clip_bce
from tasks.audioset.models import DEFAULT_MODEL, get_model
from tasks.supervised import Stage, SupervisedModule

# A batch is (float32 [B, 10, 128], float32 multi-hot [B, 527]).


class AudioSetTagger(SupervisedModule):
    """Multi-label clip tagger; logs ``train-loss`` and ``loss`` / ``map`` / ``auroc`` /
    ``d-prime``.

    Parameters
    ----------
    model : str
        AudioSet model registry name (default: ``'crnn-ma'``).
    num_classes : int
        Number of classes (default: 527).
    hidden : int
        Encoder width (default: 256).
    dropout : float
        Embedding-MLP dropout (default: 0.2).
    optimizer : {'adam', 'sgd'}
        Optimizer; the server's cycle sets its LR every step (default: ``'adam'``).
    lr : float
        Initial LR, overridden by the cycle (default: 1e-3).
    """

    def __init__(self, model: str = DEFAULT_MODEL, num_classes: int = NUM_CLASSES,
                 hidden: int = 256, dropout: float = 0.2, optimizer: str = "adam",
                 lr: float = 1e-3) -> None:
        super().__init__()
        check_optimizer(optimizer)
        self.save_hyperparameters()
        self.net = get_model(model, num_classes, hidden, dropout)
        # Separate score objects: validation and test accumulate independently.
        self.val_scores = ClipScores(num_classes)
        self.test_scores = ClipScores(num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clip probabilities ``[B, num_classes]`` of embeddings ``[B, 10, 128]``."""
        return self.net(clips).probs

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return clip_bce(outputs, targets)

    def score(self, stage: Stage, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        (self.val_scores if stage == "validate" else self.test_scores).update(outputs, targets)

    def log_epoch_metrics(self, stage: Stage) -> None:
        self._log_scores(self.val_scores if stage == "validate" else self.test_scores)

    def _log_scores(self, scores: ClipScores) -> None:
        # Ranking scores need every clip at once: computed at epoch end, then cleared.
        results = scores.compute()
        self.log_dict({name: results[name] for name in (MAP, AUROC, D_PRIME)})
        scores.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (LRCycle callback) sets the LR.
        if self.hparams.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9,
                                   nesterov=True)
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
