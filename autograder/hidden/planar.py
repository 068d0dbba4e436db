"""Hidden tests of assignment 02 (one hidden layer on planar data).

Each test compares the student's function with the reference on inputs the
student has not seen (other shapes and seeds), with self-consistent caches, and
replaces the earlier exercises a function calls by their correct versions, so a
bug costs the points of the function that has it. ``backward_propagation`` is
also checked against centred differences of the cost.
"""

from __future__ import annotations

import copy

import numpy as np

from dlcourse.activations import sigmoid
from dlcourse.checks import compare
from dlcourse.gradcheck import numerical_gradient_dict

from . import Grader, HiddenTestFailure, describe_inputs

__all__ = ["GRADER"]

GRADER = Grader("02_one_hidden_layer")

_PARAMETER_NAMES = ("W1", "b1", "W2", "b2")


def _parameters(rng, n_x, n_h, n_y, scale=1.0):
    return {
        "W1": scale * rng.standard_normal((n_h, n_x)),
        "b1": scale * rng.standard_normal((n_h, 1)),
        "W2": scale * rng.standard_normal((n_y, n_h)),
        "b2": scale * rng.standard_normal((n_y, 1)),
    }


def _labels(rng, n_y, m):
    Y = rng.integers(0, 2, size=(n_y, m))
    Y[0, 0], Y[0, -1] = 0, 1  # both classes present whatever the seed
    return Y


def _m_of_x(index):
    return lambda args: args[index].shape[1]


@GRADER.test("layer_sizes")
def _layer_sizes(namespace, reference):
    rng = np.random.default_rng(2001)
    inputs = [
        ((rng.standard_normal((n_x, m)), _labels(rng, n_y, m)), {})
        for n_x, n_y, m in [(2, 1, 7), (7, 3, 4), (1, 1, 2)]
    ]
    GRADER.compare(
        namespace,
        reference,
        "layer_sizes",
        inputs,
        arg_names=("X", "Y"),
        output_name="(n_x, n_h, n_y)",
    )


@GRADER.test("initialize_parameters")
def _initialize_parameters(namespace, reference):
    inputs = [((n_x, n_h, n_y), {}) for n_x, n_h, n_y in [(3, 5, 2), (1, 1, 1)]]
    GRADER.compare(
        namespace,
        reference,
        "initialize_parameters",
        inputs,
        arg_names=("n_x", "n_h", "n_y"),
        output_name="parameters",
    )


@GRADER.test("forward_propagation")
def _forward_propagation(namespace, reference):
    rng = np.random.default_rng(2003)
    inputs = []
    for n_x, n_h, n_y, m in [(3, 5, 1, 7), (2, 1, 1, 1), (4, 3, 2, 6)]:
        X = rng.standard_normal((n_x, m))
        inputs.append(((X, _parameters(rng, n_x, n_h, n_y)), {}))
    GRADER.compare(
        namespace,
        reference,
        "forward_propagation",
        inputs,
        arg_names=("X", "parameters"),
        output_name="(A2, cache)",
        m_of=_m_of_x(0),
    )


@GRADER.test("compute_cost")
def _compute_cost(namespace, reference):
    rng = np.random.default_rng(2004)
    inputs = []
    for m in (1, 9, 50):
        A2, _ = sigmoid(2.0 * rng.standard_normal((1, m)))
        inputs.append(((A2, rng.integers(0, 2, size=(1, m))), {}))
    GRADER.compare(
        namespace,
        reference,
        "compute_cost",
        inputs,
        arg_names=("A2", "Y"),
        output_name="cost",
        m_of=_m_of_x(1),
    )


def _backward_inputs(reference, rng, n_x, n_h, n_y, m):
    X = rng.standard_normal((n_x, m))
    Y = _labels(rng, n_y, m)
    parameters = _parameters(rng, n_x, n_h, n_y, scale=0.8)
    _, cache = reference["forward_propagation"](X, parameters)
    return parameters, cache, X, Y


@GRADER.test("backward_propagation")
def _backward_propagation(namespace, reference):
    rng = np.random.default_rng(2005)
    shapes = [(3, 4, 1, 6), (2, 1, 1, 1), (5, 3, 1, 9)]
    cases = [_backward_inputs(reference, rng, *shape) for shape in shapes]
    GRADER.compare(
        namespace,
        reference,
        "backward_propagation",
        [(case, {}) for case in cases],
        arg_names=("parameters", "cache", "X", "Y"),
        output_name="grads",
        m_of=_m_of_x(2),
    )
    # An independent oracle: centred differences of the reference cost.
    forward, cost = reference["forward_propagation"], reference["compute_cost"]
    for parameters, cache, X, Y in cases:
        where = describe_inputs((cache["A1"], X), ("A1", "X"))
        grads = namespace["backward_propagation"](
            copy.deepcopy(parameters), copy.deepcopy(cache), X.copy(), Y.copy()
        )
        params = copy.deepcopy(parameters)
        numerical = numerical_gradient_dict(
            lambda p, X=X, Y=Y: cost(forward(X, p)[0], Y), params
        )
        for name in _PARAMETER_NAMES:
            GRADER.assert_gradient(
                f"grads['d{name}']", grads["d" + name], numerical[name], where
            )


@GRADER.test("update_parameters")
def _update_parameters(namespace, reference):
    rng = np.random.default_rng(2006)
    inputs = []
    for (n_x, n_h, n_y), extra in [
        ((3, 5, 1), {}),
        ((2, 2, 2), {"learning_rate": 0.05}),
        ((4, 1, 1), {"learning_rate": 3.0}),
    ]:
        parameters = _parameters(rng, n_x, n_h, n_y)
        grads = {"d" + k: v for k, v in _parameters(rng, n_x, n_h, n_y).items()}
        inputs.append(((parameters, grads), extra))
    # One rule for the whole course (as in assignment 04): update_parameters may
    # write into the dict it is given, as long as it returns the updated one.
    student = namespace["update_parameters"]

    def update_parameters(parameters, grads, **kwargs):
        return student(copy.deepcopy(parameters), grads, **kwargs)

    GRADER.compare(
        {"update_parameters": update_parameters},
        reference,
        "update_parameters",
        inputs,
        arg_names=("parameters", "grads"),
        output_name="parameters",
    )


@GRADER.test("nn_model")
def _nn_model(namespace, reference):
    rng = np.random.default_rng(2007)
    inputs = []
    for n_x, n_h, m, iterations, extra in [
        (2, 3, 12, 40, {}),
        (3, 5, 8, 25, {"learning_rate": 0.5}),
    ]:
        X = rng.standard_normal((n_x, m))
        kwargs = {"num_iterations": iterations, **extra}
        inputs.append(((X, _labels(rng, 1, m), n_h), kwargs))
    GRADER.compare(
        namespace,
        reference,
        "nn_model",
        inputs,
        arg_names=("X", "Y", "n_h"),
        output_name="parameters",
    )
    # Printing the cost must not change the training.
    X = rng.standard_normal((2, 5))
    Y = _labels(rng, 1, 5)
    with GRADER.patched(namespace, "nn_model", reference):
        printed = namespace["nn_model"](X, Y, 2, num_iterations=3, print_cost=True)
    expected = reference["nn_model"](X, Y, 2, num_iterations=3)
    mismatch = compare(printed, expected, name="parameters", rtol=1e-6)
    if mismatch is not None:
        raise HiddenTestFailure(
            "nn_model with print_cost=True trains differently than with "
            f"print_cost=False: {mismatch}"
        )


@GRADER.test("predict")
def _predict(namespace, reference):
    rng = np.random.default_rng(2008)
    inputs = []
    for n_x, n_h, m in [(2, 4, 60), (3, 2, 40), (2, 1, 1)]:
        # Weights of 0.5 keep many outputs near the 0.5 threshold.
        parameters = _parameters(rng, n_x, n_h, 1, scale=0.5)
        inputs.append(((parameters, rng.standard_normal((n_x, m))), {}))
    GRADER.compare(
        namespace,
        reference,
        "predict",
        inputs,
        arg_names=("parameters", "X"),
        output_name="predictions",
    )
