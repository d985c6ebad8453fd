"""Train one network for many CelebA attributes (task "celeba-attributes").

Serrurier et al. (NeurIPS 2023): one gradient-norm-preserving trunk, one
1-Lipschitz output per attribute, hKR per attribute balanced for its own
frequencies (`HKRMultiLabelLoss`), faces split by identity
(`lipnet.data.celeba_identity`). Augmentation moves the face (flips, shifts,
small scale and rotation) so that its counterfactual learns to move with it.
A checkpoint after every epoch and `resume` continue an interrupted run; every
epoch appends one JSON line of validation numbers per attribute to the log.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attributes import MULTILABEL, attribute_radii, balanced_accuracy, certified_rates
from .data.celeba import EVERY_FOLDER
from .data.celeba_identity import IDENTITY_SPLIT_RULE, load_celeba_faces
from .data.paths import data_dir
from .layers import LipSequential, eval_mode
from .losses import HKRMultiLabelLoss
from .models import build_model
from .precision import to_float64
from .train import CELEBA_LICENSE, _flip, _load_checkpoint, _save_checkpoint, _shift

EPS = (0.25, 0.5, 1.0)


def load_faces(config: Mapping[str, Any], data_root: str | Path | None = None) -> dict:
    """The config's faces, split by identity, labelled with its attributes."""
    return load_celeba_faces(
        data_dir(data_root) / "celeba",
        config["attributes"],
        int(config.get("image_size", 64)),
        int(config.get("seed", 0)),
        image_folders=list(config.get("image_folders", EVERY_FOLDER)),
    )


def build(config: Mapping[str, Any], image_size: int) -> LipSequential:
    """The multi-attribute network: one disjoint 1-Lipschitz output per attribute,
    or, for an unconstrained twin ("plain-…" architectures), one plain output each."""
    attributes = list(config["attributes"])
    if len(attributes) < 3:  # build_model gives 3+ classes one output each
        raise ValueError("a multi-attribute model needs at least 3 attributes")
    arch = dict(config["arch"])
    if not _unconstrained(config):
        arch["head"] = "frobenius"
    model = build_model(arch, (3, image_size, image_size), attributes)
    model.task = MULTILABEL
    return model


def _unconstrained(config: Mapping[str, Any]) -> bool:
    return str(config["arch"].get("kind", "")).startswith("plain")


def loss_function(config: Mapping[str, Any], labels: Tensor) -> nn.Module:
    """hKR per attribute for a certified model; for an unconstrained twin,
    binary cross-entropy with each attribute's positives weighted by its
    negative/positive ratio in `labels` (the training split), so that every
    attribute is balanced as hKR balances it."""
    loss = config["loss"]
    kind = loss.get("kind", "hkr-multilabel")
    if kind == "bce-multilabel":
        positives = labels.sum(0).double().clamp_min(1)
        weight = ((len(labels) - positives) / positives).float()
        bce = nn.BCEWithLogitsLoss(pos_weight=weight)
        return _FloatLabels(bce)
    if kind != "hkr-multilabel":
        raise ValueError(
            f"unknown loss {kind!r}; choose 'hkr-multilabel' or 'bce-multilabel'"
        )
    return HKRMultiLabelLoss(float(loss["alpha"]), float(loss["min_margin"]))


class _FloatLabels(nn.Module):
    """A loss that takes 0/1 integer labels as floats."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: Tensor, labels: Tensor) -> Tensor:
        return self.loss(outputs, labels.to(outputs.dtype))


def augment(x: Tensor, config: Mapping[str, Any], gen: torch.Generator) -> Tensor:
    """Flip, shift, scale and rotate a uint8 or float batch; returns float in [0, 1]."""
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
    a = config.get("augment", {})
    scale, degrees = float(a.get("scale", 0.0)), float(a.get("rotate", 0.0))
    if scale > 0 or degrees > 0:
        n = x.shape[0]
        s = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
        t = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = t.cos() / s, -t.sin() / s
        theta[:, 1, 0], theta[:, 1, 1] = t.sin() / s, t.cos() / s
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    x = _shift(x, int(a.get("shift", 0)), gen)
    return _flip(x, gen) if a.get("flip", False) else x


def validate(model: LipSequential, x: Tensor, y: Tensor) -> dict[str, Any]:
    """Balanced and certified accuracy per attribute, as the model will be loaded
    (float64 with its float32-built weights); an unconstrained model has no
    certificate, so only its balanced accuracy."""
    names = list(model.classes)
    if model.head == "none":
        with eval_mode(model), torch.no_grad():
            s = torch.cat([model(xb.float().div(255.0)) for xb in x.split(500)])
        return {
            "balanced_accuracy": dict(
                zip(names, balanced_accuracy(s, y).tolist(), strict=True)
            )
        }
    shipped = to_float64(copy.deepcopy(model))
    scores, radii = [], []
    for xb, yb in zip(x.split(500), y.split(500), strict=True):
        out, r = attribute_radii(shipped, xb.float().div(255.0), yb)
        scores.append(out.float())
        radii.append(r.float())
    s, r = torch.cat(scores), torch.cat(radii)
    cert = certified_rates(r, y, EPS)
    return {
        "balanced_accuracy": dict(
            zip(names, balanced_accuracy(s, y).tolist(), strict=True)
        ),
        **{
            f"certified_{e:g}": dict(zip(names, v.tolist(), strict=True))
            for e, v in cert.items()
        },
    }


def fit(
    config: Mapping[str, Any],
    data: dict,
    checkpoint: Path,
    log: Path,
    resume: bool = False,
    val_n: int = 2000,
    stop_after: int | None = None,
) -> LipSequential:
    """Train with a checkpoint and a log line after every epoch; returns the model.

    `stop_after` ends the run after that epoch (a session's share of a long
    training); `resume` goes on from the checkpoint as if never stopped.
    """
    opt = dict(config.get("optimizer", {}))
    epochs, batch = int(opt.get("epochs", 100)), int(opt.get("batch_size", 128))
    lr, lr_end = float(opt.get("lr", 1e-2)), float(opt.get("lr_end", 1e-5))
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    model = build(config, data["train"]["images"].shape[-1])
    loss_fn = loss_function(config, data["train"]["labels"])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    xs, ys = data["train"]["images"], data["train"]["labels"]
    total = epochs * math.ceil(len(ys) / batch)
    step, first, spent = 0, 1, 0.0
    if resume and checkpoint.is_file():
        state = _load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # a slimmed checkpoint restarts Adam's moments
            optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, first = int(state["step"]), int(state["epoch"]) + 1
        spent = float(state.get("train_time_s", 0.0))
    xv, yv = data["val"]["images"][:val_n], data["val"]["labels"][:val_n]
    last = epochs if stop_after is None else min(epochs, stop_after)
    for epoch in range(first, last + 1):
        started, running = time.perf_counter(), 0.0
        model.train()
        order = torch.randperm(len(ys), generator=gen).split(batch)
        for idx in order:
            rate = lr_end + 0.5 * (lr - lr_end) * (1 + math.cos(math.pi * step / total))
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = loss_fn(model(augment(xs[idx], config, gen)), ys[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += float(loss.detach())
            step += 1
        spent += time.perf_counter() - started
        line = {
            "epoch": epoch,
            "loss": running / len(order),
            "train_time_s": round(spent, 1),
            **validate(model, xv, yv),
        }
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")
        _save_checkpoint(
            checkpoint,
            {
                "epoch": epoch,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": gen.get_state(),
                "train_time_s": spent,
            },
        )
    model.eval()
    return model


def card(config: Mapping[str, Any], data: dict, metrics: dict) -> dict[str, Any]:
    """The model card of a multi-attribute face model."""
    return {
        "summary": config.get("summary", ""),
        "license": CELEBA_LICENSE,
        "data": {
            "dataset": "CelebA subset, folders "
            + ", ".join(config.get("image_folders", EVERY_FOLDER)),
            "attributes": list(config["attributes"]),
            "license": CELEBA_LICENSE,
            "split": IDENTITY_SPLIT_RULE,
            "counts": {k: len(v["ids"]) for k, v in data.items()},
        },
        "training": {"config": dict(config)},
        "attribute_metrics": metrics,
    }


def train(
    config: Mapping[str, Any],
    out: Path,
    data_root: str | Path | None = None,
    resume: bool = False,
    command: str = "",
    stop_after: int | None = None,
) -> LipSequential | None:
    """Train, measure on validation and once on test, and write the model folder.

    The checkpoint is `out`.ckpt and the per-epoch log `out`.log.jsonl. With
    `stop_after` before the last epoch, only the checkpoint and the log are
    written (None is returned): `resume` goes on later.
    """
    from .io import save

    data = load_faces(config, data_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_name(out.name + ".log.jsonl")
    if not resume and log.exists():
        log.unlink()
    ckpt = out.with_name(out.name + ".ckpt")
    model = fit(config, data, ckpt, log, resume, stop_after=stop_after)
    if _load_checkpoint(ckpt)["epoch"] < int(config["optimizer"]["epochs"]):
        return None
    metrics = {
        split: validate(model, data[split]["images"], data[split]["labels"])
        for split in ("val", "test")
    }
    info = card(config, data, metrics)
    info["reproduce"] = command
    save(model, out, card=info, name=config.get("name", out.name))
    return model
