"""Shareable links: the explorer's (and compare page's) state in the URL, validated.

The model (with its attribute, for a multi-attribute model, and the
direction), the input (test image and its index, Grace Hopper, a built-in
digit), the method, its parameters and the target are written to the URL's
query as the user works (`st.query_params`), so the address bar is always a
link that reopens the same result. Uploaded images, the camera and drawings
are never in a link. A link is hostile input: every value is checked against
a fixed list or range, and anything else is ignored and reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import streamlit as st

from dashboard import eps_units
from dashboard.explorer_controls import DEFAULTS, VIEW_DEFAULTS
from dashboard.state import ATTRIBUTE_MARK
from lipnet import compare, zoo
from lipnet.attacks import ATTACKS, Param, View
from lipnet.attribute_words import attribute_classes
from lipnet.attributes import MULTILABEL

SOURCES = {
    "test": "Test image",
    "hopper": "Grace Hopper (built-in face)",
    "digit": "Built-in digit",
}
"""The inputs a link can name (never an upload, the camera or a drawing)."""
APPLIED = "_link_applied"


def _integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _number(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError
        return value

    return parse


def _choice(options: Mapping[str, object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        return options[text]

    return parse


def _eps(lo: float, hi: float) -> Callable[[str], float]:
    """An ε as "0.5" or "36/255" (`lipnet.units.parse_eps`), in [lo, hi]."""

    def parse(text: str) -> float:
        value = eps_units.parse_eps(text)
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _eps_text(text: str) -> str:
    """The compare page's ε as typed, once it reads as an ε in range."""
    if len(text) > 32:
        raise ValueError
    eps_units.read(text)
    return text


def _shipped(text: str) -> dict:
    """The spec of a shipped model key, "name" or "name@Attribute" (one
    attribute of a multi-attribute model, as a binary model); ValueError
    for anything else."""
    name, mark, attribute = text.partition(ATTRIBUTE_MARK)
    shipped = zoo.list_models()
    if name not in shipped:
        raise ValueError
    spec = zoo.read_spec(shipped[name])
    if not mark:
        return spec
    if spec.get("task") != MULTILABEL or attribute not in spec["classes"]:
        raise ValueError
    return {**spec, "classes": attribute_classes(attribute)}


def _models(text: str) -> list[str]:
    """2–4 distinct shipped models of one task, comma-separated."""
    names = text.split(",")
    if not 2 <= len(names) <= compare.MAX_MODELS or len(set(names)) != len(names):
        raise ValueError
    specs = [_shipped(n) for n in names]
    if not all(compare.same_task(specs[0], s) for s in specs[1:]):
        raise ValueError
    return names


def _boolean(text: str) -> bool:
    return {"1": True, "0": False}[text]


def _digit(text: str) -> str:
    if len(text) != 1 or not text.isdigit():
        raise ValueError
    return text


def _label(text: str) -> str:
    if not 1 <= len(text) <= 64 or not text.isprintable():
        raise ValueError
    return text


def _method(text: str) -> str:
    """A method named in `lipnet.attacks.ATTACKS`."""
    if text not in ATTACKS:
        raise ValueError
    return text


def _param_parser(p: Param) -> Callable[[str], object]:
    """The parser of one attack parameter: its record's kind and range."""
    if p.eps:
        return _eps(p.low, p.high)
    if isinstance(p.low, int) and isinstance(p.high, int):
        return _integer(p.low, p.high)
    return _number(p.low, p.high)


def _fields() -> dict[str, tuple[str, Callable[[str], object]]]:
    """Every query key with its session key and parser, in the link's order.

    The input, the method and the budget, then each attack parameter of
    `lipnet.attacks.ATTACKS` (its record's `url`, `key` and range; a
    parameter two attacks share counts once), then the views' and the
    compare page's values.
    """
    fields: dict[str, tuple[str, Callable[[str], object]]] = {
        "input": ("source", _choice(SOURCES)),
        "i": ("gallery_index", _integer(0, 999)),
        "digit": ("builtin_digit", _digit),
        "method": ("method", _method),
        "norm": ("norm", _choice({"l2": "l2", "linf": "linf"})),
        "eps_r": ("eps_scale", _number(0.1, 5.0)),
        "eps": ("eps_l2", _eps(0.001, 50.0)),
        "eps_inf": ("eps_linf", _eps(0.001, 50.0)),
    }
    for attack in ATTACKS.values():
        for p in attack.params:
            fields.setdefault(p.url, (p.key, _param_parser(p)))
    return {
        **fields,
        "box": ("box", _boolean),
        "target": ("target", _label),
        "amp": ("amplify", _integer(1, 10)),
        "dir": ("direction", _integer(0, 1)),
        # the compare page's own values
        "cmp": ("compare_models", _models),
        "cmp_n": ("compare_n", _integer(2, 200)),
        "cmp_eps": ("compare_eps", _eps_text),
        "cmp_i": ("compare_i", _integer(0, 199)),
    }


FIELDS: Mapping[str, tuple[str, Callable[[str], object]]] = View(_fields)
"""Query key -> (session key, parser); ranges match the widgets' (live: follows
`lipnet.attacks.ATTACKS`)."""
_UNSHARED = View(lambda: {**DEFAULTS, **VIEW_DEFAULTS})
"""Values left out of a link because they are the starting ones anyway."""
_INPUT_OF = {"i": SOURCES["test"], "digit": SOURCES["digit"]}
"""Values that belong to one input only, and are in a link only with it."""
_WRITERS: dict[type, Callable[[object], str]] = {
    bool: lambda v: "1" if v else "0",
    float: lambda v: f"{v:g}",
}


def apply_once() -> list[str]:
    """Copy a link's values into the session at its first run; the ignored keys.

    Runs before any widget exists. The model must be shipped (uploads are
    never in a link); each other value must parse and sit in its range.
    """
    if st.session_state.get(APPLIED):
        return []
    st.session_state[APPLIED] = True
    ignored = []
    for key, text in st.query_params.to_dict().items():
        try:
            if key == "model":
                _shipped(text)
                name, _, attribute = text.partition(ATTRIBUTE_MARK)
                st.session_state["model_key"] = name
                if attribute:
                    st.session_state["attribute"] = attribute
                continue
            session_key, parse = FIELDS[key]
            st.session_state[session_key] = parse(text)
        except (KeyError, ValueError, OverflowError):
            ignored.append(key)
    return ignored


def current(model_key: str) -> dict[str, str]:
    """The shareable part of the session as query values ({} for an upload)."""
    source = st.session_state.get("source")
    codes = {label: code for code, label in SOURCES.items()}
    if model_key.startswith("upload:") or source not in codes:
        return {}
    query = {"model": model_key, "input": codes[source]}
    unshared = dict(_UNSHARED)
    for key, (session_key, _) in _fields().items():
        value = st.session_state.get(session_key)
        if key == "input" or value is None or value == unshared.get(session_key):
            continue
        if key == "dir" and ATTRIBUTE_MARK not in model_key:  # faces' attributes only
            continue
        if _INPUT_OF.get(key, source) != source:  # e.g. a test image's index
            continue
        query[key] = _WRITERS.get(type(value), str)(value)
    return query


def compare_query(models: list[str], n: int, eps_text: str) -> dict[str, str]:
    """The compare page's link: the models (shipped only), images, ε and input."""
    if not models or any(m.startswith("upload:") for m in models):
        return {}
    query = {"model": models[0], "cmp_n": str(n), "cmp_eps": eps_text.strip()}
    if len(models) >= 2:
        query["cmp"] = ",".join(models)
    index = st.session_state.get("compare_i")
    if index:
        query["cmp_i"] = str(index)
    return query


def warn_ignored() -> None:
    """Say once which parts of the link that opened this session were ignored."""
    ignored = st.session_state.pop("link_ignored", None)
    if ignored:
        st.warning(
            f"Part of the link was not valid and was ignored: {', '.join(ignored)}."
        )


def write(query: Mapping[str, str]) -> None:
    """Mirror `query` in the address bar (only when it changed)."""
    if st.query_params.to_dict() != dict(query):
        st.query_params.from_dict(query)


def share_url(query: Mapping[str, str]) -> str:
    """The full address of this page with `query`."""
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(query)}" if query else base
