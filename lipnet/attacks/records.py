"""Every attack as one record: its function, label, parameters and test values.

`counterfactual` checks a call against the record; the explorer draws its
controls from it (`dashboard.explorer_controls`), a shared link is validated
against it (`dashboard.links`) and the tests loop over it. A new attack is
one function and one `Attack` in `ATTACKS`; tables derived from the records
(`METHODS`, `METHOD_LABELS`) are live `View`s, so a record added at run time
shows everywhere at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import Tensor

from .boundary import deepfool, transport
from .gradient import fgsm, pgd
from .minimal import fmn, pgd_search

V = TypeVar("V")


@dataclass(frozen=True)
class Param:
    """One parameter the explorer offers for an attack.

    `name` is the attack function's keyword; `key` its widget's session key;
    `url` its key in a shared link; `low`..`high` its range (ints for an
    integer slider), `default` its starting value. `widget` is "slider" or
    "number"; `eps` lets a link write it as an ε ("36/255"); `short` names
    it in the caption under a result.
    """

    name: str
    key: str
    url: str
    label: str
    low: int | float
    high: int | float
    default: int | float
    short: str
    step: float | None = None
    widget: str = "slider"
    help: str | None = None
    eps: bool = False


@dataclass(frozen=True)
class Attack:
    """One attack: what runs, how it is named, what it takes.

    `takes_eps`: a budget attack that needs `eps` and a `norm` ("l2" or
    "linf"), drawn by the explorer's budget controls. `positive`: arguments
    that must be positive and finite. `quick`: runs in milliseconds (the
    dashboard skips its work queue). `test_params`: the arguments the
    generic tests run it with.
    """

    name: str
    function: Callable[..., Tensor]
    label: str
    params: tuple[Param, ...] = ()
    takes_eps: bool = False
    positive: tuple[str, ...] = ()
    quick: bool = False
    test_params: Mapping[str, Any] = field(default_factory=dict)

    def arguments(self) -> set[str]:
        """The keyword arguments the function takes (besides the tracker and x).

        Returns:
            Their names.
        """
        return set(inspect.signature(self.function).parameters) - {"tracker", "x"}


class View(Mapping[str, V]):
    """A read-only mapping rebuilt from its source at every access.

    Tables derived from `ATTACKS` stay in step with it when a record is
    added or removed (a test's toy attack, a plug-in).
    """

    def __init__(self, build: Callable[[], Mapping[str, V]]) -> None:
        self._build = build

    def __getitem__(self, key: str) -> V:
        return self._build()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return repr(dict(self._build()))


OVERSHOOT = Param(
    "overshoot",
    key="overshoot",
    url="overshoot",
    label="Overshoot (× the initial margin, past the boundary)",
    low=0.0,
    high=5.0,
    default=1.0,
    short="overshoot",
    step=0.01,
    help="0 stops on the decision boundary (the smallest flip); 1, the "
    "default, goes as far past it as the input was before it, so the new "
    "class is as clear as the old one and the change is visible.",
)

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack(
            "transport",
            transport,
            "Transport counterfactual",
            params=(
                OVERSHOOT,
                Param(
                    "step_size",
                    key="step_size",
                    url="step",
                    label="Step size (1 = one Newton step; smaller = smooth "
                    "gradient flow)",
                    low=0.1,
                    high=1.0,
                    default=1.0,
                    short="step size",
                ),
            ),
            positive=("step_size", "steps"),
            quick=True,
        ),
        Attack(
            "fgsm",
            fgsm,
            "FGSM",
            takes_eps=True,
            positive=("eps",),
            test_params={"eps": 3.0},
        ),
        Attack(
            "pgd",
            pgd,
            "PGD",
            params=(
                Param("steps", "pgd_steps", "steps", "Steps", 5, 200, 50, "steps"),
                Param(
                    "restarts", "restarts", "restarts", "Restarts", 1, 5, 1, "restarts"
                ),
            ),
            takes_eps=True,
            positive=("eps", "step_size", "steps", "restarts"),
            test_params={"eps": 3.0, "steps": 30, "restarts": 2},
        ),
        Attack(
            "deepfool",
            deepfool,
            "DeepFool",
            params=(OVERSHOOT,),
            positive=("steps",),
        ),
        Attack(
            "fmn",
            fmn,
            "Minimal L2 (FMN)",
            params=(
                Param("steps", "fmn_steps", "fmn", "Steps", 10, 300, 100, "steps"),
            ),
            positive=("steps",),
            test_params={"steps": 100},
        ),
        Attack(
            "pgd_search",
            pgd_search,
            "Minimal L2 (PGD + binary search)",
            params=(
                Param(
                    "eps_max",
                    key="eps_max",
                    url="eps_max",
                    label="Largest ε",
                    low=0.1,
                    high=50.0,
                    default=5.0,
                    short="largest ε",
                    widget="number",
                    eps=True,
                ),
                Param(
                    "search_steps",
                    "search",
                    "search",
                    "Bisection steps",
                    2,
                    12,
                    6,
                    "bisection steps",
                ),
                Param(
                    "pgd_steps",
                    "search_pgd",
                    "search_pgd",
                    "PGD steps per ε",
                    5,
                    100,
                    20,
                    "PGD steps per ε",
                ),
            ),
            positive=("eps_max", "restarts", "search_steps", "pgd_steps"),
            test_params={"eps_max": 4.0, "search_steps": 8, "pgd_steps": 20},
        ),
    )
}
"""Every attack by name, in the explorer's order."""

METHODS: Mapping[str, Callable[..., Tensor]] = View(
    lambda: {name: a.function for name, a in ATTACKS.items()}
)
"""Each attack's function by name (derived from ATTACKS)."""
METHOD_LABELS: Mapping[str, str] = View(
    lambda: {name: a.label for name, a in ATTACKS.items()}
)
"""Each attack's label by name (derived from ATTACKS)."""
