"""Is a counterfactual a meaningful change? Its statistics (specificity,
luminance, frequency content) and an independent judge's verdict beside
noise and template controls of the same size (`counterfactual_quality`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import eval_mode
from . import counterfactual
from .common import predictions


def _flat_unit(deltas: Tensor) -> Tensor:
    """Each change flattened and scaled to unit L2 norm (zero stays zero)."""
    flat = deltas.detach().flatten(1).double()
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)


def specificity(deltas: Tensor) -> float:
    """Mean pairwise cosine similarity of the changes, self-pairs excluded.

    `deltas` is (N, ...) with N ≥ 2: mean over i ≠ j of ⟨δᵢ, δⱼ⟩ / (‖δᵢ‖‖δⱼ‖).
    1.0 means one template pasted on every input; ≈ 0 means input-specific
    (or random) changes; negative values are possible. A zero change counts
    as cosine 0 with every other one. Computed in O(N·D) as
    (‖Σ uᵢ‖² − Σ ‖uᵢ‖²) / (N(N − 1)) with uᵢ = δᵢ / ‖δᵢ‖. Note the name: a
    *high* value is a *non-specific* change.
    """
    if deltas.dim() < 2 or deltas.shape[0] < 2:
        raise ValueError(f"specificity needs at least 2 changes, got {deltas.shape}")
    u = _flat_unit(deltas)
    n = u.shape[0]
    total = u.sum(0).pow(2).sum() - u.pow(2).sum()
    return float(total / (n * (n - 1)))


def _per_input(shares: Tensor, reduce: bool) -> Tensor | float:
    """The mean share over inputs with a non-zero change (nan if none), or all."""
    if not reduce:
        return shares
    return float(shares.nanmean()) if bool((~shares.isnan()).any()) else float("nan")


def luminance_share(deltas: Tensor, reduce: bool = True) -> Tensor | float:
    """Share of each change's energy (squared L2) along the luminance direction.

    For RGB changes (N, 3, H, W): per pixel the 3-vector δ is projected on
    (1, 1, 1)/√3, and share = Σ_pixels proj² / Σ_pixels ‖δ‖², in [0, 1]:
    1 for a grey (equal R, G, B) change, 0 for a pure chroma one such as
    (+1, −1, 0), ≈ 1/3 for white RGB noise. One-channel changes (N, 1, H, W)
    are all luminance: 1.0. Returns the mean over inputs (inputs whose change
    is exactly zero are left out) or, with `reduce=False`, the (N,) shares
    (nan for a zero change).
    """
    if deltas.dim() != 4:
        raise ValueError(f"deltas must be (N, C, H, W), got {tuple(deltas.shape)}")
    d = deltas.detach().double()
    if d.shape[1] == 1:
        return _per_input(torch.ones(d.shape[0], dtype=torch.float64), reduce)
    if d.shape[1] != 3:
        raise ValueError(f"luminance needs 1 or 3 channels, got {d.shape[1]}")
    proj = d.sum(1).pow(2).sum((1, 2)) / 3.0
    energy = d.pow(2).sum((1, 2, 3))
    shares = torch.where(energy > 0, proj / energy.clamp_min(1e-300), torch.nan)
    return _per_input(shares, reduce)


def radial_frequency(h: int, w: int) -> Tensor:
    """(H, W) radial spatial frequency of torch.fft.fft2's bins as a fraction of
    Nyquist: √(f_y² + f_x²) / 0.5 with f in cycles per pixel (fftfreq);
    0 at DC, 1 at the edge midpoints, √2 in the corners."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, dtype=torch.float64)
    return (fy[:, None].pow(2) + fx[None, :].pow(2)).sqrt() / 0.5


def high_frequency_share(
    deltas: Tensor, cutoff: float = 0.25, reduce: bool = True
) -> Tensor | float:
    """Share of each change's energy above a radial spatial-frequency cutoff.

    Per input: |torch.fft.fft2(δ)|² over the last two dims, per channel and
    summed over channels; share = energy in bins with radial frequency
    (:func:`radial_frequency`, a fraction of Nyquist) strictly above `cutoff`
    over the total energy (DC included, counted as low). By Parseval the
    total is H·W·‖δ‖². White noise gives ≈ the share of bins above the cutoff
    (≈ 1 − π·cutoff²/4 ≈ 0.95 for 0.25); a smooth blob wider than a few pixels
    gives ≈ 0. Returns the mean over inputs with a non-zero change or, with
    `reduce=False`, the (N,) shares (nan for a zero change).
    """
    if deltas.dim() < 3:
        raise ValueError(f"deltas must be (N, [C,] H, W), got {tuple(deltas.shape)}")
    d = deltas.detach().double()
    if d.dim() == 3:
        d = d.unsqueeze(1)
    power = torch.fft.fft2(d).abs().pow(2).flatten(1, -3).sum(1)  # (N, H, W)
    high = radial_frequency(*d.shape[-2:]).to(power.device) > cutoff
    energy = power.sum((1, 2))
    shares = torch.where(
        energy > 0, (power * high).sum((1, 2)) / energy.clamp_min(1e-300), torch.nan
    )
    return _per_input(shares, reduce)


def low_pass(x: Tensor, factor: int = 2) -> Tensor:
    """Area down-sampling by `factor` (F.avg_pool2d; a remainder of H or W not
    divisible by `factor` is dropped): the coarser view the judge sees, where
    pixel-level noise averages out and a visible change survives."""
    return F.avg_pool2d(x, factor)


class LowPass(nn.Module):
    """:func:`low_pass` as a layer, to put in front of a judge."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return low_pass(x, self.factor)


def judge_predictions(judge: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """The classes a judge (or any classifier) gives x, in eval mode: a single
    logit (N, 1) means binary (class 1 iff the logit is > 0), (N, K) argmax."""
    with eval_mode(judge), torch.no_grad():
        return torch.cat([predictions(judge(b)) for b in x.split(batch_size)])


def judge_validity(judge: nn.Module, x_cf: Tensor, target: int | Tensor) -> float:
    """Share of the counterfactuals `x_cf` the judge classifies as `target`.

    `judge` is any nn.Module returning logits: (N, 1) for binary (class 1 iff
    the logit is > 0) or (N, K) (argmax). `target` is one class for all, or
    (N,) classes. The judge is run in eval mode without gradients, on `x_cf`
    as given: any preprocessing (e.g. :class:`LowPass`) belongs in the judge.
    """
    pred = judge_predictions(judge, x_cf)
    t = torch.as_tensor(target, device=pred.device).long().reshape(-1)
    return float((pred == t).double().mean())


def noise_control(
    x: Tensor,
    norms: Tensor,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> Tensor:
    """x plus a random Gaussian direction scaled to L2 norm `norms[i]` per input.

    The control for "is it the direction or just the size?": same budget as
    the counterfactual, no direction. Not clipped by default, so each change
    has exactly the requested norm (pixels may leave [0, 1]); `clip=True`
    clamps to [0, 1], which shrinks the norm. Noise is drawn on the CPU with
    `generator` (so a seed gives the same noise on any device).
    """
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    noise = noise.to(x.device)
    shape = (-1, *[1] * (x.dim() - 1))
    unit = noise / noise.flatten(1).norm(dim=1).view(shape)
    out = x + (unit * norms.to(unit).view(shape)).to(x.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def template_control(x: Tensor, deltas: Tensor, clip: bool = False) -> Tensor:
    """x plus the template: the mean change over all inputs, rescaled per input
    to that input's ‖δᵢ‖.

    The control for "is the change input-specific?": if pasting the average
    change convinces the judge as often, the counterfactuals are a template.
    The mean includes δᵢ itself (a 1/N share). An all-zero mean change gives
    a zero template. Not clipped by default (norms exact); `clip=True` clamps
    to [0, 1].
    """
    shape = (-1, *[1] * (x.dim() - 1))
    mean = deltas.detach().double().mean(0, keepdim=True)
    unit = mean / mean.flatten(1).norm(dim=1).clamp_min(1e-30).view(shape)
    norms = deltas.detach().double().flatten(1).norm(dim=1).view(shape)
    out = x + (unit * norms).to(x.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def _changes(
    model: nn.Module,
    x: Tensor,
    method: str,
    overshoot: float,
    target: int,
    batch_size: int,
) -> tuple[Tensor, Tensor]:
    """(x_adv, success) of `model`'s counterfactuals towards `target`."""
    with eval_mode(model), torch.no_grad():
        binary = model(x[:1]).shape[-1] == 1
    xs, ok = [], []
    for xb in x.split(batch_size):
        r = counterfactual(
            model,
            xb,
            method,
            target=None if binary else target,
            keep_trajectory=False,
            overshoot=overshoot,
        )
        xs.append(r.x_adv)
        ok.append(r.success)
    return torch.cat(xs), torch.cat(ok)


def _quality_of(
    model: nn.Module,
    x: Tensor,
    judge: nn.Module,
    target: int,
    method: str,
    overshoot: float,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """Every measurement of one model's counterfactuals on x."""
    x_cf, success = _changes(model, x, method, overshoot, target, batch_size)
    deltas = x_cf - x
    norms = deltas.flatten(1).norm(dim=1)
    gen = torch.Generator().manual_seed(seed)
    return {
        "validity": judge_validity(judge, x_cf, target),
        "noise_validity": judge_validity(judge, noise_control(x, norms, gen), target),
        "template_validity": judge_validity(judge, template_control(x, deltas), target),
        "flip_rate": float(success.double().mean()),
        "specificity": specificity(deltas) if len(x) > 1 else float("nan"),
        "luminance_share": luminance_share(deltas),
        "high_frequency_share": high_frequency_share(deltas),
        "mean_l2": float(norms.mean()),
    }


def counterfactual_quality(
    model: nn.Module,
    x: Tensor,
    judge: nn.Module,
    target: int,
    *,
    overshoot: float = 1.0,
    method: str = "transport",
    twin: nn.Module | None = None,
    seed: int = 0,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Do `model`'s counterfactuals towards class `target` change what an
    independent `judge` sees, more than noise or a template of the same size?

    `x` (N, C, H, W) in [0, 1]; `target` is a class index shared by the model,
    the judge and the twin. Inputs the model (or the twin, if given) already
    puts in `target` are left out (`n_excluded`): a binary model's
    counterfactual flips its decision, so it would move them away from the
    target. On the rest (`n`):

    - validity: share of the counterfactuals the judge classifies as target
      (failed flips included, as found); `flip_rate`: share the model flipped;
      `judge_base_rate`: share of the untouched inputs already judged target;
    - noise_validity / template_validity: the judge on :func:`noise_control`
      (seeded by `seed`) and :func:`template_control` with the same norms;
    - specificity, luminance_share, high_frequency_share (cutoff 0.25 of
      Nyquist), mean_l2 of the changes δ = x_cf − x;
    - with `twin` (the unconstrained contrast model): twin_validity, the
      judge on the twin's own counterfactuals, and `twin`, the same dict of
      measurements for the twin's changes.

    `overshoot` is the counterfactual methods' own parameter. For "transport"
    the step aims at margin −overshoot·|m(x)|: 1.0 lands "as far past the
    boundary as the input was before it" when the gradient is exact and the
    pixel box does not bind (the walk stops as soon as the decision flips).
    For "deepfool" the summed step is scaled by (1 + overshoot), the same
    point for a linear model. Both use only the margin and its gradient, so
    they apply unchanged to a twin without certificate; the twin uses the
    same method and overshoot. The pixel box [0, 1] is respected.
    """
    x = x.detach()
    keep = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for net in (model, twin):
        if net is not None:
            keep &= judge_predictions(net, x, batch_size).to(x.device) != target
    x_in = x[keep]
    report: dict[str, Any] = {
        "n": int(keep.sum()),
        "n_excluded": int((~keep).sum()),
        "method": method,
        "overshoot": overshoot,
    }
    if len(x_in) == 0:
        raise ValueError(f"every input is already classified as class {target}")
    report["judge_base_rate"] = judge_validity(judge, x_in, target)
    args = (judge, target, method, overshoot, seed, batch_size)
    report.update(_quality_of(model, x_in, *args))
    if twin is not None:
        report["twin"] = _quality_of(twin, x_in, *args)
        report["twin_validity"] = report["twin"]["validity"]
    return report
