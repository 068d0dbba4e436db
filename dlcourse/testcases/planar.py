"""Inputs of the visible checks of assignment 02 (one hidden layer, planar data).

Every case draws its arrays from ``np.random.default_rng`` with its own seed, so
the inputs never depend on (or disturb) numpy's global random state. The cache
given to ``backward_propagation`` is self-consistent (``A1 = tanh(Z1)``,
``A2 = sigmoid(Z2)``), so every correct way of writing the derivatives, from
``1 - A1**2`` to ``1 - np.tanh(Z1)**2``, gives the same numbers.
"""

from __future__ import annotations

import numpy as np

from dlcourse.activations import sigmoid

from . import Case, CaseSet, _slips

__all__ = ["ASSIGNMENT", "CASES", "check", "expected", "inputs"]

ASSIGNMENT = "02_one_hidden_layer"


def _parameters(rng, n_x: int, n_h: int, n_y: int, scale: float = 1.0) -> dict:
    """Random parameters: W1 (n_h, n_x), b1 (n_h, 1), W2 (n_y, n_h), b2 (n_y, 1)."""
    return {
        "W1": scale * rng.standard_normal((n_h, n_x)),
        "b1": scale * rng.standard_normal((n_h, 1)),
        "W2": scale * rng.standard_normal((n_y, n_h)),
        "b2": scale * rng.standard_normal((n_y, 1)),
    }


def _consistent_cache(X: np.ndarray, parameters: dict) -> dict:
    """The cache a correct forward pass produces: Z1, A1 (n_h, m), Z2, A2 (n_y, m)."""
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.tanh(Z1)
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2, _ = sigmoid(Z2)
    return {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def _layer_sizes():
    rng = np.random.default_rng(201)
    X = rng.standard_normal((5, 3))
    Y = rng.integers(0, 2, size=(2, 3))
    return (X, Y), {}


def _initialize_parameters():
    return (2, 4, 1), {}


def _forward_propagation():
    rng = np.random.default_rng(203)
    X = rng.standard_normal((2, 3))
    return (X, _parameters(rng, 2, 4, 1)), {}


def _compute_cost():
    rng = np.random.default_rng(204)
    A2, _ = sigmoid(rng.standard_normal((1, 3)))
    Y = np.array([[1, 0, 1]])
    return (A2, Y), {}


def _backward_propagation():
    rng = np.random.default_rng(205)
    X = rng.standard_normal((2, 3))
    Y = np.array([[1, 0, 1]])
    parameters = _parameters(rng, 2, 4, 1)
    return (parameters, _consistent_cache(X, parameters), X, Y), {}


def _update_parameters():
    rng = np.random.default_rng(206)
    parameters = _parameters(rng, 2, 4, 1)
    grads = {"d" + k: v for k, v in _parameters(rng, 2, 4, 1, scale=0.1).items()}
    return (parameters, grads), {}


def _nn_model():
    rng = np.random.default_rng(207)
    X = rng.standard_normal((2, 3))
    Y = np.array([[1, 0, 1]])
    # n_h = 4, num_iterations = 1000, print_cost = False
    return (X, Y, 4, 1000, False), {}


def _predict():
    rng = np.random.default_rng(209)
    X = rng.standard_normal((2, 8))
    # Small weights keep Z2 near 0, where thresholding A2 (not Z2) at 0.5 matters.
    return (_parameters(rng, 2, 4, 1, scale=0.5), X), {}


def _layer_sizes_read(args, got):
    X, Y = args
    return [
        ("n_x", got[0], X.shape[0], X.shape[1]),
        ("n_y", got[2], Y.shape[0], Y.shape[1]),
    ]


def _nn_model_start(args, kwargs, namespace):
    """The parameters nn_model starts from, by the student's initialize_parameters."""
    X, Y, n_h = args[:3]
    return namespace["initialize_parameters"](X.shape[0], n_h, Y.shape[0])


#: Arguments a graded function may legitimately update in place: the same rule
#: as in assignment 04 (see notebooks/00_start_here.ipynb).
MAY_MODIFY = {"update_parameters": ("parameters",)}

CASES = CaseSet(
    ASSIGNMENT,
    {
        "layer_sizes": Case(
            "layer_sizes",
            _layer_sizes,
            arg_names=("X", "Y"),
            output_name="(n_x, n_h, n_y)",
            diagnoses=(_slips.rows_versus_columns(sizes=_layer_sizes_read),),
        ),
        "initialize_parameters": Case(
            "initialize_parameters",
            _initialize_parameters,
            arg_names=("n_x", "n_h", "n_y"),
            output_name="parameters",
        ),
        "forward_propagation": Case(
            "forward_propagation",
            _forward_propagation,
            arg_names=("X", "parameters"),
            output_name="(A2, cache)",
            m=3,
            diagnoses=(
                _slips.sigmoid_in_hidden_layers(
                    lambda got: [(1, got[1]["Z1"], got[1]["A1"])]
                ),
            ),
        ),
        "compute_cost": Case(
            "compute_cost",
            _compute_cost,
            arg_names=("A2", "Y"),
            output_name="cost",
            m=3,
        ),
        "backward_propagation": Case(
            "backward_propagation",
            _backward_propagation,
            arg_names=("parameters", "cache", "X", "Y"),
            output_name="grads",
            m=3,
            diagnoses=(_slips.tanh_derivative_not_squared,),
        ),
        "update_parameters": Case(
            "update_parameters",
            _update_parameters,
            arg_names=("parameters", "grads"),
            output_name="parameters",
            diagnoses=(_slips.update_sign(learning_rate_at=2),),
        ),
        "nn_model": Case(
            "nn_model",
            _nn_model,
            arg_names=("X", "Y", "n_h", "num_iterations", "print_cost"),
            output_name="parameters",
            rtol=1e-6,
            diagnoses=(
                _slips.returns_initial_parameters(
                    parameters_of=lambda got: got, initial=_nn_model_start
                ),
            ),
        ),
        "predict": Case(
            "predict",
            _predict,
            arg_names=("parameters", "X"),
            output_name="predictions",
        ),
    },
    may_modify=MAY_MODIFY,
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected
