"""Inputs of the visible checks of assignment 03 (softmax and multi-class training).

Scores ``Z`` have shape ``(C, m)``: one column of class scores per example.
Integer labels ``y`` have shape ``(1, m)`` with values ``0 .. C-1``; one-hot labels
``Y`` have shape ``(C, m)``. Every case draws from ``np.random.default_rng`` with
its own seed. The ``softmax`` case includes a column of large scores (naive
``exp`` overflows there) and a column of equal scores.
"""

from __future__ import annotations

import numpy as np

from . import Case, CaseSet

__all__ = ["ASSIGNMENT", "CASES", "check", "expected", "inputs"]

ASSIGNMENT = "03_softmax"


def _one_hot(y: np.ndarray, C: int) -> np.ndarray:
    """One-hot labels, shape (C, m), from integer labels of shape (1, m)."""
    Y = np.zeros((C, y.shape[1]))
    Y[y[0], np.arange(y.shape[1])] = 1.0
    return Y


def _scores_and_labels(seed: int, C: int = 3, m: int = 5):
    rng = np.random.default_rng(seed)
    Z = 2.0 * rng.standard_normal((C, m))
    y = rng.integers(0, C, size=(1, m))
    return Z, y


def _softmax():
    rng = np.random.default_rng(301)
    Z = rng.standard_normal((3, 4))
    Z[:, 2] = [1000.0, 1002.0, 1001.0]  # exp(1000) overflows float64
    Z[:, 3] = 0.5  # equal scores: equal probabilities
    return (Z,), {}


def _cross_entropy():
    return _scores_and_labels(302), {}


def _cross_entropy_one_hot():
    Z, y = _scores_and_labels(303)
    return (Z, _one_hot(y, 3)), {}


def _delta_cross_entropy():
    return _scores_and_labels(304), {}


def _delta_cross_entropy_one_hot():
    Z, y = _scores_and_labels(305)
    return (Z, _one_hot(y, 3)), {}


def _initialize_softmax():
    return (4, 3), {}


def _linear_problem(seed: int, n_x: int = 4, C: int = 3, m: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    y = rng.integers(0, C, size=(1, m))
    parameters = {
        "W1": rng.standard_normal((C, n_x)),
        "b1": rng.standard_normal((C, 1)),
    }
    return X, y, parameters


def _softmax_forward():
    X, _, parameters = _linear_problem(307)
    return (X, parameters), {}


def _softmax_backward():
    X, y, parameters = _linear_problem(308)
    W1, b1 = parameters["W1"], parameters["b1"]
    cache = ((X, W1, b1), W1 @ X + b1)
    return (y, cache), {}


def _train_softmax():
    X, y, _ = _linear_problem(309, m=6)
    # C = 3, learning_rate = 0.5, num_iterations = 250
    return (X, y, 3, 0.5, 250), {}


def _predict_softmax():
    X, _, parameters = _linear_problem(310, m=6)
    return (parameters, X), {}


CASES = CaseSet(
    ASSIGNMENT,
    {
        "softmax": Case("softmax", _softmax, arg_names=("Z",), output_name="A"),
        "cross_entropy": Case(
            "cross_entropy",
            _cross_entropy,
            arg_names=("Z", "y"),
            output_name="cost",
            m=5,
        ),
        "cross_entropy_one_hot": Case(
            "cross_entropy_one_hot",
            _cross_entropy_one_hot,
            arg_names=("Z", "Y"),
            output_name="cost",
            m=5,
        ),
        "delta_cross_entropy": Case(
            "delta_cross_entropy",
            _delta_cross_entropy,
            arg_names=("Z", "y"),
            output_name="dZ",
            m=5,
        ),
        "delta_cross_entropy_one_hot": Case(
            "delta_cross_entropy_one_hot",
            _delta_cross_entropy_one_hot,
            arg_names=("Z", "Y"),
            output_name="dZ",
            m=5,
        ),
        "initialize_softmax": Case(
            "initialize_softmax",
            _initialize_softmax,
            arg_names=("n_x", "C"),
            output_name="parameters",
        ),
        "softmax_forward": Case(
            "softmax_forward",
            _softmax_forward,
            arg_names=("X", "parameters"),
            output_name="(A, cache)",
            m=5,
        ),
        "softmax_backward": Case(
            "softmax_backward",
            _softmax_backward,
            arg_names=("y", "cache"),
            output_name="grads",
            m=5,
        ),
        "train_softmax": Case(
            "train_softmax",
            _train_softmax,
            arg_names=("X", "y", "C", "learning_rate", "num_iterations"),
            output_name="(parameters, costs)",
            rtol=1e-6,
        ),
        "predict_softmax": Case(
            "predict_softmax",
            _predict_softmax,
            arg_names=("parameters", "X"),
            output_name="predictions",
        ),
    },
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected
