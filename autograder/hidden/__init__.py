"""Hidden tests: the graded half of every test cell.

A test cell in a source notebook ends with::

    ### BEGIN HIDDEN TESTS
    from autograder.hidden import deep_network as hidden
    hidden.grade("linear_backward", globals())
    ### END HIDDEN TESTS

``grade`` runs the student's function (looked up in the notebook's namespace) on
fresh inputs of other shapes and seeds, compares it with the reference solution
read from the source notebook, and for backward functions checks it against a
centred-difference gradient. When the function calls earlier exercises, those
are replaced by correct versions while it runs, so one bug costs one exercise.

This module holds the machinery shared by the assignment modules beside it.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from dlcourse.checks import CheckFailure, check, patched_globals
from dlcourse.gradcheck import rel_error

from ..source import reference_calls, reference_namespace

__all__ = [
    "HiddenTestFailure",
    "Grader",
    "describe_call",
    "describe_inputs",
]

#: Largest relative error accepted between an analytical gradient and the
#: centred-difference estimate. Measured on the hidden inputs: correct code gives
#: at most ~1e-8, a missing 1/m or a transposed term gives 1e-1 or more.
GRADCHECK_THRESHOLD = 1e-6


class HiddenTestFailure(AssertionError):
    """A hidden test failed; the message says which property and on what shapes."""


def _describe_value(label: str, value) -> str:
    if isinstance(value, np.ndarray):
        return f"{label} {value.shape}"
    if isinstance(value, (list, tuple)) and len(str(value)) > 40:
        return f"{label} ({type(value).__name__} of {len(value)})"
    if isinstance(value, dict):
        return f"{label} (dict of {len(value)})"
    return f"{label} {value!r}"


def describe_inputs(args: Sequence, arg_names: Sequence[str]) -> str:
    """Summarise inputs by shape, e.g. ``A (5, 7), W (3, 5)``."""
    return ", ".join(
        _describe_value(arg_names[i] if i < len(arg_names) else f"arg{i + 1}", value)
        for i, value in enumerate(args)
    )


def describe_call(args: Sequence, kwargs: Mapping, arg_names: Sequence[str]) -> str:
    """Summarise a call's inputs, keyword arguments included.

    A dict of arrays is shown key by key, e.g. ``parameters {W1 (4, 3), b1 (4,
    1)}``, so that the sizes of a network's layers show.
    """
    parts = []
    for i, value in enumerate(args):
        label = arg_names[i] if i < len(arg_names) else f"arg{i + 1}"
        parts.append(_describe_shapes(label, value))
    parts += [_describe_shapes(key, value) for key, value in kwargs.items()]
    return ", ".join(parts)


def _describe_shapes(label: str, value) -> str:
    if isinstance(value, dict) and value:
        if all(isinstance(v, np.ndarray) for v in value.values()):
            inner = ", ".join(f"{k} {v.shape}" for k, v in value.items())
            return f"{label} {{{inner}}}"
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, np.ndarray) for v in value):
            return f"{label} ({', '.join(str(v.shape) for v in value)})"
        if any(isinstance(v, np.ndarray | tuple | list) for v in value):
            return f"{label} ({type(value).__name__} of {len(value)})"
    if isinstance(value, float):
        return f"{label} {value:g}"
    return _describe_value(label, value)


class Grader:
    """Hidden tests of one assignment.

    Args:
        assignment: assignment id, e.g. ``"04_deep_network_step_by_step"``.
    """

    def __init__(self, assignment: str):
        self.assignment = assignment
        self._tests: dict[str, Callable] = {}
        #: While :meth:`hidden_inputs` runs: the calls :meth:`compare` is given.
        self._recorded: list[str] | None = None

    @property
    def reference(self) -> dict:
        """The reference implementations (a fresh copy each time)."""
        return reference_namespace(self.assignment)

    def calls(self, name: str) -> list[str]:
        """The earlier exercises ``name``'s reference calls (read from the source)."""
        return reference_calls(name, self.assignment)

    def patched(self, namespace: dict, name: str, reference: Mapping | None = None):
        """Run the block with correct versions of what ``name`` calls in ``namespace``.

        So a bug in an earlier exercise costs only that exercise's points.
        """
        reference = self.reference if reference is None else reference
        return patched_globals(
            namespace, **{dep: reference[dep] for dep in self.calls(name)}
        )

    def test(self, name: str):
        """Register the hidden test of the graded function ``name``."""

        def register(fn):
            self._tests[name] = fn
            return fn

        return register

    def grade(self, name: str, namespace: Mapping) -> None:
        """Run the hidden test of ``name`` against the student's namespace.

        Raises:
            HiddenTestFailure: naming what failed.
            NotImplementedError: if the student has not written the function.
        """
        if name not in self._tests:
            raise KeyError(f"no hidden test registered for {self.assignment}/{name}")
        if name not in namespace:
            raise HiddenTestFailure(
                f"{name} is not defined: run the cell that defines it, and keep "
                "its name unchanged"
            )
        self._tests[name](namespace, self.reference)

    def hidden_inputs(self, name: str) -> list[str]:
        """Describe, by shape, the inputs the hidden test of ``name`` compares on.

        The hidden test runs as it does under grading, with the reference in the
        student's place, while :meth:`compare` records each call it is given
        (``describe_call``) instead of running it: the inputs come from the test
        itself, as data, so the description cannot drift from what is graded.

        Returns:
            One line per distinct call, e.g. ``"A (5, 7), W (3, 5), b (3, 1)"``.

        Raises:
            KeyError: if no hidden test is registered for ``name``.
        """
        if name not in self._tests:
            raise KeyError(f"no hidden test registered for {self.assignment}/{name}")
        reference = self.reference
        self._recorded = []
        try:
            # Some tests also check what a function prints: keep that to itself.
            with contextlib.redirect_stdout(io.StringIO()):
                self._tests[name](dict(reference), reference)
            return list(dict.fromkeys(self._recorded))  # each shape once, in order
        finally:
            self._recorded = None

    def compare(
        self,
        namespace: dict,
        reference: Mapping,
        name: str,
        inputs: Iterable[tuple[tuple, dict]],
        *,
        arg_names: Sequence[str] = (),
        output_name: str = "output",
        rtol: float = 1e-6,
        atol: float = 1e-9,
        m_of: Callable[[tuple], int | None] | None = None,
    ) -> None:
        """Compare the student's ``name`` with the reference on each input.

        The earlier exercises ``name`` calls are correct versions meanwhile
        (:meth:`patched`).

        Args:
            namespace: the notebook's ``globals()``.
            reference: the reference namespace.
            name: graded function to test.
            inputs: ``(args, kwargs)`` pairs.
            arg_names: argument names for messages.
            output_name: how to call the output in messages.
            rtol, atol: comparison tolerances.
            m_of: gives the number of examples from the args, for hints.
        """
        if self._recorded is not None:
            self._recorded += [describe_call(a, k, arg_names) for a, k in inputs]
            return
        student = namespace[name]
        for args, kwargs in inputs:
            expected = reference[name](*copy.deepcopy(args), **copy.deepcopy(kwargs))
            where = describe_inputs(args, arg_names)
            try:
                with self.patched(namespace, name, reference):
                    check(
                        student,
                        args,
                        kwargs,
                        expected=expected,
                        name=name,
                        arg_names=arg_names,
                        output_name=output_name,
                        rtol=rtol,
                        atol=atol,
                        m=m_of(args) if m_of else None,
                        quiet=True,
                    )
            except CheckFailure as failure:
                raise HiddenTestFailure(
                    f"hidden test on inputs {where}:\n{failure}"
                ) from None

    @staticmethod
    def assert_gradient(label: str, analytical, numerical, where: str) -> None:
        """Fail unless an analytical gradient matches the numerical estimate."""
        analytical = np.asarray(analytical, dtype=np.float64)
        if analytical.shape != np.shape(numerical):
            raise HiddenTestFailure(
                f"gradient check on {where}: {label} has shape {analytical.shape}, "
                f"expected {np.shape(numerical)}"
            )
        error = rel_error(analytical, numerical)
        if not error <= GRADCHECK_THRESHOLD:
            raise HiddenTestFailure(
                f"gradient check on {where}: {label} disagrees with the numerical "
                f"gradient (relative error {error:.2e}, allowed "
                f"{GRADCHECK_THRESHOLD:.0e})"
            )
