"""AudioSet's clip-level scores: macro mAP, macro AUC and d-prime over the scorable classes.

The standard evaluation (Gemmeke et al. 2017; Kong et al. 2018, ``utils/utilities.py`` of
qiuqiangkong/audioset_classification) averages each class's average precision and ROC AUC over
the 527 classes, and reports ``d' = sqrt(2) * Phi^-1(mean AUC)``. The official eval split has at
least 59 positives per class, so every class is defined there. A site's shard or a small
hold-out can miss a class entirely: AP and AUC are then undefined (no positives, or no
negatives), and torchmetrics would count such a class as 0. ``ClipScores`` instead averages
over the classes that have at least one positive and one negative in the evaluated rows, which
equals the standard figure whenever every class is present.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multilabel_auroc,
    multilabel_average_precision,
)
from torchmetrics.utilities.data import dim_zero_cat

MAP, AUROC, D_PRIME = "map", "auroc", "d-prime"
EPSILON = 1e-7  # keeps log(p) and log(1 - p) finite in the loss
# AUC is clipped to [AUC_CLIP, 1 - AUC_CLIP] before Phi^-1: a perfect ranking gives a finite
# d' = sqrt(2) * Phi^-1(1 - 1e-6) = 6.72 instead of infinity, which JSON (history.json) and
# the sites' weighted averages cannot hold.
AUC_CLIP = 1e-6


def d_prime(auc: torch.Tensor | float) -> torch.Tensor:
    """Sensitivity index of an ROC AUC: ``sqrt(2) * Phi^-1(auc)`` (0 at chance, AUC = 0.5).

    Parameters
    ----------
    auc : torch.Tensor | float
        Area under the ROC curve, in (0, 1).

    Returns
    -------
    torch.Tensor
        d-prime (float32), finite: the AUC is first clipped to ``[AUC_CLIP, 1 - AUC_CLIP]``.
    """
    clipped = torch.as_tensor(auc, dtype=torch.float64).clamp(AUC_CLIP, 1.0 - AUC_CLIP)
    return (math.sqrt(2.0) * torch.special.ndtri(clipped)).float()


def clip_bce(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of clip probabilities, in float32 (safe under autocast).

    ``F.binary_cross_entropy`` refuses to run under mixed precision; this is the same loss
    written out, with probabilities clamped to ``[EPSILON, 1 - EPSILON]``.
    """
    p = probs.float().clamp(EPSILON, 1.0 - EPSILON)
    t = targets.float()
    return -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p)).mean()


class ClipScores(Metric):
    """Macro mAP, macro AUC and d-prime of clip probabilities against multi-hot targets.

    Classes without both a positive and a negative among the accumulated rows are left out of
    both averages (see the module docstring). With no such class at all the scores are NaN.

    Parameters
    ----------
    num_classes : int
        Width of the predictions and targets (527 for AudioSet).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        # Non-persistent (torchmetrics' default): the states never enter the model's
        # state_dict, so they are not sent over the wire with the weights.
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        """Accumulate a batch: probabilities ``[B, C]`` in [0, 1], targets ``[B, C]`` 0/1."""
        if probs.shape != targets.shape or probs.shape[-1] != self.num_classes:
            raise ValueError(f"ClipScores expects probs and targets of shape [B, "
                             f"{self.num_classes}], got {tuple(probs.shape)} and "
                             f"{tuple(targets.shape)}")
        self.probs.append(probs.detach().float())
        self.targets.append(targets.detach().to(torch.uint8))

    def compute(self) -> dict[str, torch.Tensor]:
        """``{'map': ..., 'auroc': ..., 'd-prime': ...}`` over the scorable classes."""
        # No scorable class (an empty or all-negative shard): a constant scorer's values, so
        # that history.json stays valid JSON (no NaN) and the weighted average stays finite.
        undefined = {MAP: torch.tensor(0.0), AUROC: torch.tensor(0.5), D_PRIME: torch.tensor(0.0)}
        if not self.probs:
            return undefined
        probs, targets = dim_zero_cat(self.probs), dim_zero_cat(self.targets)
        positives = targets.sum(dim=0)
        scorable = torch.nonzero((positives > 0) & (positives < len(targets))).flatten()
        if len(scorable) == 0:
            return undefined
        probs, targets = probs[:, scorable], targets[:, scorable].long()
        k = len(scorable)
        average_precision = multilabel_average_precision(probs, targets, num_labels=k,
                                                         average="macro")
        auc = multilabel_auroc(probs, targets, num_labels=k, average="macro")
        return {MAP: average_precision, AUROC: auc, D_PRIME: d_prime(auc)}
