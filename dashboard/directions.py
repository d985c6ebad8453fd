"""The explorer's direction for one attribute of a face model: add it or remove it.

"Add a moustache" walks the test faces without one and changes them towards
it; "remove the eyeglasses" walks those with eyeglasses. A photo whose face
the model already puts on the chosen side gets a clear message instead of a
counterfactual that would go the other way.
"""

from __future__ import annotations

import streamlit as st

from dashboard import state
from lipnet.attribute_words import direction_label, readable


def attribute_of(choice: state.Choice) -> str | None:
    """The attribute the chosen model scores, if it is one of a multi-attribute one."""
    return choice.spec.get("attribute") if state.ATTRIBUTE_MARK in choice.key else None


def pick(choice: state.Choice) -> int | None:
    """The direction widget: 1 to add the attribute, 0 to remove it, None when
    the model is not one attribute of a multi-attribute model."""
    name = attribute_of(choice)
    if name is None:
        return None
    if st.session_state.get("direction") not in (1, 0):
        st.session_state["direction"] = 1
    return st.radio(
        "Direction",
        [1, 0],
        format_func=lambda v: direction_label(name, bool(v)).capitalize(),
        horizontal=True,
        key="direction",
        help="The test faces offered are those without the attribute (to add "
        "it) or with it (to remove it), by CelebA's labels.",
    )


def already_there(choice: state.Choice, predicted: int) -> bool:
    """Say so and return True when the model already puts the input on the
    chosen side (the counterfactual would then go the other way)."""
    name = attribute_of(choice)
    direction = st.session_state.get("direction")
    if name is None or predicted != direction:
        return False
    seen = "sees" if direction else "sees no"
    st.info(
        f"The model already {seen} {readable(name)} on this face: "
        f"“{direction_label(name, bool(direction))}” has nothing to do here. "
        "Choose the other direction, or another face."
    )
    return True
