"""The compare page's wiring: which models can be compared, running their reports.

Each model's report rows come from `lipnet.report.iter_report` on the same
test images, one small batch at a time in the shared work queue
(`work_queue.HEAVY`), like the robustness report; the comparison itself is
`lipnet.compare`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import state
from dashboard.work_queue import HEAVY
from lipnet import compare, zoo
from lipnet.attributes import MULTILABEL
from lipnet.report import Row, iter_report

BATCH = 5
"""Images per batch: a few seconds of work at most, so Stop never waits long."""


def _spec(key: str) -> dict:
    """A model's spec: a shipped one read from its folder (no weights loaded)."""
    if key.startswith("upload:") or state.ATTRIBUTE_MARK in key:
        return state.model_by_key(key).spec
    return zoo.read_spec(zoo.list_models()[key])


def candidates(key: str) -> list[str]:
    """Model keys (shipped and this session's uploads) with the task of model `key`.

    A multi-attribute model takes part with the attribute of `key`, if it
    has it: `celeba-hkr@Mustache` beside `moustache-hkr`.
    """
    spec = _spec(key)
    attribute = key.partition(state.ATTRIBUTE_MARK)[2]
    keys = []
    for k in [*zoo.list_models(), *st.session_state.get("uploaded_models", {})]:
        other = _spec(k)
        if other.get("task") == MULTILABEL:
            if attribute not in other["classes"]:
                continue
            k = f"{k}{state.ATTRIBUTE_MARK}{attribute}"
            other = _spec(k)
        if compare.same_task(other, spec):
            keys.append(k)
    return keys


def label(key: str) -> str:
    """A model's name as the page shows it (an upload: "uploaded: name")."""
    if key.startswith("upload:"):
        return f"uploaded: {state.model_by_key(key).spec.get('name', key)}"
    return key


def run(
    job: dict,
    x,
    y,
    on_progress: Callable[[int, int], None],
    on_wait: Callable[[int], None],
) -> None:
    """Fill `job["rows"]` model by model, batch by batch; a rerun continues it.

    `job` holds "models" (keys), "grid" (the ε of PGD), "rows" and "running".

    Each batch takes a turn in the shared queue; `on_progress(done, total)`
    after each (images over all models), `on_wait(place)` while waiting.
    """
    ctx = get_script_run_ctx()
    owner = ctx.session_id if ctx is not None else "compare"
    total = len(job["models"]) * len(x)
    for key in job["models"]:
        rows: list[Row] = job["rows"].setdefault(key, [])
        model = state.model_by_key(key)
        while len(rows) < len(x):
            start = len(rows)
            end = min(start + BATCH, len(x))
            with HEAVY.slot(owner, on_wait=on_wait, poll_s=0.25):
                batch = next(
                    iter_report(
                        model,
                        x[start:end],
                        y[start:end],
                        eps_grid=job["grid"],
                        batch_size=end - start,
                    )
                )
            for r in batch:
                r.index += start
            rows += batch
            on_progress(sum(len(r) for r in job["rows"].values()), total)
            time.sleep(0)  # a Stop click interrupts the run here
    job["running"] = False
