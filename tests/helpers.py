"""Shared test helpers: a measured operator norm, short random training, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from lipnet.constraints import power_iteration


def measured_norm(layer: nn.Module, shape: tuple[int, ...], seed: int = 0) -> float:
    """L2 operator norm of x ↦ layer(x) − layer(0) at `shape`, by power iteration."""
    layer.eval()
    zero = torch.zeros(1, *shape)
    with torch.no_grad():
        offset = layer(zero)
    gen = torch.Generator().manual_seed(seed)
    u0 = torch.randn(1, *shape, generator=gen)
    sigma, _ = power_iteration(lambda u: layer(u) - offset, u0, n_iter=3000, tol=1e-8)
    return sigma


def train_steps(layer: nn.Module, shape: tuple[int, ...], steps: int = 20) -> None:
    """A few Adam steps on a random objective, so weights leave their init."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    layer.train()
    for i in range(steps):
        x = torch.randn(8, *shape, generator=gen)
        loss = layer(x).pow(2).mean() * (1 if i % 2 else -1) + layer(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def pgd_l2_flips(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: torch.Tensor,
    steps: int = 50,
    restarts: int = 3,
) -> torch.Tensor:
    """Whether an L2 PGD attack within per-sample radius `eps` flips each decision.

    A plain reference attack for soundness tests: maximizes the margin loss of
    the true class over the ball, with random starts, no pixel box.
    """
    flipped = torch.zeros(x.shape[0], dtype=torch.bool)
    shape = (-1,) + (1,) * (x.dim() - 1)
    radius = eps.view(shape)
    for r in range(restarts):
        gen = torch.Generator().manual_seed(r)
        delta = torch.randn(x.shape, generator=gen)
        delta = delta / delta.flatten(1).norm(dim=1).view(shape) * radius * 0.5
        for _ in range(steps):
            delta.requires_grad_(True)
            out = model(x + delta)
            margin = _margin(out, labels)
            (g,) = torch.autograd.grad(margin.sum(), delta)
            with torch.no_grad():
                g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                delta = delta - 0.1 * radius * g
                norm = delta.flatten(1).norm(dim=1).view(shape)
                delta = delta * torch.clamp(radius / norm.clamp_min(1e-12), max=1.0)
                flipped |= _margin(model(x + delta), labels) < 0
    return flipped


def _margin(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Signed margin of the true class (negative = misclassified)."""
    if out.shape[-1] == 1 or out.dim() == 1:
        sign = torch.where(labels > 0, 1.0, -1.0)
        return out.reshape(-1) * sign
    true = out.gather(1, labels.view(-1, 1))[:, 0]
    other = out.scatter(1, labels.view(-1, 1), float("-inf")).max(dim=1).values
    return true - other


def toy_binary_model(seed: int = 0, steps: int = 300):
    """A small dense 1-Lipschitz classifier trained with hKR on two Gaussian blobs."""
    import lipnet

    torch.manual_seed(seed)
    d = 20
    centers = torch.randn(2, d) * 1.5
    y = torch.randint(0, 2, (512,))
    x = centers[y] + torch.randn(512, d)
    model = lipnet.LipSequential(
        lipnet.SpectralLinear(d, 32),
        lipnet.GroupSort2(),
        lipnet.SpectralLinear(32, 32),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(32, 1),
        input_shape=None,
        classes=["a", "b"],
    )
    loss_fn = lipnet.HKRLoss(0.98, min_margin=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        idx = torch.randint(0, 512, (128,))
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, x, y


ROOT = Path(__file__).resolve().parents[1]


def run_report(
    *args: str, timeout: float = 600, model: str = "mnist08-hkr"
) -> subprocess.CompletedProcess:
    """`python -m lipnet report assets/models/MODEL ARGS --quiet` at the root.

    One thread per process: the CLI shares a busy 2-core machine with the tests.
    """
    command = [sys.executable, "-m", "lipnet", "report", f"assets/models/{model}"]
    return subprocess.run(
        [*command, *args, "--quiet"],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
