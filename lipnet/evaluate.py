"""Recompute a shipped model's card metrics from the data (`python -m lipnet eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .attacks.measure import attack_report
from .io import load, save
from .train import EPS_GRID, SUBSET, evaluate, lipschitz_report, load_task


def recompute_metrics(
    model_dir: str | Path, data_root: str | Path | None = None, n: int | None = None
) -> dict[str, Any]:
    """Test metrics of a model folder, recomputed on its task's test split.

    The task, seed and preprocessing come from the card's training config, so
    the split is the one the card describes; `n` keeps the first n test images.
    """
    model = load(model_dir)
    config = model.spec.get("card", {}).get("training", {}).get("config")
    if not config:
        raise ValueError(f"{model_dir} has no training config in its card")
    data = load_task(config, data_root)
    x, y = data.x_test, data.y_test
    if n is not None:
        x, y = x[:n], y[:n]
    return evaluate(model, x, y, EPS_GRID, data.balanced)


def compare_to_card(
    model_dir: str | Path, metrics: dict[str, Any], tolerance: float
) -> list[str]:
    """Differences larger than `tolerance` between recomputed metrics and the card's.

    Compares with the card's full test metrics, or with its first-500 subset
    when `metrics` was computed on that same subset.
    """
    recorded = load(model_dir).spec["card"]["metrics"]
    card = recorded["test"]
    subset = recorded.get("test_subset")
    if subset is not None and subset["n"] == metrics["n"]:
        card = subset
    problems = []
    if abs(card["clean_accuracy"] - metrics["clean_accuracy"]) > tolerance:
        problems.append(
            f"clean accuracy {metrics['clean_accuracy']:.4f} vs card "
            f"{card['clean_accuracy']:.4f}"
        )
    for eps, value in (card.get("certified_accuracy") or {}).items():
        got = metrics["certified_accuracy"][eps]
        if abs(got - value) > tolerance:
            problems.append(
                f"certified accuracy at ε={eps}: {got:.4f} vs card {value:.4f}"
            )
    return problems


def refresh_card(
    model_dir: str | Path, data_root: str | Path | None = None, n_attack: int = SUBSET
) -> dict[str, Any]:
    """Recompute a model folder's measurements and rewrite its card in place.

    Test metrics (full and first-500), Lipschitz bounds and the attack report
    on the first `n_attack` test images; the weights are written back
    unchanged (same bytes, same checksum).
    """
    model = load(model_dir)
    spec = model.spec
    card = dict(spec["card"])
    data = load_task(card["training"]["config"], data_root)
    x, y = data.x_test, data.y_test
    metrics = card.setdefault("metrics", {})
    metrics["test"] = evaluate(model, x, y, EPS_GRID, data.balanced)
    metrics["test_subset"] = evaluate(
        model, x[:SUBSET], y[:SUBSET], EPS_GRID, data.balanced
    )
    if model.head != "none":
        card["lipschitz"] = lipschitz_report(model, x)
    card["attacks"] = attack_report(model, x[:n_attack], y[:n_attack])
    save(model, model_dir, card=card, name=spec.get("name"))
    return card
