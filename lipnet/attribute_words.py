"""How people say CelebA's attributes, and the per-attribute table of a card.

Plain words and numbers only (no torch): the model card, the dashboard and
the CLI share them.
"""

from __future__ import annotations

__all__ = ["attribute_classes", "attribute_rows", "direction_label", "readable"]


def readable(attribute: str) -> str:
    """CelebA's column name as people read it ("Wearing_Hat" → "wearing hat")."""
    return attribute.replace("_", " ").lower().replace("mustache", "moustache")


def attribute_classes(attribute: str) -> list[str]:
    """The two classes of one attribute's binary model, negative first.

    >>> attribute_classes("Mustache")
    ['no moustache', 'moustache']
    """
    return [f"no {readable(attribute)}", readable(attribute)]


_DIRECTIONS = {
    "Mustache": ("add a moustache", "remove the moustache"),
    "Eyeglasses": ("add eyeglasses", "remove the eyeglasses"),
    "Smiling": ("make the face smile", "take the smile away"),
    "Wearing_Hat": ("add a hat", "remove the hat"),
    "Goatee": ("add a goatee", "remove the goatee"),
    "No_Beard": ("shave the beard", "grow a beard"),
    "Wearing_Lipstick": ("add lipstick", "remove the lipstick"),
    "Heavy_Makeup": ("add heavy make-up", "remove the make-up"),
}


def direction_label(name: str, present: bool) -> str:
    """How a person says the change towards (`present`) or away from an attribute.

    >>> direction_label("Mustache", True)
    'add a moustache'
    >>> direction_label("Blond_Hair", False)
    'away from blond hair'
    """
    if name in _DIRECTIONS:
        return _DIRECTIONS[name][0 if present else 1]
    return f"{'towards' if present else 'away from'} {readable(name)}"


def attribute_rows(card: dict) -> list[dict[str, object]]:
    """One row per attribute of a multi-attribute model's card, for its table.

    Args:
        card: the model card (``spec["card"]``), with ``attribute_metrics``
            (written by training) and, once measured, ``attribute_quality``
            (tightness and counterfactual validity per attribute, written by
            ``bench/bench_counterfactuals.py --update-cards``).

    Returns:
        Rows in the card's attribute order with the test split's balanced
        accuracy and certified accuracy at 0.5 and 1.0, the tightness and the
        judge's validity (None where not measured, and no certified accuracy
        for an unconstrained twin); [] for other cards.
    """
    test = card.get("attribute_metrics", {}).get("test")
    if not test:
        return []
    quality = card.get("attribute_quality", {})
    rows = []
    for name, accuracy in test["balanced_accuracy"].items():
        measured = quality.get(name, {})
        rows.append(
            {
                "attribute": readable(name),
                "balanced accuracy": round(accuracy, 4),
                "certified at 0.5": _rounded(test.get("certified_0.5", {}).get(name)),
                "certified at 1.0": _rounded(test.get("certified_1", {}).get(name)),
                "tightness": measured.get("tightness"),
                "counterfactual validity": measured.get("validity"),
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
