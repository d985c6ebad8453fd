"""Training from a config: data, architecture, loss, optimizer, epochs, seed.

`train(config)` builds the model, fits it with a progress bar and a
validation line per epoch, measures it on the test split (clean and
certified accuracy on an ε grid, Lipschitz bounds) and writes a complete
model folder whose card records all of it and the command to reproduce it.
"""

from __future__ import annotations

import copy
import hashlib
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import data as D
from . import distributed as dist
from .attacks.measure import attack_report
from .certify import (
    box_rounding,
    certified_accuracy,
    lipschitz_estimate,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
    median_gradient_norm,
    within_bound,
)
from .io import save
from .layers import LipSequential
from .losses import HKRLoss, HKRMarginLoss, HKRMulticlassLoss
from .models import build_model
from .precision import to_float64

EPS_GRID = (0.0, 0.25, 0.5, 1.0, 1.58, 2.0, 3.0)
SUBSET = 500  # the card also records the first 500 test images, for quick checks
MNIST_PROVENANCE = (
    "MNIST (Yann LeCun and Corinna Cortes), CC BY-SA 3.0. Training: the first 10,000 "
    "images of the official training set; test: the official 10,000-image test set."
)
CELEBA_LICENSE = (
    "Trained on CelebA (Liu, Luo, Wang, Tang, ICCV 2015), which is licensed for "
    "NON-COMMERCIAL RESEARCH PURPOSES ONLY: this model inherits that restriction and "
    "must not be used commercially. No CelebA image is distributed with it."
)


@dataclass
class TaskData:
    """Tensors of one task's splits, its classes and where they came from."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]
    balanced: bool
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _holdout(
    x: Tensor, y: Tensor, fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Deterministic split of a training set into train and validation parts."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    n_val = round(len(x) * fraction)
    val, tr = perm[:n_val], perm[n_val:]
    return x[tr], y[tr], x[val], y[val]


def load_task(
    config: Mapping[str, Any], data_root: str | Path | None = None
) -> TaskData:
    """The data of a config's task: "mnist08", "mnist10" or "celeba"."""
    task = config["task"]
    seed = int(config.get("seed", 0))
    root = D.data_dir(data_root)
    if task in ("mnist08", "mnist10"):
        x, y = D.load_mnist(root / "mnist", "train")
        xt, yt = D.load_mnist(root / "mnist", "test")
        if task == "mnist08":
            x, y = D.mnist_binary(x, y, (0, 8))
            xt, yt = D.mnist_binary(xt, yt, (0, 8))
            classes = ["0", "8"]
        else:
            classes = [str(i) for i in range(10)]
        frac = float(config.get("val_fraction", 0.1))
        x, y, xv, yv = _holdout(x, y, frac, seed)
        return TaskData(
            x,
            y,
            xv,
            yv,
            xt,
            yt,
            classes,
            balanced=False,
            provenance={
                "dataset": "MNIST",
                "source": MNIST_PROVENANCE,
                "license": "CC BY-SA 3.0",
                "split": f"validation: {frac:.0%} of the training images, drawn with "
                f"torch.randperm(seed={seed}); test: the official test set",
                "counts": {"train": len(x), "val": len(xv), "test": len(xt)},
            },
        )
    if task == "celeba":
        attribute = config.get("attribute", "Mustache")
        size = int(config.get("image_size", 64))
        folders = list(config.get("image_folders", D.celeba.DEFAULT_FOLDERS))
        splits = D.load_celeba(
            root / "celeba",
            attribute=attribute,
            image_size=size,
            seed=seed,
            image_folders=folders,
        )
        tr, va, te = splits["train"], splits["val"], splits["test"]
        # CelebA's column is "Mustache" (US spelling); the classes read "moustache".
        name = attribute.replace("_", " ").lower().replace("mustache", "moustache")
        return TaskData(
            tr["images"],
            tr["labels"],
            va["images"],
            va["labels"],
            te["images"],
            te["labels"],
            [f"no {name}", name],
            balanced=True,
            provenance={
                "dataset": "CelebA subset, folders " + ", ".join(folders),
                "attribute": attribute,
                "license": CELEBA_LICENSE,
                "split": D.describe_split(seed),
                "counts": {
                    k: {"images": len(s["labels"]), "positives": int(s["labels"].sum())}
                    for k, s in splits.items()
                },
                "test_ids": list(te["ids"]),
            },
        )
    raise ValueError(f"unknown task {task!r}; choose mnist08, mnist10 or celeba")


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


def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Model outputs on `x`, in batches, without gradients."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(b) for b in x.split(batch_size)])


def accuracy(outputs: Tensor, labels: Tensor, balanced: bool = False) -> float:
    """(Balanced) accuracy of outputs: one logit (positive = class 1) or scores."""
    pred = (
        (outputs.reshape(-1) > 0).long()
        if outputs.shape[-1] == 1
        else outputs.argmax(1)
    )
    ok = (pred == labels.long()).float()
    if not balanced:
        return float(ok.mean())
    return float(torch.stack([ok[labels == c].mean() for c in labels.unique()]).mean())


def evaluate(
    model: LipSequential,
    x: Tensor,
    y: Tensor,
    eps_list: Sequence[float] = EPS_GRID,
    balanced: bool = False,
) -> dict[str, Any]:
    """Clean and certified (balanced) accuracy on (x, y); no certificate → None."""
    out = predict(model, x)
    metrics: dict[str, Any] = {
        "n": len(y),
        "balanced": balanced,
        "clean_accuracy": accuracy(out, y, balanced),
    }
    if model.head == "none":
        metrics["certified_accuracy"] = None
        return metrics
    # Certified as it will be loaded: in float64, with the weights as trained.
    shipped = to_float64(copy.deepcopy(model)) if _is_float32(model) else model
    cert = certified_accuracy(
        shipped, (x, y), [e for e in eps_list if e > 0], balanced=balanced
    )
    metrics["certified_accuracy"] = {f"{e:g}": round(v, 4) for e, v in cert.items()}
    return metrics


def _is_float32(model: nn.Module) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.dtype == torch.float32


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a stop mid-write leaves the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `fit`, without unpickling code."""
    return torch.load(path, map_location="cpu", weights_only=True)


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
        val = evaluate(model, xv, yv, (1.0,), data.balanced)
        line = {
            "epoch": epoch,
            "loss": running / len(batches),
            f"{split}_accuracy": val["clean_accuracy"],
        }
        if val["certified_accuracy"] is not None:
            line[f"{split}_certified_1.0"] = val["certified_accuracy"]["1"]
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


def lipschitz_report(model: LipSequential, x: Tensor) -> dict[str, Any]:
    """Declared constant beside the rigorous upper bound, an estimate, a lower bound.

    An unconstrained model gets its upper bound alone, to show how large it is.
    The bound is rounded up and the lower bound down, so the card never
    states a tighter interval than was measured.
    """
    upper = lipschitz_upper_bound(model, model.input_shape)
    declared = model.lipschitz_constant
    if model.head == "none":
        return {
            "declared": None,
            "upper_bound": _round_up(upper, 3),
            "note": "unconstrained: this model carries no certificate",
        }
    return {
        "declared": declared,
        "upper_bound": _round_up(upper, 6),
        "estimate": round(lipschitz_estimate(model, model.input_shape), 6),
        "lower_bound": math.floor(lipschitz_lower_bound(model, x[:64], steps=10) * 1e6)
        / 1e6,
        "median_gradient_norm": round(median_gradient_norm(model, x[:256]), 4),
        "sound": within_bound(upper, declared),
        **rounding_report(model),
        "method": "upper: product of exact per-layer norms at the real input size "
        "(dense: top eigenvalue of the Gram matrix; conv: FFT norm on the torus that "
        "embeds it; float64), rounded up; estimate: power iteration (tol 1e-7), "
        "from below; lower: largest input-gradient norm found on 64 test images; "
        "median gradient norm: on 256 test images (1 = gradient-norm preserving); "
        "rounding bound: the most floating-point rounding can change a score "
        "anywhere in the pixel box, in float64 as loaded (taken off every radius) "
        "and in float32 for comparison, rounded up",
    }


def rounding_report(model: LipSequential) -> dict[str, float]:
    """The card's rounding bounds: float64 as loaded, and float32 for comparison."""
    shipped = to_float64(copy.deepcopy(model)) if _is_float32(model) else model
    box = box_rounding(shipped)
    return {
        "rounding_bound": float(f"{box['score_error'] * (1 + 1e-3):.3g}"),
        "rounding_bound_float32": float(f"{box['score_error_float32'] * 1.001:.3g}"),
    }


def _round_up(value: float, digits: int) -> float:
    return math.ceil(value * 10**digits) / 10**digits


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
        data = _on(data, device)
    before = _time_before(checkpoint, resume)
    start = time.perf_counter()
    history = fit(model, data, config, progress, checkpoint, resume)
    train_time = time.perf_counter() - start + before
    if device is not None:
        model.cpu()
        data = _on(data, "cpu")
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
    card["attacks"] = attack_report(
        model, data.x_test[:n_attack], data.y_test[:n_attack]
    )
    if out is not None:
        save(model, out, card=card, name=config.get("name"))
    return model, card


def _time_before(checkpoint: str | Path | None, resume: bool) -> float:
    """Training seconds spent before a resume (0 for a fresh run)."""
    if not resume or checkpoint is None or not Path(checkpoint).is_file():
        return 0.0
    return float(_load_checkpoint(Path(checkpoint)).get("train_time_s", 0.0))


def _on(data: TaskData, device: str | torch.device) -> TaskData:
    """The same task data with its tensors on `device`."""
    moved = {
        k: getattr(data, k).to(device)
        for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }
    return replace(data, **moved)


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()
