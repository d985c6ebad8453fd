"""Counterfactuals of a multi-attribute face model, judged per attribute.

Used by `bench_counterfactuals.py --models celeba`: for Mustache, Eyeglasses
and Smiling of `celeba-hkr` (and its twin `celeba-baseline`), on the test
faces of its identity split (people no model and no judge saw):

- inputs: faces without the attribute (for Mustache: men, "Male" = 1),
  target = the attribute present;
- the strong judge of `bench/face_judge.py` (trained beforehand, loaded),
  its test balanced accuracy and its noise control (the same norms as
  random noise) beside the template and twin controls;
- the template gap (validity − template validity), follow-the-face (4 and 8
  pixel shifts, mirror: cosine and validity on moved faces), tightness;
- the earlier single-attribute model (`moustache-hkr`, `eyeglasses-hkr`) on
  the same faces with the same judge, for the comparison the README states.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from face_judge import load_judge

import lipnet
from lipnet.attacks.measure import tightness
from lipnet.attacks.quality import counterfactual_quality
from lipnet.train_attributes import load_faces

ATTRIBUTES = ("Mustache", "Eyeglasses", "Smiling")
MODEL, TWIN = "celeba-hkr", "celeba-baseline"
PREVIOUS = {"Mustache": "moustache-hkr", "Eyeglasses": "eyeglasses-hkr"}
TIGHTNESS_N = 60


def inputs(faces: dict, names: list[str], attribute: str, n: int) -> torch.Tensor:
    """The first `n` test faces without `attribute` (men only for a moustache)."""
    labels = faces["labels"]
    keep = labels[:, names.index(attribute)] == 0
    if attribute == "Mustache" and "Male" in names:
        keep &= labels[:, names.index("Male")] == 1
    index = keep.nonzero()[:, 0][:n]
    return faces["images"][index].float().div(255.0)


def run(
    models_dir: Path, n: int, overshoot: float, seed: int, follow, name: str = MODEL
) -> dict:
    """Every judged attribute's measurements: {attribute: result}, for the
    multi-attribute model `name` in `models_dir` (a candidate: its own name)."""
    multi = lipnet.load(models_dir / name)
    twin = lipnet.load(models_dir / TWIN) if (models_dir / TWIN).is_dir() else None
    config = multi.spec["card"]["training"]["config"]
    test = load_faces(config)["test"]
    judge, info = load_judge()
    names = list(config["attributes"])
    out: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        t = time.perf_counter()
        model = lipnet.attribute(multi, attribute)
        x = inputs(test, names, attribute, n)
        verdict = judge.only(attribute)
        q = counterfactual_quality(
            model,
            x,
            verdict,
            1,
            overshoot=overshoot,
            twin=None if twin is None else lipnet.attribute(twin, attribute),
            seed=seed,
        )
        q["template_gap"] = q["validity"] - q["template_validity"]
        q["follow_the_face"] = follow(model, x, verdict, 1, overshoot)
        y = test["labels"][:, names.index(attribute)]
        sample = torch.cat(
            [
                (y == c).nonzero()[:, 0][: TIGHTNESS_N // 2]
                for c in (0, 1)  # both classes, the rare one too
            ]
        )
        q["tightness"] = tightness(
            model, test["images"][sample].float().div(255.0), y[sample]
        )
        previous = PREVIOUS.get(attribute)
        if previous and (models_dir / previous).is_dir():
            q["previous"] = {
                "model": previous,
                **counterfactual_quality(
                    lipnet.load(models_dir / previous),
                    x,
                    verdict,
                    1,
                    overshoot=overshoot,
                    seed=seed,
                ),
            }
        out[attribute] = {
            "model": f"{name}@{attribute}",
            "twin": f"{TWIN}@{attribute}",
            "inputs": f"test faces without {attribute}"
            + (" (men)" if attribute == "Mustache" else ""),
            "n_selected": len(x),
            "judge": {
                "architecture": info["architecture"],
                "seed": info["seed"],
                "test_balanced_accuracy": info["test_balanced_accuracy"][attribute],
            },
            "quality": q,
            "time_s": round(time.perf_counter() - t, 1),
        }
    return out


def card_section(results: dict[str, Any], command: str) -> dict[str, dict]:
    """The `attribute_quality` section of celeba-hkr's card: per attribute."""
    section = {}
    for attribute, r in results.items():
        q = r["quality"]
        section[attribute] = {
            "inputs": f"{q['n']} {r['inputs']}",
            "judge_balanced_accuracy": r["judge"]["test_balanced_accuracy"],
            "validity": round(q["validity"], 4),
            "noise_validity": round(q["noise_validity"], 4),
            "template_validity": round(q["template_validity"], 4),
            "template_gap": round(q["template_gap"], 4),
            "twin_validity": round(q.get("twin_validity", float("nan")), 4),
            "tightness": q["tightness"]["median_ratio_rd"],
            "follow_the_face": q["follow_the_face"],
            "measured_by": command,
        }
    return section
