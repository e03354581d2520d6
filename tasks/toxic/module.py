"""The ``toxic`` task's LightningModule: multi-label BCE training, column-wise ROC AUC.

The network comes from ``tasks.toxic.models``; the metric is the mean column-wise ROC AUC
(``auroc``) with one ``auc-<label>`` per Jigsaw label.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torchmetrics.classification import MultilabelAUROC
from torchmetrics.utilities import dim_zero_cat

from tasks.supervised import Stage, SupervisedModule
from tasks.toxic.jigsaw import LABELS
from tasks.toxic.models import DEFAULT_MODEL, get_model

UNDEFINED_AUC = 0.5  # logged for a label whose split has no positive (or no negative) row
GRAD_CLIP_NORM = 1.0  # recurrent nets: bounds each step whatever LR the server's cycle sets
# A batch is (int32 ids [B, L], float 0/1 labels [B, 6]).


def auroc_scores(per_label: torch.Tensor, target: torch.Tensor) -> tuple[float, list[float]]:
    """Macro AUROC and per-label AUROCs, with undefined labels handled.

    A label's ROC AUC is undefined when the split has no positive (or no negative) row for it;
    torchmetrics then returns 0 and would pull the macro mean down. Here such a label is
    reported as ``UNDEFINED_AUC`` (0.5, a constant predictor's AUC) and left out of the macro
    mean, which averages the defined labels only (0.5 when none is defined).

    Parameters
    ----------
    per_label : torch.Tensor
        ``[num_labels]`` AUROCs from ``MultilabelAUROC(average=None)``.
    target : torch.Tensor
        ``[N, num_labels]`` 0/1 targets the AUROCs were computed on.
    """
    defined = (target.amax(dim=0) > 0) & (target.amin(dim=0) < 1)
    values = torch.where(defined, per_label.float(), torch.tensor(UNDEFINED_AUC))
    macro = float(values[defined].mean()) if bool(defined.any()) else UNDEFINED_AUC
    return macro, [float(v) for v in values]


class ToxicClassifier(SupervisedModule):
    """Multi-label comment classifier; logs ``train-loss``, ``loss``, ``auroc``, ``auc-<label>``.

    Parameters
    ----------
    vocab_size : int
        Number of token ids (the tokenizer's).
    pad_id : int
        The tokenizer's padding id.
    model : str
        Toxic model registry name (default: ``'lstm'``).
    lr : float
        Initial Adam learning rate; the server's cycle overrides it every step
        (default: 0.003).
    """

    def __init__(self, vocab_size: int, pad_id: int, model: str = DEFAULT_MODEL,
                 lr: float = 0.003) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = get_model(model, vocab_size, len(LABELS), pad_id)
        # Separate metric objects: validation and test accumulate independently.
        self.val_auroc = MultilabelAUROC(len(LABELS), average=None)
        self.test_auroc = MultilabelAUROC(len(LABELS), average=None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 6]`` of token ids ``[B, L]``."""
        return self.net(ids)

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs, targets)

    def score(self, stage: Stage, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        auroc = self.val_auroc if stage == "validate" else self.test_auroc
        auroc.update(torch.sigmoid(outputs), targets.int())

    def log_epoch_metrics(self, stage: Stage) -> None:
        self._log_auroc(self.val_auroc if stage == "validate" else self.test_auroc)

    def _log_auroc(self, auroc: MultilabelAUROC) -> None:
        if auroc.update_count == 0:
            return  # no rows to score (an empty validation shard): only the loss is logged
        with warnings.catch_warnings():  # undefined labels are handled by auroc_scores
            warnings.simplefilter("ignore", UserWarning)
            per_label = auroc.compute()
        target = dim_zero_cat(auroc.target)
        macro, values = auroc_scores(per_label, target)
        auroc.reset()
        self.log("auroc", macro)
        for label, value in zip(LABELS, values, strict=True):
            self.log(f"auc-{label}", value)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val or GRAD_CLIP_NORM,
                            gradient_clip_algorithm=gradient_clip_algorithm or "norm")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (LRCycle callback) sets the LR.
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
