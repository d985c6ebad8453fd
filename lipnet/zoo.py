"""The shipped model zoo: where the models live, their twins, their test images."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from . import data as D
from .data.celeba import celeba_example_attributes, celeba_example_count
from .data.celeba_identity import (
    identity_example_attributes,
    identity_example_count,
    identity_examples,
)
from .io import SPEC_FILE, parse_spec

MODELS_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
ATTRIBUTES_TASK = "celeba-attributes"
"""The training task of a multi-attribute face model (`lipnet.train_attributes`)."""
DEFAULT_MODEL = "mnist08-hkr"
"""The model the dashboard opens on when it is shipped."""


def models_dir() -> Path:
    """Folder of the shipped models (`LIPNET_MODELS` overrides it)."""
    return Path(os.environ.get("LIPNET_MODELS", MODELS_DIR))


def list_models(root: str | Path | None = None) -> dict[str, Path]:
    """Shipped model folders by name: the demo's first model (`DEFAULT_MODEL`,
    0 → 8) first, then certified models, then their baselines."""
    root = Path(root) if root is not None else models_dir()
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / SPEC_FILE).is_file():
            found[folder.name] = folder
    return dict(
        sorted(
            found.items(),
            key=lambda kv: (kv[0] != DEFAULT_MODEL, kv[0].endswith("baseline"), kv[0]),
        )
    )


def twin_of(name: str, names: list[str] | dict[str, Path]) -> str | None:
    """The contrast model of a shipped model: "x-hkr" ↔ "x-baseline"."""
    for a, b in (("-hkr", "-baseline"), ("-baseline", "-hkr")):
        if name.endswith(a):
            other = name[: -len(a)] + b
            if other in names:
                return other
    return None


def test_images(
    spec: dict, n: int = 64, data_root: str | Path | None = None
) -> tuple[Tensor, Tensor]:
    """The first `n` test images and labels of the task a model was trained on.

    Reads the task from the model card's training config and decodes only
    what it returns; raises FileNotFoundError when the data directory is not
    there (the dashboard then offers its built-in and uploaded images only).
    """
    config = _task(spec)
    root = D.data_dir(data_root)
    task = config["task"]
    if task == ATTRIBUTES_TASK:
        x, y, _ = identity_examples(
            **_identity(spec, root),
            image_size=int(config.get("image_size", 64)),
            n=n,
        )
        return x, y
    if task == "celeba":
        x, y, _ = D.celeba_examples(
            root / "celeba",
            attribute=config.get("attribute", "Mustache"),
            image_size=int(config.get("image_size", 64)),
            seed=int(config.get("seed", 0)),
            n=n,
            image_folders=_folders(config),
        )
        return x, y
    x, y = D.load_mnist(root / "mnist", "test")
    if task == "mnist08":
        x, y = D.mnist_binary(x, y, (0, 8))
    return x[:n].clone(), y[:n].clone()


def _identity(spec: dict, root: Path) -> dict:
    """The arguments of the `identity_example*` functions for one attribute of
    a multi-attribute model (`lipnet.attribute`), from its training config."""
    if "attribute" not in spec:
        raise ValueError("pick one attribute of this multi-attribute model")
    config = _task(spec)
    return {
        "root": root / "celeba",
        "attributes": config["attributes"],
        "attribute": spec["attribute"],
        "seed": int(config.get("seed", 0)),
        "image_folders": _folders(config),
    }


def _task(spec: dict) -> dict:
    config = spec.get("card", {}).get("training", {}).get("config")
    if not config:
        raise ValueError("this model's card has no training config, so no test set")
    return config


def dataset_name(spec: dict) -> str:
    """The data set a model's test images (and their labels) come from: "CelebA",
    "MNIST", or "the data set" when its card does not say."""
    task = spec.get("card", {}).get("training", {}).get("config", {}).get("task", "")
    if task.startswith("celeba"):
        return "CelebA"
    return "MNIST" if task.startswith("mnist") else "the data set"


def _folders(config: dict) -> list[str]:
    """The CelebA image folders a config trained on (old configs: the first)."""
    return list(config.get("image_folders", D.celeba.DEFAULT_FOLDERS))


def test_attributes(
    spec: dict, n: int = 64, data_root: str | Path | None = None
) -> dict[str, Tensor]:
    """Attributes of exactly the images `test_images(spec, n, data_root)` returns.

    For a CelebA task: each of the attribute file's 40 attributes → a bool
    tensor (True where the attribute is 1), in the same order as the images.
    Other tasks have no attributes: an empty dict. Decodes no image.
    """
    config = _task(spec)
    if config["task"] == ATTRIBUTES_TASK:
        _, names, matrix = identity_example_attributes(
            **_identity(spec, D.data_dir(data_root)), n=n
        )
    elif config["task"] != "celeba":
        return {}
    else:
        _, names, matrix = celeba_example_attributes(
            D.data_dir(data_root) / "celeba",
            attribute=config.get("attribute", "Mustache"),
            seed=int(config.get("seed", 0)),
            n=n,
            image_folders=_folders(config),
        )
    values = torch.from_numpy(matrix == 1)
    return {name: values[:, k].clone() for k, name in enumerate(names)}


def test_image_count(spec: dict, data_root: str | Path | None = None) -> int:
    """How many images `test_images` can return for this task at most.

    MNIST: the task's test images. CelebA: twice the rarer class of the test
    split of the images present in the data folder (the gallery alternates
    positives and negatives). Cheap: reads labels and file names, decodes no
    image. Raises like `test_images` when there is no data.
    """
    config = _task(spec)
    root = D.data_dir(data_root)
    if config["task"] == ATTRIBUTES_TASK:
        return identity_example_count(**_identity(spec, root))
    if config["task"] == "celeba":
        return celeba_example_count(
            root / "celeba",
            attribute=config.get("attribute", "Mustache"),
            seed=int(config.get("seed", 0)),
            image_folders=_folders(config),
        )["examples"]
    _, y = D.load_mnist(root / "mnist", "test")
    if config["task"] == "mnist08":
        return int(((y == 0) | (y == 8)).sum())
    return len(y)


def same_task(spec: dict) -> dict | None:
    """The spec of a shipped model with the same input shape and classes, if any.

    Lets an uploaded model use a shipped test set chosen by the server, never
    by the upload's own card.
    """
    for folder in list_models().values():
        shipped = read_spec(folder)
        if (shipped["input_shape"], shipped["classes"]) == (
            spec["input_shape"],
            spec["classes"],
        ):
            return shipped
    return None


def read_spec(folder: str | Path) -> dict:
    """A model folder's validated spec, without loading its weights."""
    return parse_spec((Path(folder) / SPEC_FILE).read_bytes())
