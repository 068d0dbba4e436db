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

import contextlib
import copy
import io
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dlcourse.checks import PASS_MESSAGE, CheckFailure, compare
from dlcourse.checks import check as _check

__all__ = ["NOT_CHECKED", "Case", "CaseSet", "collect_skips", "decode", "encode"]

#: What a visible check prints when it skips a function because that function
#: calls an earlier exercise that fails its own check. The grader reads it: such
#: a cell's in-notebook result says nothing about the function.
NOT_CHECKED = "not checked, because it calls"

EXPECTED_DIR = Path(__file__).with_name("expected")

#: Open collectors of skipped checks (see :func:`collect_skips`).
_SKIP_COLLECTORS: list[list[tuple[str, str]]] = []


@contextlib.contextmanager
def collect_skips():
    """Collect ``(case label, broken dependency)`` for every check skipped inside.

    The trusted grader runs a cell's visible check with this open, so it learns
    *as data* that a check skipped its function (:data:`NOT_CHECKED`), never by
    reading what a notebook printed.
    """
    found: list[tuple[str, str]] = []
    _SKIP_COLLECTORS.append(found)
    try:
        yield found
    finally:
        _SKIP_COLLECTORS.remove(found)


_TUPLE_NAME = re.compile(r"^\((\w+(?:, \w+)+)\)$")


def _tuple_fields(output_name: str) -> tuple[str, ...] | None:
    """``"(dA_prev, dW, db)"`` -> ``("dA_prev", "dW", "db")``; None otherwise."""
    found = _TUPLE_NAME.match(output_name)
    return tuple(found.group(1).split(", ")) if found else None


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _raised_inside(error: BaseException, fn: Callable) -> bool:
    """Whether ``error`` was raised by the body of ``fn`` itself.

    The grader's stand-ins for functions that run in another process say so on
    the exception (``__raised_inside__``).
    """
    reported = getattr(error, "__raised_inside__", None)
    if reported is not None:
        return bool(reported)
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is getattr(fn, "__code__", None)


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
        diagnoses: typical slips this case can recognise. Each is called, only
            when the check fails, as ``diagnose(args, kwargs, got, fn)`` with
            fresh inputs, what the student's ``fn`` returned, and ``fn`` itself
            (its ``__globals__`` hold the student's other functions); it returns
            a hint naming the slip, or None.
    """

    function: str
    make_inputs: Callable[[], tuple[tuple, dict]]
    arg_names: tuple[str, ...] = ()
    output_name: str = "output"
    m: int | None = None
    rtol: float = 1e-7
    atol: float = 1e-9
    diagnoses: tuple[Callable, ...] = ()


def _names_used(fn) -> set[str]:
    """Global names a function's code (nested code included) refers to."""
    named: set[str] = set(getattr(fn, "__names_used__", ()))
    stack = (
        [fn.__code__]
        if isinstance(getattr(fn, "__code__", None), types.CodeType)
        else []
    )
    while stack:
        code = stack.pop()
        named.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return named


class CaseSet:
    """The visible checks of one assignment.

    Two things make the checks fairer than a plain comparison:

    - A function that calls earlier exercises is not failed for a bug in one of
      those: if its check fails and a function it calls, directly or through
      another (read from the student's own code), fails its own check, the check
      says so and returns without raising, so under grading only the hidden
      tests (which patch in correct versions) decide.
    - Functions may be allowed to update some arguments in place (``may_modify``),
      e.g. ``update_parameters`` and its ``parameters`` dict.

    Args:
        assignment: assignment id.
        cases: case name -> :class:`Case`. A case named ``<function>_<variant>``
            is reported as ``<function> (<variant>)``. An ``output_name`` of the
            form ``"(dA_prev, dW, db)"`` names the items of a returned tuple, so a
            message says ``dW`` rather than ``output[1]``.
        may_modify: function -> names of arguments it may update in place.
    """

    def __init__(
        self,
        assignment: str,
        cases: Mapping[str, Case],
        *,
        may_modify: Mapping[str, Sequence[str]] | None = None,
    ):
        self.assignment = assignment
        self.cases = dict(cases)
        self.may_modify = dict(may_modify or {})

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

    def label(self, name: str) -> str:
        """How case ``name`` is called in messages."""
        function = self._case(name).function
        variant = name[len(function) + 1 :] if name != function else ""
        return f"{function} ({variant.replace('_', ' ')})" if variant else function

    def _run(self, name: str, fn: Callable):
        """Run one case and raise :class:`CheckFailure` on any difference."""
        case = self._case(name)
        label = self.label(name)
        args, kwargs = case.make_inputs()
        expected = self.expected(name)
        own = set(self.may_modify.get(case.function, ()))
        private = [i for i, arg in enumerate(case.arg_names) if arg in own]
        returned = []

        def call(*call_args, **call_kwargs):
            call_args = list(call_args)
            for i in private:
                call_args[i] = copy.deepcopy(call_args[i])
            returned.append(fn(*call_args, **call_kwargs))

        # The engine checks that the inputs are left alone and reports warnings;
        # the comparison is done below, item by item, to name each item.
        _check(
            call,
            args,
            kwargs,
            expected=None,
            name=label,
            arg_names=case.arg_names,
            quiet=True,
        )
        got = returned[0]
        fields = _tuple_fields(case.output_name)
        tolerances = dict(rtol=case.rtol, atol=case.atol, m=case.m)
        if fields is None:
            problem = compare(got, expected, name=case.output_name, **tolerances)
        elif not isinstance(got, (tuple, list)) or len(got) != len(fields):
            problem = f"expected a tuple {case.output_name}, got {_describe(got)}"
        else:
            problem = None
            for field, item, wanted in zip(fields, got, expected, strict=True):
                problem = compare(item, wanted, name=field, **tolerances)
                if problem:
                    break
        if problem:
            for hint in self._diagnose(case, got, fn):
                problem += f"\n  Hint: {hint}"
            raise CheckFailure(f"{label}: {problem}")
        return got

    @staticmethod
    def _diagnose(case: Case, got, fn: Callable) -> list[str]:
        """The hints of every slip of ``case`` that explains ``got``."""
        hints = []
        for diagnose in case.diagnoses:
            args, kwargs = case.make_inputs()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    hint = diagnose(args, kwargs, got, fn)
            except Exception:  # noqa: BLE001 - a diagnosis never hides the failure
                hint = None
            if hint:
                hints.append(hint)
        return hints

    def _called_exercises(self, function: str, fn: Callable) -> list[str]:
        """Graded functions ``fn`` calls, directly or through each other.

        Read from the student's code as it is (their functions' bytecode, or
        the names a stand-in running in another process reports as
        ``__names_used__``), followed through the notebook's namespace; in the
        order the exercises come, so the earliest broken one is named.
        """
        order = list(dict.fromkeys(case.function for case in self.cases.values()))
        graded = set(order) - {function}
        namespace = getattr(fn, "__globals__", {})
        found: set[str] = set()
        todo = [fn]
        while todo:
            for name in _names_used(todo.pop()) & graded - found:
                found.add(name)
                todo.append(namespace.get(name))
        return [name for name in order if name in found]

    def _broken_dependency(self, function: str, fn: Callable) -> str | None:
        """The first earlier exercise ``fn`` calls that fails its own check."""
        namespace = getattr(fn, "__globals__", {})
        for dependency in self._called_exercises(function, fn):
            student = namespace.get(dependency)
            if not callable(student):
                return dependency
            for name, case in self.cases.items():
                if case.function != dependency:
                    continue
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        self._run(name, student)
                except Exception:  # noqa: BLE001 - any failure counts as broken
                    return dependency
        return None

    def check(self, name: str, fn: Callable, *, quiet: bool = False) -> None:
        """Run the visible check ``name`` on the student's function ``fn``.

        Returns None (the outcome is printed), so that a test cell ending with a
        check does not echo the student's output. When an earlier exercise that
        ``fn`` calls fails its own check, a message says so and nothing is raised.

        Raises:
            dlcourse.checks.CheckFailure: naming where the output differs.
            NotImplementedError: if ``fn`` itself has not been written yet.
        """
        function = self._case(name).function
        try:
            self._run(name, fn)
        except Exception as error:
            if isinstance(error, NotImplementedError) and _raised_inside(error, fn):
                raise
            broken = self._broken_dependency(function, fn)
            if broken is None:
                raise
            for collector in _SKIP_COLLECTORS:
                collector.append((self.label(name), broken))
            print(
                f"{self.label(name)}: {NOT_CHECKED} {broken}, "
                f"which does not pass its own visible check yet. Fix {broken} "
                "first, then run this cell again."
            )
            return
        if not quiet:
            print(f"{function}: {PASS_MESSAGE}.")


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
