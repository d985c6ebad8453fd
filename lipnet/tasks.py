"""The data of a training task: its splits, its classes and where they came from.

`load_task(config)` reads a config's task ("mnist08", "mnist10" or
"celeba") from the data folder and returns a `TaskData`; the provenance it
carries goes into the trained model's card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import data as D


def mnist_provenance(n_train: int) -> str:
    """Where a MNIST model's images came from: the first `n_train` training images
    (all 60,000 from `mnist-full`) and the official test set."""
    which = (
        "all 60,000 images" if n_train >= 60_000 else f"the first {n_train:,} images"
    )
    return (
        f"MNIST (Yann LeCun and Corinna Cortes), CC BY-SA 3.0. Training: {which} of "
        "the official training set; test: the official 10,000-image test set."
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


def _plain_name(name: object) -> str:
    """A data folder's name, never a path (a config is a file anyone can edit)."""
    if (
        not isinstance(name, str)
        or not name
        or Path(name).name != name
        or name in (".", "..")
    ):
        raise ValueError(f"data folder {name!r} must be a plain folder name")
    return name


def load_task(
    config: Mapping[str, Any], data_root: str | Path | None = None
) -> TaskData:
    """The data of a config's task: "mnist08", "mnist10" or "celeba".

    Args:
        config: a training config; reads "task", "seed" and, by task,
            "val_fraction" and "mnist_folder" ("mnist": the first 10,000
            training images; "mnist-full": all 60,000) or "attribute",
            "image_size", "image_folders".
        data_root: the data folder (default: `lipnet.data.data_dir()`).

    Returns:
        The splits as tensors, the classes and the provenance for the card.

    Raises:
        ValueError: an unknown task.
    """
    task = config["task"]
    seed = int(config.get("seed", 0))
    root = D.data_dir(data_root)
    if task in ("mnist08", "mnist10"):
        folder = root / _plain_name(config.get("mnist_folder", "mnist"))
        x, y = D.load_mnist(folder, "train")
        xt, yt = D.load_mnist(folder, "test")
        source = mnist_provenance(len(x))
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
                "source": source,
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


def on_device(data: TaskData, device: str | torch.device) -> TaskData:
    """The same task data with its tensors on `device`.

    Args:
        data: a task's splits.
        device: where the tensors go ("cpu", "cuda", …).

    Returns:
        A copy of `data` whose six tensors are on `device`.
    """
    moved = {
        k: getattr(data, k).to(device)
        for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }
    return replace(data, **moved)
