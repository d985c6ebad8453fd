"""Several models of one task side by side: their curves, one table, one chart.

Takes the rows `lipnet.report.iter_report` gives for each model (same test
images), the models' specs (their cards hold what was measured when they
were built) and an ε; gives the comparison table, its CSV and the certified
accuracy chart with the PGD accuracy dashed beside it (`lipnet.viz`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from .report import REPORT_EPS, Row, summarize
from .units import dimension, eps_255, eps_rms_255

MAX_MODELS = 4


def grid(eps: float) -> tuple[float, ...]:
    """The report's ε grid with `eps` added: PGD runs at every one of them."""
    return tuple(sorted({*REPORT_EPS, float(eps)}))


def same_task(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two specs have the same input shape and classes."""
    return (list(a["input_shape"]), list(a["classes"])) == (
        list(b["input_shape"]),
        list(b["classes"]),
    )


def card_facts(spec: Mapping[str, Any]) -> dict[str, float | None]:
    """What a model card measured: tightness, Lipschitz bound, counterfactual validity.

    None where the card has no such measurement (an upload's card, a
    baseline's tightness).
    """
    card = spec.get("card") or {}
    attacks = card.get("attacks") or {}
    quality = card.get("counterfactual_quality") or {}
    lipschitz = card.get("lipschitz") or {}
    test = (card.get("metrics") or {}).get("test") or {}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) else None

    return {
        "card clean accuracy": number(test.get("clean_accuracy")),
        "tightness (found / r, median)": number(attacks.get("median_ratio_rd")),
        "Lipschitz bound (measured)": number(lipschitz.get("upper_bound")),
        "counterfactual validity": number(quality.get("validity")),
    }


def _at(curve: Sequence[Mapping[str, Any]], eps: float, key: str) -> float | None:
    point = next((p for p in curve if abs(p["eps"] - eps) < 1e-12), None)
    return None if point is None else point.get(key)


def table(
    rows: Mapping[str, Sequence[Row]],
    specs: Mapping[str, Mapping[str, Any]],
    eps: float,
) -> list[dict[str, Any]]:
    """One row per model: measured accuracies at ε (a grid value) and the card's facts.

    Args:
        rows: model name → its report rows (the same test images for each).
        specs: model name → its spec (for the card's measurements).
        eps: an ε of `grid(eps)`, the grid the rows were computed on.
    """
    out = []
    for name, model_rows in rows.items():
        summary = summarize(model_rows, grid(eps))
        if not summary["n"]:
            continue
        certified = _at(summary["curve"], eps, "certified")
        pgd = _at(summary["curve"], eps, "empirical")
        out.append(
            {
                "model": name,
                "n": summary["n"],
                "clean accuracy": summary["clean_accuracy"],
                "certified accuracy at ε": certified,
                "accuracy under PGD at ε": pgd,
                **card_facts(specs[name]),
            }
        )
    return out


def to_csv(
    table_rows: Sequence[Mapping[str, Any]], eps: float, input_shape: Sequence[int]
) -> str:
    """The table as CSV, ε stated in its three units in its own columns."""
    units = {
        "eps_l2": f"{eps:g}",
        "eps_255": f"{eps_255(eps):.4g}",
        "eps_rms_255": f"{eps_rms_255(eps, dimension(input_shape)):.4g}",
    }
    buffer = io.StringIO()
    if not table_rows:
        return ""
    writer = csv.DictWriter(buffer, [*table_rows[0], *units], lineterminator="\n")
    writer.writeheader()
    for row in table_rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()} | units)
    return buffer.getvalue()


def curves(
    rows: Mapping[str, Sequence[Row]], eps_grid: Sequence[float] = REPORT_EPS
) -> tuple[dict[str, dict[float, float]], dict[str, dict[float, float]]]:
    """Each model's certified and PGD accuracy curves ({name: {ε: accuracy}})."""
    certified: dict[str, dict[float, float]] = {}
    empirical: dict[str, dict[float, float]] = {}
    for name, model_rows in rows.items():
        summary = summarize(model_rows, eps_grid)
        if not summary["n"]:
            continue
        empirical[name] = {p["eps"]: p["empirical"] for p in summary["curve"]}
        if summary["certified"]:
            certified[name] = {p["eps"]: p["certified"] for p in summary["curve"]}
    return certified, empirical


def figure(
    rows: Mapping[str, Sequence[Row]], eps_grid: Sequence[float] = REPORT_EPS
) -> Any:
    """Certified accuracy against ε for each model, PGD accuracy dashed beside it.

    A model without a certificate gets its PGD curve only.
    """
    from .viz import certified_curve

    certified, empirical = curves(rows, eps_grid)
    return certified_curve(certified, empirical)
