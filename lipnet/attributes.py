"""One network, many attributes: each output its own 1-Lipschitz classifier.

A multi-attribute model (task "multilabel", Serrurier et al., NeurIPS 2023)
has a shared trunk and a head with one independently 1-Lipschitz neuron per
attribute (a disjoint `FrobeniusLinear`). `attribute(model, "Mustache")`
returns the binary model for one attribute (positive = present) that every
lipnet function — attacks, certificates, reports, export — takes unchanged;
`attribute_radii` certifies every attribute of a batch in one forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .attribute_words import attribute_classes
from .certify import certificate_context, radius_from_outputs
from .layers import FrobeniusLinear, LipSequential, eval_mode
from .ood import PER_ATTRIBUTE, calibrate, calibration_problem
from .rounding import ball_error, forward_with_norms

MULTILABEL = "multilabel"


def attribute_names(model: LipSequential) -> list[str]:
    """The attributes a multi-attribute model scores, in output order."""
    if getattr(model, "task", None) != MULTILABEL:
        raise ValueError("this model scores one decision, not several attributes")
    return list(model.classes or [])


def attribute(model: LipSequential, name: str) -> LipSequential:
    """The binary 1-Lipschitz model of one attribute (positive = present).

    Shares the trunk's layers with `model` (no copy of its weights) and ends
    in a one-output `FrobeniusLinear` holding that attribute's row and bias,
    in the model's dtype; an unconstrained twin's attribute ends in a plain
    `nn.Linear` and has no certificate (head "none"). Raises ValueError for
    an unknown attribute.
    """
    names = attribute_names(model)
    if name not in names:
        raise ValueError(f"unknown attribute {name!r}; this model has {names}")
    index = names.index(name)
    with eval_mode(model):
        head = _one_output(model[-1], index)
    binary = LipSequential(
        *list(model)[:-1],
        head.eval(),
        input_shape=model.input_shape,
        classes=attribute_classes(name),
        head="none" if model.head == "none" else "binary",
    ).eval()
    spec = _spec_without_calibrations(getattr(model, "spec", {}))
    if spec:
        spec.update(
            task="binary",
            head=binary.head,
            classes=binary.classes,
            positive_class=binary.classes[1],
            attribute=name,
            name=f"{spec.get('name', 'model')[:40]}-{name}"[:64],
        )
        _own_ood(spec, name)
        binary.spec = spec
    if hasattr(model, "lipschitz_check"):
        binary.lipschitz_check = dict(model.lipschitz_check)
    return binary


def _spec_without_calibrations(spec: Mapping[str, Any]) -> dict:
    """A deep copy of `spec` whose card keeps its per-attribute calibrations
    by reference (`_own_ood` copies the one it takes), not copied per call."""
    card = spec.get("card")
    shared = card.get(PER_ATTRIBUTE) if isinstance(card, Mapping) else None
    # deepcopy's memo maps the calibrations to themselves: kept, not copied.
    return copy.deepcopy(dict(spec), {id(shared): shared} if shared is not None else {})


def _own_ood(spec: dict, name: str) -> None:
    """Give an attribute's binary spec its own out-of-distribution calibration
    (a copy of the card's PER_ATTRIBUTE entry for `name`) as its "ood", or none."""
    card = spec.get("card")
    if not isinstance(card, dict):
        return
    per_attribute = card.pop(PER_ATTRIBUTE, None)
    entry = per_attribute.get(name) if isinstance(per_attribute, Mapping) else None
    if entry is None:
        card.pop("ood", None)
    else:
        card["ood"] = copy.deepcopy(entry)


def calibrate_attributes(
    model: LipSequential,
    x_train: Tensor,
    labels_train: Tensor,
    x_test: Tensor,
    quantile: float = 0.99,
) -> dict[str, Any]:
    """The out-of-distribution calibration of every attribute (the PER_ATTRIBUTE
    card entry): `lipnet.ood.calibrate` on each attribute's binary model, its
    classes the attribute absent / present (`labels_train`: 0/1, (N, A)).

    The same training images serve every attribute (the caller draws them: a
    face split is too large to hold in float whole). Raises ValueError for
    labels that do not fit or an entry that does not check against its model
    (`lipnet.ood.calibration_problem`).
    """
    names = attribute_names(model)
    labels_train = torch.as_tensor(labels_train)
    if labels_train.shape != (len(x_train), len(names)):
        raise ValueError(
            f"need 0/1 labels of shape ({len(x_train)}, {len(names)}), "
            f"got {tuple(labels_train.shape)}"
        )
    out = {}
    for a, name in enumerate(names):
        one = attribute(model, name)
        entry = calibrate(one, x_train, labels_train[:, a] > 0, x_test, quantile)
        problem = calibration_problem(entry, one)
        if problem:
            raise ValueError(f"{name}: {problem}")
        out[name] = entry
    return out


def _one_output(last: nn.Module, index: int) -> nn.Module:
    """The head's row `index` as a one-output layer of the same kind: a
    `FrobeniusLinear` for a certified model, an `nn.Linear` for a twin."""
    if isinstance(last, FrobeniusLinear) and last.disjoint_neurons:
        with torch.no_grad():
            row = last.scaled_weight()[index : index + 1].clone()
        head = FrobeniusLinear(row.shape[1], 1, bias=last.bias is not None, k=last.k)
        head = head.to(row)
        with torch.no_grad():
            head.parametrizations.weight.original.copy_(row / last.k)
    elif type(last) is nn.Linear:
        row = last.weight[index : index + 1]
        head = nn.Linear(row.shape[1], 1, bias=last.bias is not None).to(row)
        with torch.no_grad():
            head.weight.copy_(row)
    else:
        raise ValueError(
            "a multi-attribute model ends in a disjoint FrobeniusLinear "
            "(certified) or a plain Linear (unconstrained twin)"
        )
    if last.bias is not None:
        with torch.no_grad():
            head.bias.copy_(last.bias[index : index + 1])
    return head


def attribute_radii(
    model: LipSequential, x: Tensor, labels: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Every attribute's score and certified radius on `x`: (N, A) each.

    Each output is its own binary classifier with the model's per-neuron
    constant; the rounding bound of the output vector (over the ball, as in
    `lipnet.certify.outputs_and_radius`) bounds every score. With 0/1
    `labels` (N, A), a wrong decision gets radius 0.
    """
    with eval_mode(model):
        context = certificate_context(model, tuple(x.shape[1:]))
        out, hidden = forward_with_norms(model, x)
    scores = out.detach().double()
    nominal = (scores.abs().amax(dim=1) / context.lipschitz).nan_to_num(0.0, 0.0, 0.0)
    error = ball_error(context.rounding, hidden, context.prefix, nominal)
    radii = [
        radius_from_outputs(
            scores[:, a : a + 1],
            context.lipschitz,
            "binary",
            None if labels is None else labels[:, a],
            error,
        )
        for a in range(scores.shape[1])
    ]
    return out, torch.stack(radii, dim=1)


def balanced_accuracy(scores: Tensor, labels: Tensor) -> Tensor:
    """Per attribute, the mean of the true-positive and true-negative rates."""
    predicted = scores > 0
    truth = labels > 0
    rates = []
    for a in range(scores.shape[1]):
        p, t = predicted[:, a], truth[:, a]
        tpr = (p & t).sum() / t.sum().clamp_min(1)
        tnr = (~p & ~t).sum() / (~t).sum().clamp_min(1)
        rates.append((tpr + tnr) / 2)
    return torch.stack(rates)


def certified_rates(
    radii: Tensor, labels: Tensor, eps_list: Sequence[float]
) -> dict[float, Tensor]:
    """Per ε, per attribute: the balanced share of inputs certified beyond ε."""
    truth = labels > 0
    out = {}
    for eps in eps_list:
        ok = radii > eps
        pos = (ok & truth).sum(0) / truth.sum(0).clamp_min(1)
        neg = (ok & ~truth).sum(0) / (~truth).sum(0).clamp_min(1)
        out[float(eps)] = (pos + neg) / 2
    return out
