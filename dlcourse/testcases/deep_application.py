"""Inputs and visible checks of assignment 05, "A deep network for the cat pictures".

The three graded functions call only the given helpers of ``dnn_helpers.py``,
never one another, so each check stands on its own. The inputs are small (a few
examples, 101 iterations: two recorded costs) and drawn with
``np.random.RandomState(seed)``; the models seed the global generator themselves.

In a notebook::

    from dlcourse.testcases import deep_application as tc
    tc.check("L_layer_model", L_layer_model)
"""

from __future__ import annotations

import numpy as np

from . import Case, CaseSet, _slips

__all__ = ["ASSIGNMENT", "CASES", "check", "expected", "inputs"]

ASSIGNMENT = "05_deep_network_application"


def _data(seed: int, n_x: int, m: int):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_x, m)
    Y = (rng.rand(1, m) > 0.5).astype(np.int64)
    Y[0, 0], Y[0, -1] = 1, 0  # both classes, whatever the seed
    return X, Y


def _two_layer_model():
    X, Y = _data(1, 5, 8)
    return (X, Y, (5, 4, 1)), {
        "learning_rate": 0.1,
        "num_iterations": 101,
        "print_cost": False,
    }


def _L_layer_model():
    X, Y = _data(2, 5, 8)
    return (X, Y, [5, 4, 3, 1]), {
        "learning_rate": 0.1,
        "num_iterations": 101,
        "print_cost": False,
    }


def _predict():
    # Seed 7 gives output probabilities 0.37 to 0.9, on both sides of 0.5.
    rng = np.random.RandomState(7)
    X = rng.randn(4, 6)
    y = np.array([[1, 0, 1, 1, 0, 0]])
    parameters = {
        "W1": rng.randn(3, 4),
        "b1": rng.randn(3, 1),
        "W2": rng.randn(2, 3),
        "b2": rng.randn(2, 1),
        "W3": rng.randn(1, 2),
        "b3": rng.randn(1, 1),
    }
    return (X, y, parameters), {}


_MODEL_ARGS = ("X", "Y", "layers_dims")


def _two_layer_start(args, kwargs, namespace):
    # The models seed numpy's global generator themselves, with 1.
    np.random.seed(1)  # noqa: NPY002
    return namespace["initialize_parameters"](*args[2])


def _deep_start(args, kwargs, namespace):
    np.random.seed(1)  # noqa: NPY002
    return namespace["initialize_parameters_deep"](args[2])


def _model_slips(start):
    """The slips a training loop's check recognises (``start``: its initial state)."""
    return (
        _slips.returns_initial_parameters(
            parameters_of=lambda got: got[0], initial=start
        ),
        _slips.ignores_learning_rate(position=3, other=0.05),
    )


CASES = CaseSet(
    ASSIGNMENT,
    {
        "two_layer_model": Case(
            "two_layer_model",
            _two_layer_model,
            arg_names=_MODEL_ARGS,
            output_name="(parameters, costs)",
            m=8,
            diagnoses=_model_slips(_two_layer_start),
        ),
        "L_layer_model": Case(
            "L_layer_model",
            _L_layer_model,
            arg_names=_MODEL_ARGS,
            output_name="(parameters, costs)",
            m=8,
            diagnoses=_model_slips(_deep_start),
        ),
        "predict": Case(
            "predict", _predict, arg_names=("X", "y", "parameters"), output_name="p"
        ),
    },
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected
