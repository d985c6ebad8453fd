"""Training from a config: data, architecture, loss, optimizer, epochs, seed.

`train(config)` builds the model, fits it with a progress bar and a
validation line per epoch, measures it on the test split (clean and
certified accuracy on an ε grid, Lipschitz bounds) and writes a complete
model folder whose card records all of it and the command to reproduce it.

This module is the loop; the task data is `lipnet.tasks`, the checkpoints
`lipnet.checkpoints` and the measurements `lipnet.metrics` (their names are
importable from here too, as before the split).
"""

from __future__ import annotations

import hashlib
import math
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import data as D  # noqa: F401  (kept: `lipnet.train.D` is patched in tests)
from . import distributed as dist
from .attacks.measure import attack_report
from .checkpoints import load_checkpoint as _load_checkpoint
from .checkpoints import save_checkpoint as _save_checkpoint
from .checkpoints import time_before
from .io import save
from .layers import LipSequential
from .losses import HKRLoss, HKRMarginLoss, HKRMulticlassLoss
from .metrics import EPS_GRID as EPS_GRID
from .metrics import SUBSET as SUBSET
from .metrics import accuracy as accuracy
from .metrics import as_loaded
from .metrics import evaluate as evaluate
from .metrics import lipschitz_report as lipschitz_report
from .metrics import predict as predict
from .metrics import rounding_report as rounding_report
from .models import build_model
from .tasks import CELEBA_LICENSE as CELEBA_LICENSE
from .tasks import TaskData as TaskData
from .tasks import load_task as load_task
from .tasks import on_device

# Radii logged on the validation split every epoch: 1.0, and 1.58 (MNIST's
# usual headline radius, the one the mnist10 recipe is chosen on).
VAL_RADII = (1.0, 1.58)


def make_loss(loss: Mapping[str, Any], n_classes: int) -> nn.Module:
    """The loss a config names: "hkr" (binary or multiclass one-vs-all),
    "hkr-margin" (multiclass, hinge on the top-2 margin) or "cross-entropy"."""
    kind = loss.get("kind", "hkr")
    if kind == "hkr":
        alpha, margin = float(loss["alpha"]), float(loss["min_margin"])
        if n_classes == 2:
            return HKRLoss(alpha, margin)
        return HKRMulticlassLoss(alpha, margin)
    if kind == "hkr-margin":
        return HKRMarginLoss(float(loss["alpha"]), float(loss["min_margin"]))
    if kind == "cross-entropy":
        return _CrossEntropy(n_classes)
    raise ValueError(
        f"unknown loss {kind!r}; choose 'hkr', 'hkr-margin' or 'cross-entropy'"
    )


class _CrossEntropy(nn.Module):
    """Cross-entropy for one logit (binary) or one score per class."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.binary = n_classes == 2

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        if self.binary:
            return F.binary_cross_entropy_with_logits(
                outputs.reshape(-1), (labels > 0).float().reshape(-1)
            )
        return F.cross_entropy(outputs, labels.long())


def _shift(x: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Random translation of a batch by up to `max_shift` pixels (zero fill)."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    idx = torch.arange(n)[:, None, None, None]
    ch = torch.arange(x.shape[1])[None, :, None, None]
    return padded[idx, ch, rows, cols]


def _flip(x: Tensor, gen: torch.Generator) -> Tensor:
    """Mirror a random half of the batch left-right (faces are near symmetric)."""
    mask = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def _batches(
    y: Tensor, batch_size: int, balanced: bool, gen: torch.Generator
) -> list[Tensor]:
    """Index batches of one epoch: a shuffle, or class-balanced draws."""
    n = len(y)
    if balanced:
        classes = y.unique()
        weights = torch.zeros(n)
        for c in classes:
            mask = y == c
            weights[mask] = 1.0 / mask.sum()
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, generator=gen)
    return list(order.split(batch_size))


def fit(
    model: LipSequential,
    data: TaskData,
    config: Mapping[str, Any],
    progress: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Train `model` in place; returns the per-epoch validation history.

    With `checkpoint`, the model, optimizer, random generator and history are
    saved there after every epoch; with `resume` a run restarts from that
    file after its last finished epoch and ends exactly as an uninterrupted
    run would (same batches, same augmentations).

    Under torchrun (see `lipnet.distributed`) every rank draws the same batches
    and augmentations from the same seed and trains on its strided share of
    each batch (rank r takes images r, r + world, …), wrapped in
    DistributedDataParallel, so one step still sees `batch_size` images and
    class-balanced draws stay balanced. Only rank 0 shows progress.
    """
    opt_cfg = dict(config.get("optimizer", {}))
    epochs = int(opt_cfg.get("epochs", 10))
    batch_size = int(opt_cfg.get("batch_size", 128))
    lr = float(opt_cfg.get("lr", 1e-3))
    lr_end = float(opt_cfg.get("lr_end", lr * 0.01))
    augment = config.get("augment", {})
    shift, flip = int(augment.get("shift", 0)), bool(augment.get("flip", False))
    seed = int(config.get("seed", 0))
    loss_fn = make_loss(config["loss"], len(data.classes))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr, weight_decay=float(opt_cfg.get("weight_decay", 0.0))
    )
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(data.y_train) / batch_size)
    total = max(epochs * steps_per_epoch, 1)
    world, rank = dist.world(), dist.rank()
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # broadcast_buffers (the default) sends rank 0's power-iteration
        # vectors `u` to every rank before each forward.
        net = DistributedDataParallel(model, broadcast_buffers=True)
        progress = progress and rank == 0

    def lr_at(step: int) -> float:  # cosine decay from lr to lr_end
        return lr_end + 0.5 * (lr - lr_end) * (1 + math.cos(math.pi * step / total))

    history: list[dict[str, float]] = []
    step, first, spent, start = 0, 1, 0.0, time.perf_counter()
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        state = _load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, step = list(state["history"]), int(state["step"])
        spent = float(state.get("train_time_s", 0.0))
        first = int(state["epoch"]) + 1
        if progress:
            tqdm.write(f"resumed from {ckpt} after epoch {first - 1}")
    for epoch in range(first, epochs + 1):
        net.train()
        running = 0.0
        batches = _batches(data.y_train, batch_size, data.balanced, gen)
        bar = tqdm(
            batches, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False
        )
        for idx in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            xb = _shift(data.x_train[idx], shift, gen)
            if flip:
                xb = _flip(xb, gen)
            yb = data.y_train[idx]
            if world > 1:
                xb, yb = xb[rank::world], yb[rank::world]
            if len(yb):
                loss = loss_fn(net(xb), yb)
            else:  # a last batch smaller than the world: take part, add nothing
                loss = net(data.x_train[idx][:1]).sum() * 0.0
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            running += value
            step += 1
            bar.set_postfix(loss=f"{value:.4f}")
        if world > 1:
            running = dist.all_mean(running)
        # Without a validation split (val_fraction 0), report on the training set.
        split = "val" if len(data.y_val) else "train"
        xv, yv = (
            (data.x_val, data.y_val) if split == "val" else (data.x_train, data.y_train)
        )
        val = evaluate(model, xv, yv, VAL_RADII, data.balanced)
        line = {
            "epoch": epoch,
            "loss": running / len(batches),
            f"{split}_accuracy": val["clean_accuracy"],
        }
        if val["certified_accuracy"] is not None:
            for eps in VAL_RADII:
                line[f"{split}_certified_{eps}"] = val["certified_accuracy"][f"{eps:g}"]
        history.append(line)
        if ckpt is not None and dist.is_main():
            _save_checkpoint(
                ckpt,
                {
                    "epoch": epoch,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": gen.get_state(),
                    "history": history,
                    "train_time_s": spent + time.perf_counter() - start,
                },
            )
        if progress:
            tqdm.write(
                "  ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in line.items()
                )
            )
    if world > 1:
        dist.broadcast_state(model)
    model.eval()
    return history


def train(
    config: Mapping[str, Any],
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    device: str | torch.device | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> tuple[LipSequential, dict[str, Any]]:
    """Train a model from `config`, measure it, and write its folder to `out`.

    Returns the model (eval mode) and its card. Deterministic for a seed on
    a given machine and thread count. With `device` (e.g. "cuda") the
    training steps run there; the measurements run on the CPU as without it.

    Under torchrun (`lipnet.distributed.init_from_env` called first) all ranks
    train together; rank 0 alone measures the model and writes `out`, and the
    other ranks return the trained model with an empty card.
    """
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    data = load_task(config, data_root)
    model = build_model(config["arch"], data.input_shape, data.classes)
    if device is not None:
        model.to(device)
        data = on_device(data, device)
    before = time_before(checkpoint, resume)
    start = time.perf_counter()
    history = fit(model, data, config, progress, checkpoint, resume)
    train_time = time.perf_counter() - start + before
    if device is not None:
        model.cpu()
        data = on_device(data, "cpu")
        dist.drop_caches(model)  # no eval cache of the old device stays
    if not dist.is_main():
        return model, {}
    test = evaluate(model, data.x_test, data.y_test, EPS_GRID, data.balanced)
    n_sub = min(SUBSET, len(data.y_test))
    subset = evaluate(
        model, data.x_test[:n_sub], data.y_test[:n_sub], EPS_GRID, data.balanced
    )
    card: dict[str, Any] = {
        "summary": config.get("summary", ""),
        "data": {k: v for k, v in data.provenance.items() if k != "test_ids"},
        "license": data.provenance.get("license", ""),
        "training": {
            "config": dict(config),
            "train_time_s": round(train_time, 1),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}",
            "history": history[-5:],
            **({"processes": dist.world()} if dist.world() > 1 else {}),
        },
        "metrics": {"test": test, "test_subset": subset},
        "reproduce": command or "",
    }
    if "test_ids" in data.provenance:
        card["data"]["test_ids_sha256"] = _ids_digest(data.provenance["test_ids"])
    card["lipschitz"] = lipschitz_report(model, data.x_test)
    n_attack = int(config.get("attack_n", SUBSET))
    card["attacks"] = attack_report(  # the certificates users get, in float64
        as_loaded(model), data.x_test[:n_attack], data.y_test[:n_attack]
    )
    if out is not None:
        save(model, out, card=card, name=config.get("name"))
    return model, card


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()
