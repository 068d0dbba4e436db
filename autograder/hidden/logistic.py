"""Hidden tests of assignment 01 (logistic regression on the cat pictures).

Each test compares the student's function with the reference on inputs the
student has not seen (other shapes, seeds, learning rates), replacing the earlier
exercises a function calls by their correct versions, so that a bug costs the
points of the function that has it. ``propagate`` is also checked against
centred differences of the cost, and ``model`` end to end on a slice of the real
cat data.
"""

from __future__ import annotations

import copy
from functools import cache

import numpy as np

from dlcourse.data import load_cat_dataset
from dlcourse.gradcheck import numerical_gradient

from . import Grader, describe_inputs

__all__ = ["GRADER"]

GRADER = Grader("01_logistic_regression")

_LOGISTIC_ARGS = ("w", "b", "X", "Y")


def _problem(rng, n_x: int, m: int, *, scale: float = 0.5):
    w = scale * rng.standard_normal((n_x, 1))
    b = float(scale * rng.standard_normal())
    X = rng.standard_normal((n_x, m))
    Y = rng.integers(0, 2, size=(1, m))
    Y[0, 0], Y[0, -1] = 0, 1  # both classes whatever the seed
    return w, b, X, Y


def _m_of_x(index: int):
    return lambda args: args[index].shape[1]


@cache
def _cat_slice(m_train: int, m_test: int):
    """The first pictures of the real data, prepared as in the notebook."""
    train_x, train_y, test_x, test_y, _ = load_cat_dataset()
    return (
        train_x[:m_train].reshape(m_train, -1).T / 255.0,
        train_y[:, :m_train],
        test_x[:m_test].reshape(m_test, -1).T / 255.0,
        test_y[:, :m_test],
    )


@GRADER.test("prepare_images")
def _prepare_images(namespace, reference):
    rng = np.random.default_rng(1001)
    inputs = [
        ((rng.integers(0, 256, size=shape).astype(np.uint8),), {})
        for shape in [(5, 4, 4, 3), (1, 3, 3, 3), (7, 2, 5, 3)]
    ]
    GRADER.compare(
        namespace,
        reference,
        "prepare_images",
        inputs,
        arg_names=("images",),
        output_name="X",
    )


@GRADER.test("sigmoid")
def _sigmoid(namespace, reference):
    rng = np.random.default_rng(1002)
    inputs = [
        ((np.array([[-30.0, -4.0, 0.0, 1e-3, 4.0, 30.0]]),), {}),
        ((5.0 * rng.standard_normal((3, 7)),), {}),
        ((rng.standard_normal(4),), {}),
        ((0.0,), {}),
    ]
    GRADER.compare(
        namespace, reference, "sigmoid", inputs, arg_names=("z",), output_name="s"
    )


@GRADER.test("initialize_with_zeros")
def _initialize_with_zeros(namespace, reference):
    inputs = [((dim,), {}) for dim in (1, 5, 12288)]
    GRADER.compare(
        namespace,
        reference,
        "initialize_with_zeros",
        inputs,
        arg_names=("dim",),
        output_name="(w, b)",
    )


@GRADER.test("propagate")
def _propagate(namespace, reference):
    rng = np.random.default_rng(1004)
    cases = [_problem(rng, n_x, m) for n_x, m in [(4, 7), (1, 3), (6, 12)]]
    GRADER.compare(
        namespace,
        reference,
        "propagate",
        [(case, {}) for case in cases],
        arg_names=_LOGISTIC_ARGS,
        output_name="(grads, cost)",
        m_of=_m_of_x(2),
    )
    # An independent oracle: centred differences of the reference cost.
    cost_of = reference["propagate"]
    for w, b, X, Y in cases:
        where = describe_inputs((w, b, X, Y), _LOGISTIC_ARGS)
        with GRADER.patched(namespace, "propagate", reference):
            grads, _ = namespace["propagate"](w.copy(), b, X.copy(), Y.copy())
        numerical_dw = numerical_gradient(
            lambda v, b=b, X=X, Y=Y: cost_of(v, b, X, Y)[1], w.copy()
        )
        numerical_db = numerical_gradient(
            lambda v, w=w, X=X, Y=Y: cost_of(w, float(v[0]), X, Y)[1], np.array([b])
        )
        GRADER.assert_gradient("grads['dw']", grads["dw"], numerical_dw, where)
        GRADER.assert_gradient(
            "grads['db']", np.reshape(grads["db"], (1,)), numerical_db, where
        )


@GRADER.test("optimize")
def _optimize(namespace, reference):
    rng = np.random.default_rng(1005)
    inputs = []
    for n_x, m, iterations, rate in [(3, 5, 7, 0.3), (5, 8, 150, 0.05), (1, 4, 1, 1.0)]:
        w, b, X, Y = _problem(rng, n_x, m)
        inputs.append(((w, b, X, Y, iterations, rate, False), {}))
    GRADER.compare(
        namespace,
        reference,
        "optimize",
        inputs,
        arg_names=_LOGISTIC_ARGS + ("num_iterations", "learning_rate", "print_cost"),
        output_name="(params, grads, costs)",
        m_of=_m_of_x(2),
    )


@GRADER.test("predict")
def _predict(namespace, reference):
    rng = np.random.default_rng(1006)
    inputs = []
    for n_x, m in [(6, 40), (1, 9), (3, 1)]:
        w, b, X, _ = _problem(rng, n_x, m, scale=0.3)
        inputs.append(((w, b, X), {}))
    GRADER.compare(
        namespace,
        reference,
        "predict",
        inputs,
        arg_names=("w", "b", "X"),
        output_name="Y_prediction",
    )


@GRADER.test("model")
def _model(namespace, reference):
    rng = np.random.default_rng(1007)
    inputs = []
    for n_x, m_train, m_test, iterations, rate in [
        (4, 10, 5, 120, 0.1),
        (2, 6, 3, 3, 0.5),
    ]:
        X_train = rng.standard_normal((n_x, m_train))
        X_test = rng.standard_normal((n_x, m_test))
        Y_train = rng.integers(0, 2, size=(1, m_train))
        Y_test = rng.integers(0, 2, size=(1, m_test))
        inputs.append(
            (
                (X_train, Y_train, X_test, Y_test),
                {"num_iterations": iterations, "learning_rate": rate},
            )
        )
    # End to end on 20 real training pictures and 10 test pictures.
    inputs.append(
        (
            copy.deepcopy(_cat_slice(20, 10)),
            {"num_iterations": 5, "learning_rate": 0.005},
        )
    )
    GRADER.compare(
        namespace,
        reference,
        "model",
        inputs,
        arg_names=("X_train", "Y_train", "X_test", "Y_test"),
        output_name="d",
    )
