"""One-click demos: each sets model, input, method and parameters at once.

Each preset is known to give a visible result at a projector's distance.
Clicking one writes the widgets' values into the session state (a button
callback runs before the page draws), so the page then shows its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from dashboard.explorer_controls import DEFAULTS, VIEW_DEFAULTS
from lipnet import zoo


@dataclass(frozen=True)
class Preset:
    """A demo: the model, the widget values, and a built-in fallback input."""

    label: str
    model: str
    values: dict[str, object]
    fallback: dict[str, object] = field(default_factory=dict)
    """Widget values to use instead when the model has no test images."""


PRESETS = (
    Preset(
        "Turn a 0 into an 8",
        "mnist08-hkr",
        {
            "source": "Test image",
            "gallery_index": 0,  # a 0 in the official test set
            "method": "transport",
            "overshoot": 1.0,
            "step_size": 1.0,
        },
        {"source": "Built-in digit", "builtin_digit": "0"},
    ),
    Preset(
        "Give Grace Hopper a moustache",
        "moustache-hkr",
        {
            "source": "Grace Hopper (built-in face)",
            "method": "transport",
            "overshoot": 1.0,
            "step_size": 1.0,
            "amplify": 3,
        },
    ),
    Preset(
        "Turn a 7 into a 1",
        "mnist10-hkr",
        {
            "source": "Test image",
            "gallery_index": 0,  # the first official test image is a 7
            "method": "transport",
            "target": "1",
            "overshoot": 1.0,
            "step_size": 1.0,
        },
        {"source": "Built-in digit", "builtin_digit": "7"},
    ),
)


def available() -> list[Preset]:
    """The presets whose model is shipped here."""
    names = zoo.list_models()
    return [p for p in PRESETS if p.model in names]


def apply(preset: Preset, has_test_images: bool) -> None:
    """Set the session's widgets to `preset` (a button callback); every value
    the preset does not name goes back to its default, so nothing of the
    previous demo (an amplification, a target) stays behind."""
    st.session_state["model_key"] = preset.model
    st.session_state.update({**DEFAULTS, **VIEW_DEFAULTS, "gallery_index": 0})
    st.session_state.update(preset.values)
    if not has_test_images:
        st.session_state.update(preset.fallback)
