"""Hinge, Kantorovich–Rubinstein and hKR losses (Serrurier et al., CVPR 2021).

Conventions, the same for every loss here:

* Binary outputs are one score per sample, shape (N,) or (N, 1); labels are
  {0, 1} or {−1, +1} (anything > 0 is the positive class).
* Multiclass outputs are (N, C); labels are class indices (N,) or one-hot (N, C).
* The hinge term is max(0, min_margin − y·f): the paper's margin m. Note
  that deel-torchlip's hinge is max(0, min_margin/2 − y·f), so its
  `min_margin=2m` equals ours `min_margin=m`.
* `KRLoss` returns the Kantorovich–Rubinstein estimate of the Wasserstein-1
  distance, E[f | y=1] − E[f | y=0], a quantity to *maximize*; the hKR loss
  to minimize is alpha·hinge − (1 − alpha)·KR with alpha in [0, 1]
  (alpha = 1: pure hinge, alpha = 0: pure KR), as in deel-torchlip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _binary(outputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Flat scores and a boolean positive mask."""
    f = outputs.reshape(-1)
    y = labels.reshape(-1).to(f.device)
    if f.shape != y.shape:
        raise ValueError(f"{f.numel()} outputs but {y.numel()} labels")
    return f, y > 0


def _one_hot(outputs: Tensor, labels: Tensor) -> Tensor:
    """Boolean (N, C) mask of the true class, from indices or one-hot labels."""
    if outputs.dim() != 2:
        raise ValueError(
            f"multiclass outputs must be (N, C), got {tuple(outputs.shape)}"
        )
    if labels.shape == outputs.shape:
        return labels.to(outputs.device) > 0
    if labels.dim() != 1 or labels.shape[0] != outputs.shape[0]:
        raise ValueError("labels must be class indices (N,) or one-hot (N, C)")
    return F.one_hot(labels.long().to(outputs.device), outputs.shape[1]).bool()


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def hinge_loss(outputs: Tensor, labels: Tensor, min_margin: float = 1.0) -> Tensor:
    """Per-sample binary hinge max(0, min_margin − y·f), y in {−1, +1}."""
    f, pos = _binary(outputs, labels)
    sign = torch.where(pos, 1.0, -1.0).to(f.dtype)
    return F.relu(min_margin - sign * f)


def kr_estimate(outputs: Tensor, labels: Tensor) -> Tensor:
    """Per-sample terms whose mean is E[f | y=1] − E[f | y=0] over the batch.

    Each sample is weighted by N / (its class's count), so the mean over the
    batch is the difference of the class means; a class absent from the
    batch contributes 0.
    """
    f, pos = _binary(outputs, labels)
    n = f.numel()
    n_pos = pos.sum()
    w_pos = n / n_pos if n_pos > 0 else 0.0
    w_neg = -n / (n - n_pos) if n_pos < n else 0.0
    return torch.where(pos, w_pos, w_neg) * f


def multiclass_hinge_loss(
    outputs: Tensor, labels: Tensor, min_margin: float = 1.0
) -> Tensor:
    """Per-sample one-vs-all hinge: mean over classes of max(0, m − s_c·f_c).

    s_c = +1 for the true class, −1 otherwise; the true class's term is
    weighted by C − 1 so both sides count equally (deel-torchlip's form).
    """
    truth = _one_hot(outputs, labels)
    sign = torch.where(truth, 1.0, -1.0).to(outputs.dtype)
    hinge = F.relu(min_margin - sign * outputs)
    hinge = torch.where(truth, hinge * (outputs.shape[1] - 1), hinge)
    return hinge.mean(dim=1)


def multiclass_kr_estimate(outputs: Tensor, labels: Tensor) -> Tensor:
    """Per-sample terms whose mean is the average over classes c of
    E[f_c | y=c] − E[f_c | y≠c] (one-vs-all Kantorovich–Rubinstein)."""
    truth = _one_hot(outputs, labels)
    n = outputs.shape[0]
    n_pos = truth.sum(dim=0, keepdim=True).to(outputs.dtype)
    w_pos = torch.where(n_pos > 0, n / n_pos.clamp_min(1), 0.0)
    w_neg = torch.where(n_pos < n, -n / (n - n_pos).clamp_min(1), 0.0)
    return (torch.where(truth, w_pos, w_neg) * outputs).mean(dim=1)


def multilabel_hinge_loss(
    outputs: Tensor, labels: Tensor, min_margin: float = 1.0
) -> Tensor:
    """Per-sample mean over attributes of a class-balanced hinge max(0, m − s·f).

    Outputs and 0/1 labels are (N, A), one independent binary decision per
    column; in each column positives and negatives weigh half the batch each,
    so a rare attribute (a moustache: 4%) is not drowned by its negatives.
    """
    if labels.shape != outputs.shape:
        raise ValueError(
            f"multi-label outputs {tuple(outputs.shape)} and labels "
            f"{tuple(labels.shape)} must have the same shape"
        )
    truth = labels.to(outputs.device) > 0
    n = outputs.shape[0]
    n_pos = truth.sum(dim=0, keepdim=True).to(outputs.dtype)
    w_pos = torch.where(n_pos > 0, n / (2 * n_pos.clamp_min(1)), 0.0)
    w_neg = torch.where(n_pos < n, n / (2 * (n - n_pos).clamp_min(1)), 0.0)
    sign = torch.where(truth, 1.0, -1.0).to(outputs.dtype)
    hinge = F.relu(min_margin - sign * outputs)
    return (hinge * torch.where(truth, w_pos, w_neg)).mean(dim=1)


def top2_margin_hinge(
    outputs: Tensor, labels: Tensor, min_margin: float = 1.0
) -> Tensor:
    """Per-sample max(0, m − (f_y − max_{j≠y} f_j)): the hinge on the margin
    that a multiclass certificate divides (Crammer–Singer form)."""
    truth = _one_hot(outputs, labels)
    true = (outputs * truth).sum(dim=1)
    other = outputs.masked_fill(truth, float("-inf")).amax(dim=1)
    return F.relu(min_margin - (true - other))


class HingeLoss(nn.Module):
    """Binary hinge loss max(0, min_margin − y·f), averaged (see module doc)."""

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.min_margin, self.reduction = float(min_margin), reduction

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        return _reduce(hinge_loss(outputs, labels, self.min_margin), self.reduction)


class KRLoss(nn.Module):
    """Kantorovich–Rubinstein estimate E[f | y=1] − E[f | y=0] (to maximize)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        return _reduce(kr_estimate(outputs, labels), self.reduction)


class _HKR(nn.Module):
    """alpha·hinge − (1 − alpha)·KR, for a hinge and a KR term given by the subclass."""

    hinge = staticmethod(hinge_loss)
    kr = staticmethod(kr_estimate)

    def __init__(
        self, alpha: float, min_margin: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.alpha = _check_alpha(alpha)
        self.min_margin, self.reduction = float(min_margin), reduction

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        hinge = self.hinge(outputs, labels, self.min_margin)
        kr = self.kr(outputs, labels)
        return _reduce(self.alpha * hinge - (1 - self.alpha) * kr, self.reduction)


class HKRLoss(_HKR):
    """hKR loss alpha·hinge(min_margin) − (1 − alpha)·KR, alpha in [0, 1].

    The KR term pulls f towards the optimal transport potential between the
    classes; the hinge term puts the decision boundary at margin
    `min_margin` from the data. Minimize it.
    """


class MulticlassHingeLoss(nn.Module):
    """One-vs-all multiclass hinge (see `multiclass_hinge_loss`)."""

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.min_margin, self.reduction = float(min_margin), reduction

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        loss = multiclass_hinge_loss(outputs, labels, self.min_margin)
        return _reduce(loss, self.reduction)


class HKRMulticlassLoss(_HKR):
    """Multiclass hKR: alpha·one-vs-all hinge − (1 − alpha)·one-vs-all KR."""

    hinge = staticmethod(multiclass_hinge_loss)
    kr = staticmethod(multiclass_kr_estimate)


class HKRMarginLoss(_HKR):
    """Multiclass hKR with the hinge on the top-2 margin:
    alpha·max(0, m − (f_y − max_{j≠y} f_j)) − (1 − alpha)·one-vs-all KR.

    The hinge acts on exactly the quantity the certificate divides by √2·L
    (or 2·L), so a margin m on training points aims at a radius m/√2.
    """

    hinge = staticmethod(top2_margin_hinge)
    kr = staticmethod(multiclass_kr_estimate)


class HKRMultiLabelLoss(_HKR):
    """hKR for several independent attributes at once (Serrurier et al., 2023):
    per column alpha·balanced hinge − (1 − alpha)·KR, averaged over columns.

    Outputs and 0/1 labels are (N, A); each output is its own 1-Lipschitz
    binary classifier with its own certificate and transport counterfactual.
    """

    hinge = staticmethod(multilabel_hinge_loss)
    kr = staticmethod(multiclass_kr_estimate)
