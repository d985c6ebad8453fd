"""A corpus of crafted model folders, as an attacker would upload them.

`corpus()` returns over a hundred (spec.json bytes, weights bytes, expected
reason) cases built in memory from one small valid model: broken JSON,
hostile names, lying certificates, specs that ask for gigabytes, cards that
crash a page. Nothing is written to disk and nothing is committed but this
script. Run as a program it loads every case and prints, per case, the
error, its message, the seconds and the peak-memory growth as JSON (the
test runs it in a subprocess so a case that allocates shows in ru_maxrss).
"""

from __future__ import annotations

import copy
import hashlib
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from safetensors.torch import save as save_safetensors

import lipnet
from lipnet.io import model_spec


class FuzzCase(NamedTuple):
    spec: bytes
    weights: bytes
    reason: str
    """Regex the ModelFileError message must match."""


def _weights(model: torch.nn.Module) -> bytes:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state, metadata={"format": "lipnet.model"})


def _spec_of(model: lipnet.LipSequential, weights: bytes) -> dict[str, Any]:
    spec = model_spec(model)
    spec["name"] = "fuzz-base"
    spec["weights"] = {
        "file": "weights.safetensors",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "bytes": len(weights),
    }
    spec["card"] = {"summary": "a small valid model", "license": "test only"}
    return spec


def base_model() -> lipnet.LipSequential:
    """A small certified binary conv net on 1 × 8 × 8 inputs."""
    torch.manual_seed(0)
    return lipnet.LipSequential(
        lipnet.SpectralConv2d(1, 4, 3, input_size=8),
        lipnet.GroupSort2(),
        lipnet.InvertibleDownSampling(2),
        lipnet.SpectralConv2d(16, 8, 3, input_size=4),
        lipnet.GroupSort2(),
        lipnet.Flatten(),
        lipnet.SpectralLinear(128, 16),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(16, 1),
        input_shape=(1, 8, 8),
        classes=["a", "b"],
    ).eval()


def _encode(spec: Any) -> bytes:
    return json.dumps(spec).encode()


def corpus() -> dict[str, FuzzCase]:
    """Every crafted case by name."""
    model = base_model()
    weights = _weights(model)
    base = _spec_of(model, weights)
    cases: dict[str, FuzzCase] = {}

    def raw(name: str, spec_bytes: bytes, reason: str, w: bytes = weights) -> None:
        cases[name] = FuzzCase(spec_bytes, w, reason)

    def variant(name: str, change: Callable[[dict], Any], reason: str) -> None:
        """The base spec changed in place by `change`, checksum kept valid."""
        spec = copy.deepcopy(base)
        change(spec)
        raw(name, _encode(spec), reason)

    def layers(name: str, entries: list[dict], reason: str, **top: Any) -> None:
        variant(name, lambda s: s.update(layers=entries, **top), reason)

    _syntax(raw)
    _fields(variant)
    _card(variant)
    _weights_cases(raw, base, weights)
    _budget(layers, base)
    _certificates(raw)
    return cases


def _syntax(raw: Callable[..., None]) -> None:
    not_json = "not valid JSON"
    raw("truncated-json", b'{"format": "lipnet.model"', not_json)
    raw("not-utf8", b"\xff\xfe{}", not_json)
    raw("empty-spec", b"", not_json)
    raw("nested-100k-lists", b"[" * 100_000 + b"]" * 100_000, not_json + "|nested")
    raw("nested-100k-objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested")
    raw("5000-digit-integer", b'{"format_version": ' + b"9" * 5000 + b"}", not_json)
    raw("top-level-list", b"[]", "not a lipnet model spec")
    raw("top-level-string", b'"lipnet.model"', "not a lipnet model spec")
    raw("pickle-bytes", b"\x80\x04\x95\x00\x00", not_json)


def _fields(variant: Callable[..., None]) -> None:
    spec_kind = "not a lipnet model spec"
    variant("format-pickle", lambda s: s.update(format="pickle"), spec_kind)
    variant("format-missing", lambda s: s.pop("format"), spec_kind)
    variant("version-2", lambda s: s.update(format_version=2), "format_version")
    variant("version-text", lambda s: s.update(format_version="1"), "format_version")
    name = "'name' must be"
    for label, value in {
        "absolute-path": "/tmp/injected/evil",
        "into-assets": "../../assets/models/aaa-evil",
        "slash": "a/b",
        "backslash": "a\\b",
        "nul": "a\x00b",
        "newline": "a\nb",
        "empty": "",
        "dot": ".",
        "dotdot": "..",
        "65-chars": "a" * 65,
        "space": "my model",
        "unicode": "модель",
        "number": 123,
        "list": ["a"],
    }.items():
        variant(f"name-{label}", lambda s, v=value: s.update(name=v), name)
    variant("name-missing", lambda s: s.pop("name"), name)
    shape = "invalid input_shape"
    for label, value in {
        "two-dims": [1, 8],
        "four-dims": [1, 8, 8, 8],
        "two-channels": [2, 8, 8],
        "zero-height": [1, 0, 8],
        "huge-width": [1, 8, 100_000],
        "text": "1,8,8",
        "text-entry": ["1", 8, 8],
        "float-entry": [1.0, 8, 8],
        "bool-entry": [True, 8, 8],
        "null": None,
    }.items():
        variant(
            f"input-shape-{label}", lambda s, v=value: s.update(input_shape=v), shape
        )
    classes = "'classes' must list"
    for label, value in {
        "missing": None,
        "empty": [],
        "one": ["a"],
        "duplicates": ["a", "a"],
        "numbers": [1, 2],
        "long-name": ["a" * 65, "b"],
        "nul": ["\x00", "b"],
        "newline": ["a\nb", "c"],
        "1001": [f"c{i}" for i in range(1001)],
        "text": "ab",
    }.items():
        variant(f"classes-{label}", lambda s, v=value: s.update(classes=v), classes)
    variant(
        "classes-three-for-binary",
        lambda s: s.update(classes=["a", "b", "c"]),
        "needs exactly 2 classes",
    )
    variant("head-magic", lambda s: s.update(head="magic"), "unknown head")
    variant("head-missing", lambda s: s.pop("head"), "unknown head")
    variant("task-multiclass", lambda s: s.update(task="multiclass"), "'task' must be")
    variant("task-regression", lambda s: s.update(task="regression"), "'task' must be")
    variant("positive-class", lambda s: s.update(positive_class="a"), "positive_class")
    variant("certified-false", lambda s: s.update(certified=False), "'certified'")
    variant(
        "normalization", lambda s: s.update(normalization={"mean": 0.5}), "normaliz"
    )
    lip = "'lipschitz_constant' must be"
    for label, value in {
        "text": "1.0",
        "bool": True,
        "zero": 0,
        "negative": -1,
        "underflow": 1e-300,
        "overflow": 1e308,
        "nan": float("nan"),
        "list": [1.0],
    }.items():
        variant(
            f"lipschitz-{label}", lambda s, v=value: s.update(lipschitz_constant=v), lip
        )
    declares = "declares a Lipschitz constant"
    variant(
        "lipschitz-2-declared", lambda s: s.update(lipschitz_constant=2.0), declares
    )
    variant(
        "lipschitz-half-declared", lambda s: s.update(lipschitz_constant=0.5), declares
    )
    variant("lipschitz-null", lambda s: s.update(lipschitz_constant=None), declares)
    variant("layers-missing", lambda s: s.pop("layers"), "list of 1 to 256 layers")
    variant("layers-empty", lambda s: s.update(layers=[]), "list of 1 to 256 layers")
    variant("layers-object", lambda s: s.update(layers={}), "list of 1 to 256 layers")
    variant(
        "layers-257",
        lambda s: s.update(layers=[{"type": "ReLU"}] * 257),
        "list of 1 to 256 layers",
    )
    variant(
        "layer-not-object", lambda s: s["layers"].insert(0, "ReLU"), "with a 'type'"
    )
    variant("layer-no-type", lambda s: s["layers"].insert(0, {}), "with a 'type'")
    for label, kind in {
        "os-system": "os.system",
        "import": "__import__",
        "int": 3,
    }.items():
        variant(
            f"layer-type-{label}",
            lambda s, k=kind: s["layers"].insert(0, {"type": k}),
            "unknown type|with a 'type'",
        )

    def arg(label: str, key: str, value: Any, reason: str = "invalid|unknown") -> None:
        variant(
            f"arg-{label}",
            lambda s: s["layers"][0]["args"].update({key: value}),
            reason,
        )

    arg("command", "command", "rm -rf /", "unknown argument")
    arg("kernel-text", "kernel_size", "3")
    arg("kernel-zero", "kernel_size", [0, 0])
    arg("stride-zero", "stride", 0)
    arg("stride-bool", "stride", True)
    arg("channels-float", "out_channels", 4.0)
    arg("channels-negative", "out_channels", -4)
    arg("channels-2^30", "out_channels", 1 << 30)
    arg("k-zero", "k", 0)
    arg("k-tiny", "k", 1e-9)
    arg("k-huge", "k", 1e4)
    arg("k-nan", "k", float("nan"))
    arg("k-inf", "k", float("inf"))
    arg("padding-mode-reflect", "padding_mode", "reflect")
    arg("padding-mode-long", "padding_mode", "z" * 100)
    variant("args-list", lambda s: s["layers"][0].update(args=[1, 2]), "'args' must be")


def _card(variant: Callable[..., None]) -> None:
    def card(label: str, value: Any, reason: str) -> None:
        variant(f"card-{label}", lambda s: s.update(card=value), reason)

    card("list", [1, 2], "'card' must be an object")
    card("text", "card", "'card' must be an object")
    card("summary-number", {"summary": 3}, "card.summary")
    card("summary-5000-chars", {"summary": "a" * 5000}, "card.summary")
    card("license-nul", {"license": "ok\x00"}, "card.license")
    card("metrics-list", {"metrics": [1]}, "card.metrics must be an object")
    bad_metric = {"n": 10, "clean_accuracy": "99%"}
    card("metric-text", {"metrics": {"test": bad_metric}}, "clean_accuracy")
    card("metric-1.5", {"metrics": {"test": {"clean_accuracy": 1.5}}}, "clean_accuracy")
    card("metric-nan", {"metrics": {"test": {"clean_accuracy": float("nan")}}}, "clean")
    card("metric-n-text", {"metrics": {"test": {"n": "all"}}}, "metrics.test.n")
    curve = {"metrics": {"test": {"certified_accuracy": {"abc": 0.5}}}}
    card("curve-key", curve, "certified_accuracy")
    curve = {"metrics": {"test": {"certified_accuracy": {"0.5": "x"}}}}
    card("curve-value", curve, "certified_accuracy")
    card("train-time-text", {"training": {"train_time_s": "fast"}}, "train_time_s")
    card("upper-bound-text", {"lipschitz": {"upper_bound": "1"}}, "upper_bound")
    previous = {"label": "v1", "clean_accuracy": 0.9, "certified_accuracy": {"1": 2}}
    card("previous-curve", {"previous": [previous]}, "card.previous")
    card("previous-object", {"previous": {"label": "v1"}}, "card.previous")
    card("quality-nested", {"counterfactual_quality": {"a": {"b": 1}}}, "quality")
    card("quality-inf", {"counterfactual_quality": {"a": float("inf")}}, "quality")
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    card("nested-40", {"data": nested}, "nested deeper")


def _weights_cases(raw: Callable[..., None], base: dict, weights: bytes) -> None:
    def with_weights(
        name: str, blob: bytes, reason: str, checksum: bool = True
    ) -> None:
        spec = copy.deepcopy(base)
        if checksum:
            spec["weights"]["sha256"] = hashlib.sha256(blob).hexdigest()
        raw(name, _encode(spec), reason, blob)

    state = base_model().state_dict()
    with_weights("weights-truncated", weights[:100], "checksum", checksum=False)
    with_weights("weights-empty", b"", "checksum", checksum=False)
    with_weights("weights-truncated-rehashed", weights[:100], "not a valid safetensors")
    with_weights("weights-random", bytes(range(256)) * 8, "not a valid safetensors")
    with_weights("weights-huge-header", (10**15).to_bytes(8, "little"), "safetensors")
    first = next(iter(state))
    changes: dict[str, Callable[[dict], None]] = {
        "missing-key": lambda st: st.pop(first),
        "extra-key": lambda st: st.update(evil=torch.zeros(3)),
        "float64": lambda st: st.update({first: st[first].double()}),
        "wrong-shape": lambda st: st.update({first: torch.zeros(2, 2)}),
        "nan": lambda st: st.update({first: torch.full_like(st[first], float("nan"))}),
        "inf": lambda st: st.update({first: torch.full_like(st[first], float("inf"))}),
    }
    reasons = {
        "missing-key": "does not match the architecture",
        "extra-key": "does not match the architecture",
        "float64": "dtype",
        "wrong-shape": "has shape",
        "nan": "NaN or infinite",
        "inf": "NaN or infinite",
    }
    for label, change in changes.items():
        st = {k: v.clone() for k, v in state.items()}
        change(st)
        blob = save_safetensors({k: v.contiguous() for k, v in st.items()})
        with_weights(f"weights-{label}", blob, reasons[label])
    spec = copy.deepcopy(base)
    spec["weights"] = "weights.safetensors"
    raw("weights-entry-text", _encode(spec), "'weights' entry")
    spec["weights"] = {}
    raw("weights-no-sha256", _encode(spec), "'weights' entry")


def _conv(cin: int, cout: int, k: int = 3, **args: Any) -> dict:
    kind = args.pop("type", "SpectralConv2d")
    if kind == "SpectralConv2d":
        args.setdefault("input_size", [8, 8])
    size = {"in_channels": cin, "out_channels": cout, "kernel_size": [k, k]}
    return {"type": kind, "args": {**size, **args}}


def _dense(n_in: int, n_out: int, kind: str = "SpectralLinear", **args: Any) -> dict:
    return {"type": kind, "args": {"in_features": n_in, "out_features": n_out, **args}}


def _budget(layers: Callable[..., None], base: dict) -> None:
    flat = {"type": "LipFlatten", "args": {}}
    head = _dense(16, 1, "FrobeniusLinear")
    tail = [flat, _dense(4 * 64, 16), head]
    aol = {
        "type": "AOLConv2d",
        "args": {
            "in_channels": 1,
            "out_channels": 4,
            "kernel_size": [3, 3],
            "padding": [8000, 8000],
        },
    }
    layers("aol-padding-8000", [aol, *tail], "padding")
    layers(
        "spectral-input-size-8192",
        [_conv(1, 4, input_size=[8192, 8192]), *tail],
        "MAX_FFT_ENTRIES|MAX_BUILD_FLOPS",
    )
    layers(
        "spectral-input-size-too-small",
        [_conv(1, 4, input_size=[4, 4]), *tail],
        "smaller than the input",
    )
    circ = _conv(1, 4, input_size=[16, 16], padding_mode="circular")
    layers("circular-input-size-mismatch", [circ, *tail], "circular padding needs")
    layers(
        "kernel-larger-than-input",
        [_conv(1, 4, 9, padding=[0, 0]), *tail],
        "does not fit",
    )
    layers(
        "padding-larger-than-kernel", [_conv(1, 4, 3, padding=[3, 3]), *tail], "padding"
    )
    layers("in-channels-mismatch", [_conv(3, 4), *tail], "does not fit")
    layers(
        "in-features-mismatch",
        [_conv(1, 4), flat, _dense(100, 16), head],
        "in_features",
    )
    layers(
        "group-size-3-on-4-channels",
        [_conv(1, 4), {"type": "GroupSort", "args": {"group_size": 3}}, *tail],
        "group size",
    )
    layers(
        "downsampling-3-on-8x8",
        [
            {"type": "InvertibleDownSampling", "args": {"kernel_size": 3}},
            flat,
            _dense(9, 16),
            head,
        ],
        "does not fit",
    )
    layers(
        "pool-larger-than-input",
        [
            {"type": "ScaledL2NormPool2d", "args": {"kernel_size": [9, 9]}},
            flat,
            _dense(1, 16),
            head,
        ],
        "does not fit",
    )
    layers("dense-on-an-image", [_dense(8, 16), head], "in_features")
    layers("ends-in-an-image", [_conv(1, 4)], "flat vector")
    layers("zero-outputs", [flat, _dense(64, 0)], "invalid out_features")
    big = [
        flat,
        _dense(64, 3000),
        _dense(3000, 3000),
        _dense(3000, 1, "FrobeniusLinear"),
    ]
    layers("spectral-3000x3000", big, "MAX_BUILD_FLOPS")
    wide = [flat, _dense(64, 64), _dense(64, 10_000, "Linear")]
    layers(
        "10000-outputs",
        wide,
        "MAX_OUTPUTS",
        head="none",
        lipschitz_constant=None,
        certified=False,
    )
    plain = {"head": "none", "lipschitz_constant": None, "certified": False}
    many = [
        _conv(1, 512, 3, type="Conv2d", padding=[1, 1]),
        _conv(512, 4096, 3, type="Conv2d", padding=[1, 1]),
        flat,
        _dense(4096 * 64, 1, "Linear"),
    ]
    layers("forward-macs", many, "MAX_FORWARD_MACS", **plain)
    pool = {"type": "AvgPool2d", "args": {"kernel_size": [8, 8]}}
    wide = [_conv(1, 40_000, 1, type="Conv2d"), pool, flat, _dense(40_000, 1, "Linear")]
    layers("activations-2.5M", wide, "MAX_ACTIVATIONS", **plain)
    huge = [
        flat,
        _dense(64, 8192, "Linear"),
        _dense(8192, 4096, "Linear"),
        _dense(4096, 1, "Linear"),
    ]
    layers("parameters-50M", huge, "MAX_PARAMETERS", **plain)
    tiny_k = [flat, _dense(64, 16, k=1e-3)] + [_dense(16, 16, k=1e-3)] * 110 + [head]
    layers(
        "lipschitz-underflow",
        tiny_k,
        "declares a Lipschitz constant",
        lipschitz_constant=1e-6,
    )
    dropout = {"type": "Dropout", "args": {"p": 2.0}}
    layers(
        "dropout-p-2", [dropout, flat, _dense(64, 1, "Linear")], "invalid p", **plain
    )
    three = [flat, _dense(64, 3, "FrobeniusLinear")]
    layers(
        "classes-shorter-than-outputs",
        three,
        "outputs 3 score",
        head="disjoint",
        task="multiclass",
    )
    two = [flat, _dense(64, 2)]
    layers("binary-head-on-2-outputs", two, "outputs 2 score|one output")


def _certificates(raw: Callable[..., None]) -> None:
    """The two unsound designs a review found, built with real weights."""
    torch.manual_seed(0)
    hidden = lipnet.LipSequential(
        lipnet.Flatten(),
        lipnet.SpectralLinear(64, 16),
        lipnet.FrobeniusLinear(16, 10, disjoint_neurons=True),  # √10-Lipschitz here
        lipnet.GroupSort2(),
        lipnet.FrobeniusLinear(10, 1),
        input_shape=(1, 8, 8),
        classes=["a", "b"],
    ).eval()
    w = _weights(hidden)
    spec = _spec_of(hidden, w)
    spec["lipschitz_constant"] = 1.0  # what counting it as 1-Lipschitz gives
    raw("unsound-hidden-disjoint-frobenius", _encode(spec), "declares a Lipschitz", w)
    head = lipnet.LipSequential(
        lipnet.Flatten(),
        lipnet.SpectralLinear(64, 16),
        lipnet.FrobeniusLinear(16, 3, disjoint_neurons=True),
        input_shape=(1, 8, 8),
        classes=["a", "b", "c"],
    ).eval()
    w = _weights(head)
    spec = _spec_of(head, w)
    spec["head"] = "lipschitz"  # the √2 factor on neurons bounded one by one
    raw(
        "unsound-lipschitz-head-on-disjoint",
        _encode(spec),
        "head must be 'disjoint'",
        w,
    )


def _run_all() -> dict[str, dict[str, Any]]:
    """Load every case; the error, message, seconds and peak-RSS growth of each."""
    torch.set_num_threads(1)
    results = {}
    for name, case in corpus().items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            lipnet.io.load_upload(case.spec, case.weights)
            error, message = None, ""
        except Exception as e:  # the test reports any type that is not ours
            error, message = type(e).__name__, str(e)
        results[name] = {
            "error": error,
            "message": message,
            "reason": case.reason,
            "seconds": time.perf_counter() - started,
            "rss_growth_mb": (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            )
            / 1024,
        }
    return results


if __name__ == "__main__":
    json.dump(_run_all(), sys.stdout)
