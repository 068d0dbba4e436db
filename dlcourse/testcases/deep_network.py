"""Inputs and visible checks of assignment 04, "Build a deep network step by step".

The fixed inputs reproduce the small examples learners of this exercise know (for
instance ``linear_forward`` on seed 1 gives ``Z = [[3.26295337 -1.23429987]]``);
they are drawn with ``np.random.RandomState(seed)`` so the global random state of
the notebook is left alone.

Two things make these checks fairer than a plain comparison:

- A function that calls earlier exercises (``L_model_backward`` calls
  ``linear_activation_backward``, which calls ``linear_backward``) is not failed
  for a bug in one of those: if its check fails and one of the functions it calls
  fails its own check, the check says so and stops without raising, so under
  grading only the hidden tests (which patch in correct versions) decide.
- ``update_parameters`` may update the dict it is given or return a new one.

In a notebook::

    from dlcourse.testcases import deep_network as tc
    A, W, b = tc.inputs("linear_forward")
    tc.check("linear_forward", linear_forward)
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dlcourse.activations import relu, sigmoid
from dlcourse.checks import PASS_MESSAGE, CheckFailure, compare
from dlcourse.checks import check as _check

from . import Case, CaseSet

__all__ = ["ASSIGNMENT", "CASES", "StepByStepCases", "check", "expected", "inputs"]

ASSIGNMENT = "04_deep_network_step_by_step"

#: Graded functions and the earlier graded functions they (usually) call.
DEPENDENCIES = {
    "linear_activation_forward": ("linear_forward",),
    "L_model_forward": ("linear_forward", "linear_activation_forward"),
    "linear_activation_backward": ("linear_backward",),
    "L_model_backward": ("linear_backward", "linear_activation_backward"),
}

#: Arguments a graded function may legitimately update in place.
MAY_MODIFY = {"update_parameters": ("parameters",)}

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
    """Whether ``error`` was raised by the body of ``fn`` itself."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is getattr(fn, "__code__", None)


class StepByStepCases(CaseSet):
    """A :class:`CaseSet` for exercises that build on one another.

    Args:
        assignment: assignment id.
        cases: case name -> :class:`Case`. A case named ``<function>_<variant>``
            is reported as ``<function> (<variant>)``. An ``output_name`` of the
            form ``"(dA_prev, dW, db)"`` names the items of a returned tuple, so a
            message says ``dW`` rather than ``output[1]``.
        depends_on: function -> earlier graded functions it calls.
        may_modify: function -> names of arguments it may update in place.
    """

    def __init__(
        self,
        assignment: str,
        cases: Mapping[str, Case],
        *,
        depends_on: Mapping[str, Sequence[str]] | None = None,
        may_modify: Mapping[str, Sequence[str]] | None = None,
    ):
        super().__init__(assignment, cases)
        self.depends_on = dict(depends_on or {})
        self.may_modify = dict(may_modify or {})

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
            raise CheckFailure(f"{label}: {problem}")
        return got

    def _broken_dependency(self, function: str, fn: Callable) -> str | None:
        """The first earlier exercise ``fn`` calls that fails its own check."""
        namespace = getattr(fn, "__globals__", {})
        for dependency in self.depends_on.get(function, ()):
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

    def check(self, name: str, fn: Callable, *, quiet: bool = False):
        """Run the visible check ``name`` on the student's function ``fn``.

        Returns:
            What ``fn`` returned, or None if the check could not be made because
            an earlier exercise that ``fn`` calls fails its own check (a message
            says which).

        Raises:
            dlcourse.checks.CheckFailure: naming where the output differs.
            NotImplementedError: if ``fn`` itself has not been written yet.
        """
        function = self._case(name).function
        try:
            got = self._run(name, fn)
        except Exception as error:
            if isinstance(error, NotImplementedError) and _raised_inside(error, fn):
                raise
            broken = self._broken_dependency(function, fn)
            if broken is None:
                raise
            print(
                f"{self.label(name)}: not checked, because it calls {broken}, "
                f"which does not pass its own visible check yet. Fix {broken} "
                "first, then run this cell again."
            )
            return None
        if not quiet:
            print(f"{function}: {PASS_MESSAGE}.")
        return got


# --- input factories: each returns (args, kwargs) --------------------------------


def _initialize_parameters():
    return (2, 2, 1), {}


def _initialize_parameters_deep():
    return ([5, 4, 3],), {}


def _linear_forward():
    rng = np.random.RandomState(1)
    A = rng.randn(3, 2)
    W = rng.randn(1, 3)
    b = rng.randn(1, 1)
    return (A, W, b), {}


def _linear_activation_forward(activation: str):
    def make():
        rng = np.random.RandomState(2)
        A_prev = rng.randn(3, 2)
        W = rng.randn(1, 3)
        b = rng.randn(1, 1)
        return (A_prev, W, b, activation), {}

    return make


def _L_model_forward():
    rng = np.random.RandomState(1)
    X = rng.randn(4, 2)
    W1 = rng.randn(3, 4)
    b1 = rng.randn(3, 1)
    W2 = rng.randn(1, 3)
    b2 = rng.randn(1, 1)
    return (X, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}), {}


def _compute_cost():
    AL = np.array([[0.8, 0.9, 0.4]])
    Y = np.array([[1, 1, 1]])
    return (AL, Y), {}


def _linear_backward():
    rng = np.random.RandomState(1)
    dZ = rng.randn(1, 2)
    A_prev = rng.randn(3, 2)
    W = rng.randn(1, 3)
    b = rng.randn(1, 1)
    return (dZ, (A_prev, W, b)), {}


def _linear_activation_backward(activation: str):
    def make():
        # The classic fixture: Z is drawn at random rather than computed from the
        # linear cache, which does not matter here since only g'(Z) uses it.
        rng = np.random.RandomState(2)
        dA = rng.randn(1, 2)
        A_prev = rng.randn(3, 2)
        W = rng.randn(1, 3)
        b = rng.randn(1, 1)
        Z = rng.randn(1, 2)
        return (dA, ((A_prev, W, b), Z), activation), {}

    return make


def _forward_caches(X: np.ndarray, weights: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Run [LINEAR->RELU]*(L-1) -> LINEAR->SIGMOID and return (AL, caches).

    Built from the given activations (not from any solution) so that every cache
    is consistent: ``Z = W A_prev + b``, ``A = g(Z)`` and ``AL = sigmoid(Z_L)``.
    """
    A, caches = X, []
    for layer, (W, b) in enumerate(weights, start=1):
        Z = W @ A + b
        caches.append(((A, W, b), Z))
        A, _ = sigmoid(Z) if layer == len(weights) else relu(Z)
    return A, caches


def _L_model_backward_2_layers():
    # Consistent caches from a real forward pass, so that dZ = AL - Y at the
    # output layer and the chain rule through sigmoid_backward agree.
    rng = np.random.RandomState(3)
    X = rng.randn(4, 2)
    W1 = rng.randn(3, 4)
    b1 = rng.randn(3, 1)
    W2 = rng.randn(1, 3)
    b2 = rng.randn(1, 1)
    AL, caches = _forward_caches(X, [(W1, b1), (W2, b2)])
    Y = np.array([[1, 0]])
    return (AL, Y, caches), {}


def _L_model_backward_3_layers():
    # Two hidden layers of equal width, so that feeding layer 1 the gradient of
    # the wrong layer gives wrong numbers rather than a shape error.
    rng = np.random.RandomState(5)
    X = rng.randn(3, 4)
    W1 = rng.randn(4, 3)
    b1 = rng.randn(4, 1)
    W2 = rng.randn(4, 4)
    b2 = rng.randn(4, 1)
    W3 = rng.randn(1, 4)
    b3 = rng.randn(1, 1)
    AL, caches = _forward_caches(X, [(W1, b1), (W2, b2), (W3, b3)])
    Y = np.array([[1, 0, 0, 1]])
    return (AL, Y, caches), {}


def _update_parameters():
    rng = np.random.RandomState(2)
    parameters = {
        "W1": rng.randn(3, 4),
        "b1": rng.randn(3, 1),
        "W2": rng.randn(1, 3),
        "b2": rng.randn(1, 1),
    }
    rng = np.random.RandomState(3)
    grads = {
        "dW1": rng.randn(3, 4),
        "db1": rng.randn(3, 1),
        "dW2": rng.randn(1, 3),
        "db2": rng.randn(1, 1),
    }
    return (parameters, grads, 0.1), {}


_LINEAR_BACKWARD_ARGS = ("dZ", "cache")
_LAYER_BACKWARD_ARGS = ("dA", "cache", "activation")
_MODEL_BACKWARD_ARGS = ("AL", "Y", "caches")

CASES = StepByStepCases(
    ASSIGNMENT,
    {
        "initialize_parameters": Case(
            "initialize_parameters",
            _initialize_parameters,
            arg_names=("n_x", "n_h", "n_y"),
            output_name="parameters",
        ),
        "initialize_parameters_deep": Case(
            "initialize_parameters_deep",
            _initialize_parameters_deep,
            arg_names=("layer_dims",),
            output_name="parameters",
        ),
        "linear_forward": Case(
            "linear_forward",
            _linear_forward,
            arg_names=("A", "W", "b"),
            output_name="(Z, cache)",
        ),
        "linear_activation_forward_sigmoid": Case(
            "linear_activation_forward",
            _linear_activation_forward("sigmoid"),
            arg_names=("A_prev", "W", "b", "activation"),
            output_name="(A, cache)",
        ),
        "linear_activation_forward_relu": Case(
            "linear_activation_forward",
            _linear_activation_forward("relu"),
            arg_names=("A_prev", "W", "b", "activation"),
            output_name="(A, cache)",
        ),
        "L_model_forward": Case(
            "L_model_forward",
            _L_model_forward,
            arg_names=("X", "parameters"),
            output_name="(AL, caches)",
        ),
        "compute_cost": Case(
            "compute_cost",
            _compute_cost,
            arg_names=("AL", "Y"),
            output_name="cost",
            m=3,
        ),
        "linear_backward": Case(
            "linear_backward",
            _linear_backward,
            arg_names=_LINEAR_BACKWARD_ARGS,
            output_name="(dA_prev, dW, db)",
            m=2,
        ),
        "linear_activation_backward_sigmoid": Case(
            "linear_activation_backward",
            _linear_activation_backward("sigmoid"),
            arg_names=_LAYER_BACKWARD_ARGS,
            output_name="(dA_prev, dW, db)",
            m=2,
        ),
        "linear_activation_backward_relu": Case(
            "linear_activation_backward",
            _linear_activation_backward("relu"),
            arg_names=_LAYER_BACKWARD_ARGS,
            output_name="(dA_prev, dW, db)",
            m=2,
        ),
        "L_model_backward_2_layers": Case(
            "L_model_backward",
            _L_model_backward_2_layers,
            arg_names=_MODEL_BACKWARD_ARGS,
            output_name="grads",
            m=2,
        ),
        "L_model_backward_3_layers": Case(
            "L_model_backward",
            _L_model_backward_3_layers,
            arg_names=_MODEL_BACKWARD_ARGS,
            output_name="grads",
            m=4,
        ),
        "update_parameters": Case(
            "update_parameters",
            _update_parameters,
            arg_names=("parameters", "grads", "learning_rate"),
            output_name="parameters",
        ),
    },
    depends_on=DEPENDENCIES,
    may_modify=MAY_MODIFY,
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected
