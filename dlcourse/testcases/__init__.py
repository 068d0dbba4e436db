"""Deterministic inputs for every exercise, and the visible checks built on them.

Each assignment has a module here (``deep_network`` for assignment 04, …) that
defines a :class:`CaseSet`: named cases, each an input factory plus how to
describe the inputs and output. The expected outputs are not typed by hand: they
are computed from the reference solutions by ``python -m autograder expected``
and stored in ``expected/<assignment>.json``; a test keeps that file in step
with the source notebooks.

In a notebook::

    from dlcourse.testcases import deep_network as tc
    A, W, b = tc.inputs("linear_forward")
    tc.check("linear_forward", linear_forward)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dlcourse.checks import check as _check

__all__ = ["Case", "CaseSet", "decode", "encode"]

EXPECTED_DIR = Path(__file__).with_name("expected")


@dataclass(frozen=True)
class Case:
    """One visible check: call ``function`` on ``make_inputs()``.

    Attributes:
        function: name of the graded function the case calls.
        make_inputs: returns ``(args, kwargs)``; must be deterministic.
        arg_names: names of the positional arguments, for messages.
        output_name: how to call the output in messages.
        m: number of examples in the inputs, so a missing ``1/m`` is named.
        rtol, atol: comparison tolerances.
    """

    function: str
    make_inputs: Callable[[], tuple[tuple, dict]]
    arg_names: tuple[str, ...] = ()
    output_name: str = "output"
    m: int | None = None
    rtol: float = 1e-7
    atol: float = 1e-9


class CaseSet:
    """The visible checks of one assignment."""

    def __init__(self, assignment: str, cases: Mapping[str, Case]):
        self.assignment = assignment
        self.cases = dict(cases)

    def _case(self, name: str) -> Case:
        try:
            return self.cases[name]
        except KeyError:
            raise KeyError(
                f"no test case {name!r} in {self.assignment}; "
                f"known cases: {', '.join(self.cases)}"
            ) from None

    def inputs(self, name: str):
        """Return the positional inputs of a case (a tuple, or the one value)."""
        args, _ = self._case(name).make_inputs()
        return args[0] if len(args) == 1 else args

    def expected(self, name: str):
        """Return the stored expected output of a case."""
        self._case(name)
        table = _expected_table(self.assignment)
        if name not in table:
            raise KeyError(
                f"no expected output stored for {self.assignment}/{name}; run "
                "`python -m autograder expected` to regenerate "
                f"{EXPECTED_DIR / (self.assignment + '.json')}"
            )
        return decode(table[name])

    def check(self, name: str, fn: Callable, *, quiet: bool = False):
        """Run the visible check ``name`` on the student's function ``fn``.

        Returns:
            What ``fn`` returned.

        Raises:
            dlcourse.checks.CheckFailure: naming where the output differs.
        """
        case = self._case(name)
        args, kwargs = case.make_inputs()
        return _check(
            fn,
            args,
            kwargs,
            expected=self.expected(name),
            name=case.function,
            arg_names=case.arg_names,
            output_name=case.output_name,
            m=case.m,
            rtol=case.rtol,
            atol=case.atol,
            quiet=quiet,
        )


@cache
def _expected_table(assignment: str) -> dict:
    path = EXPECTED_DIR / f"{assignment}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; run `python -m autograder expected` to create it"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def encode(value):
    """Turn a nested output (arrays, numbers, dicts, tuples, lists) into JSON data.

    Floats are written with ``repr`` precision, so :func:`decode` gives back the
    exact same numbers.
    """
    if isinstance(value, np.ndarray):
        return {
            "__ndarray__": value.tolist(),
            "dtype": str(value.dtype),
            "shape": list(value.shape),
        }
    if isinstance(value, np.generic):
        return {"__scalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} as an expected output")


def decode(data):
    """Inverse of :func:`encode`."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        if "__ndarray__" in data:
            array = np.array(data["__ndarray__"], dtype=data["dtype"])
            return array.reshape(data["shape"])
        if "__scalar__" in data:
            return np.dtype(data["dtype"]).type(data["__scalar__"])
        if "__dict__" in data:
            return {decode(k): decode(v) for k, v in data["__dict__"]}
        if "__tuple__" in data:
            return tuple(decode(v) for v in data["__tuple__"])
    return data
