"""The counterfactual explorer: one input, one attack, its certificate and its path.

Laid out for a projector: at 1280 × 720 the input, the three views and the
certified radius beside the distance the attack needed are in the first
screen; presets set up a demo in one click, and the address bar is always a
link to what is shown (`dashboard.links`).
"""

from __future__ import annotations

import streamlit as st

from dashboard import directions, links, photo_panel, presets, results, state
from dashboard import explorer_results as show
from dashboard.explorer_controls import keep_values, pick_method
from dashboard.explorer_inputs import pick_input
from lipnet.attacks import AttackError

LEAD = (
    "A **1-Lipschitz** network's score is a certificate: no change smaller than "
    "the radius **r** can flip its decision."
)
INTRO = """
A 1-Lipschitz network cannot change its score faster than the input moves:
|f(x) − f(y)| ≤ ‖x − y‖. So the score itself is a **certificate**: no change of
the image smaller than the certified radius (r) can flip the decision. Trained
with the hKR loss, such a network's shortest way to the other class is a
*meaningful* change — the **counterfactual** — where an ordinary network is
fooled by noise.

**Original** is what the network sees; **Counterfactual** is the input after
the attack (the "Before → after" slider morphs between them); **Difference**
shows what changed (red brighter, blue darker). **r** is the certified radius;
the attack's distance can never be smaller. Below: the attack's path with the
Lipschitz cone, the same attack on the twin model (certified ↔ unconstrained),
the nearest real image of the new class, and attributions.
"""


def preset_row() -> None:
    """One button per demo, and the link to share what is shown."""
    items = presets.available()
    cols = st.columns([len(p.label) for p in items] + [18])
    for col, preset in zip(cols, items, strict=False):
        has_images = not isinstance(state.gallery(preset.model), str)
        col.button(
            preset.label,
            key=f"preset_{preset.model}",
            on_click=presets.apply,
            args=(preset, has_images),
            width="stretch",
        )
    with cols[-1].popover("Share this result", width="stretch"):
        query = links.current(st.session_state.get("model_key", ""))
        if query:
            st.code(links.share_url(query), language=None, wrap_lines=True)
            st.caption("Opening the link shows the same result.")
        else:
            st.caption(
                "Uploaded models, uploaded images, the camera and drawings "
                "are not in links."
            )


def main() -> None:
    keep_values()  # before any widget: see dashboard.explorer_controls
    st.title("Counterfactual explorer", anchor=False)
    st.markdown(LEAD)
    with st.expander("What am I looking at?"):
        st.markdown(INTRO)
    links.warn_ignored()
    preset_row()
    choice = state.current()
    controls, body = st.columns([1, 2.3], gap="medium")
    with controls, st.expander("Input and method", expanded=True):
        x = pick_input(choice)
        if x is None:
            links.write(links.current(choice.key))  # not shareable: no link
            st.stop()
        x_np = x.numpy()
        predicted, radius = results.prediction(choice.key, x_np)
        if directions.already_there(choice, predicted):
            st.stop()
        params = pick_method(choice.spec["classes"], radius, predicted)
    links.write(links.current(choice.key))
    method = params.pop("method")
    target = params.pop("target", None)
    key_params = (*sorted(params.items()), ("target", target))
    try:
        with body, st.spinner("Running the attack…"):
            v = results.result_views(
                choice.key, choice.twin_key, x_np, method, key_params
            )
    except AttackError as e:
        body.error(f"The attack cannot run: {e}")
        st.stop()
    with body:
        st.subheader(v["headline"], anchor=False)
        show.certificate_metrics(v, float(params.get("overshoot", 0.0)))
        show.show_views(v)
        show.units_caption(v)
        photo_panel.show_photo(v)
        show.ran_caption(method, {**params, "target": target}, choice.spec["classes"])
        show.overshoot_note(v, float(params.get("overshoot", 0.0)))
        show.certificate_verdict(v, choice.certified)
        show.familiarity(choice.key, x_np)
        left, right = st.columns(2)
        show.chart(left, v["scores"])
        if v["certificate"] is not None and choice.certified:
            show.chart(right, v["certificate"])
    st.caption(show.DIFF_LEGEND)
    if v["path"] is not None:
        show.show_path(v)
    show.show_nearest_real(choice, v)
    if v["twin"]:
        show.show_twin(v["twin"])
    show.show_attributions(choice, x_np)
    show.downloads(choice.name, v)


main()
