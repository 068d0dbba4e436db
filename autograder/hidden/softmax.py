"""Hidden tests of assignment 03 (softmax, cross-entropy, softmax classifier).

Besides comparing with the reference on unseen shapes and seeds, the tests use
oracles that do not depend on the reference: scores near 1e4 must give finite
probabilities, a column of equal scores must give 1/C, two classes must agree
with the sigmoid model, and the gradients must match centred differences of the
cost with respect to the scores and to the parameters. Functions that call
earlier exercises run with correct versions of those, so a bug costs the points
of the function that has it.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from dlcourse.activations import sigmoid
from dlcourse.checks import compare
from dlcourse.gradcheck import numerical_gradient, numerical_gradient_dict

from . import Grader, HiddenTestFailure

__all__ = ["GRADER"]

GRADER = Grader("03_softmax")


def _labels(rng, C, m):
    y = rng.integers(0, C, size=(1, m))
    y[0, : min(C, m)] = np.arange(min(C, m))  # every class present when m >= C
    return y


def _one_hot(y, C):
    Y = np.zeros((C, y.shape[1]))
    Y[y[0], np.arange(y.shape[1])] = 1.0
    return Y


def _scores(rng, C, m, *, offset=0.0, scale=2.0):
    return offset + scale * rng.standard_normal((C, m))


def _m_of(index):
    return lambda args: args[index].shape[1]


def _call(namespace, reference, name, *args):
    """Run the student's ``name`` quietly, with correct versions of what it calls."""
    with (
        GRADER.patched(namespace, name, reference),
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
    ):
        warnings.simplefilter("ignore")
        return namespace[name](*copy.deepcopy(args))


def _require_close(got, expected, what: str, hint: str) -> None:
    mismatch = compare(got, expected, name=what, rtol=1e-6)
    if mismatch is not None:
        raise HiddenTestFailure(f"{mismatch}\n  Hint: {hint}")


def _logistic_cost(a, y):
    """Cross-entropy of the sigmoid model: a = P(class 1), y in {0, 1}."""
    return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))


def _compare(namespace, reference, name, inputs, **options):
    GRADER.compare(namespace, reference, name, inputs, **options)


@GRADER.test("softmax")
def _softmax(namespace, reference):
    rng = np.random.default_rng(3001)
    equal = _scores(rng, 4, 3)
    equal[:, 1] = -7.25
    inputs = [
        ((_scores(rng, 4, 7),), {}),
        ((_scores(rng, 3, 1),), {}),
        ((_scores(rng, 1, 5),), {}),
        ((_scores(rng, 5, 6, offset=1e4, scale=3.0),), {}),
        ((_scores(rng, 5, 6, offset=-1e4, scale=3.0),), {}),
        ((equal,), {}),
    ]
    # Explicit messages for the two properties first, then the full comparison.
    large = _scores(rng, 6, 4, offset=1e4, scale=3.0)
    A = np.asarray(_call(namespace, reference, "softmax", large))
    if A.shape == large.shape and not np.all(np.isfinite(A)):
        raise HiddenTestFailure(
            "softmax of scores near 1e4 (shape (6, 4)) contains nan or inf: "
            "exp overflows. Subtract each column's maximum before np.exp."
        )
    A = np.asarray(_call(namespace, reference, "softmax", equal))
    if A.shape == equal.shape:
        _require_close(
            A[:, 1],
            np.full(4, 0.25),
            "softmax(Z)[:, 1]",
            "a column of 4 equal scores must give probability 1/4 for every class",
        )
    _compare(namespace, reference, "softmax", inputs, arg_names=("Z",), output_name="A")
    # Two classes: the softmax is the sigmoid of the score difference.
    Z = _scores(rng, 2, 9)
    A = np.asarray(_call(namespace, reference, "softmax", Z))
    _require_close(
        A[1],
        sigmoid(Z[1] - Z[0])[0],
        "softmax(Z)[1] for C = 2",
        "with two classes, softmax(Z)[1] must equal sigmoid(Z[1] - Z[0])",
    )


# (C, m, offset) of the scores the costs and their gradients are tested on: one
# example, ten classes, and scores near 1000 that overflow a naive exp.
_LABELLED_SHAPES = [(4, 9, 0.0), (3, 1, 0.0), (10, 25, 0.0), (5, 6, 1000.0)]


def _labelled(y, C: int, one_hot: bool):
    """Labels as the function under test takes them: integers or one-hot."""
    return _one_hot(y, C) if one_hot else y


def _labelled_scores(rng, *, one_hot: bool) -> list:
    """``((Z, labels), {})`` inputs on every shape of ``_LABELLED_SHAPES``."""
    inputs = []
    for C, m, offset in _LABELLED_SHAPES:
        Z, y = _scores(rng, C, m, offset=offset), _labels(rng, C, m)
        inputs.append(((Z, _labelled(y, C, one_hot)), {}))
    return inputs


def _cost_test(namespace, reference, name: str, *, one_hot: bool, seed: int):
    """A cross-entropy cost, integer or one-hot labels: reference and C = 2."""
    rng = np.random.default_rng(seed)
    inputs = _labelled_scores(rng, one_hot=one_hot)
    # A column of equal scores: every class has probability 1/C.
    inputs.append(
        ((np.full((4, 3), 2.5), _labelled(_labels(rng, 4, 3), 4, one_hot)), {})
    )
    _compare(
        namespace,
        reference,
        name,
        inputs,
        arg_names=("Z", "Y" if one_hot else "y"),
        output_name="cost",
        m_of=_m_of(1),
    )
    # Two classes: the cost of logistic regression on the score difference.
    Z, y = _scores(rng, 2, 11), _labels(rng, 2, 11)
    a, _ = sigmoid(Z[1] - Z[0])
    _require_close(
        _call(namespace, reference, name, Z, _labelled(y, 2, one_hot)),
        _logistic_cost(a, y[0]),
        "cost for C = 2",
        "with two classes the cost must equal the logistic-regression cost",
    )


def _gradient_test(namespace, reference, name: str, *, one_hot: bool, seed: int):
    """dZ, integer or one-hot labels: reference and centred differences.

    In the course's convention dZ holds each example's own gradient (no 1/m), so
    m times the numerical gradient of the averaged cost is what it must match.
    """
    rng = np.random.default_rng(seed)
    _compare(
        namespace,
        reference,
        name,
        _labelled_scores(rng, one_hot=one_hot),
        arg_names=("Z", "Y" if one_hot else "y"),
        output_name="dZ",
        m_of=_m_of(1),
    )
    cost = reference["cross_entropy"]
    for C, m in [(3, 4), (5, 2), (2, 6)]:
        Z, y = _scores(rng, C, m), _labels(rng, C, m)
        dZ = _call(namespace, reference, name, Z, _labelled(y, C, one_hot))
        numerical = m * numerical_gradient(lambda Z, y=y: cost(Z, y), Z.copy())
        GRADER.assert_gradient("dZ", dZ, numerical, f"Z ({C}, {m})")


@GRADER.test("cross_entropy")
def _cross_entropy(namespace, reference):
    _cost_test(namespace, reference, "cross_entropy", one_hot=False, seed=3002)


@GRADER.test("cross_entropy_one_hot")
def _cross_entropy_one_hot(namespace, reference):
    _cost_test(namespace, reference, "cross_entropy_one_hot", one_hot=True, seed=3003)


@GRADER.test("delta_cross_entropy")
def _delta_cross_entropy(namespace, reference):
    _gradient_test(
        namespace, reference, "delta_cross_entropy", one_hot=False, seed=3006
    )


@GRADER.test("delta_cross_entropy_one_hot")
def _delta_cross_entropy_one_hot(namespace, reference):
    _gradient_test(
        namespace, reference, "delta_cross_entropy_one_hot", one_hot=True, seed=3007
    )


@GRADER.test("initialize_softmax")
def _initialize_softmax(namespace, reference):
    inputs = [((n_x, C), {}) for n_x, C in [(5, 3), (1, 2), (64, 10)]]
    _compare(
        namespace,
        reference,
        "initialize_softmax",
        inputs,
        arg_names=("n_x", "C"),
        output_name="parameters",
    )


def _problem(rng, n_x, C, m):
    X = rng.standard_normal((n_x, m))
    parameters = {
        "W1": rng.standard_normal((C, n_x)),
        "b1": rng.standard_normal((C, 1)),
    }
    return X, _labels(rng, C, m), parameters


@GRADER.test("softmax_forward")
def _softmax_forward(namespace, reference):
    rng = np.random.default_rng(3008)
    inputs = []
    for n_x, C, m in [(3, 4, 7), (1, 2, 1), (6, 10, 5)]:
        X, _, parameters = _problem(rng, n_x, C, m)
        inputs.append(((X, parameters), {}))
    _compare(
        namespace,
        reference,
        "softmax_forward",
        inputs,
        arg_names=("X", "parameters"),
        output_name="(A, cache)",
        m_of=_m_of(0),
    )


@GRADER.test("softmax_backward")
def _softmax_backward(namespace, reference):
    rng = np.random.default_rng(3009)
    cost = reference["cross_entropy"]
    cases = []
    for n_x, C, m in [(3, 4, 7), (2, 3, 1), (4, 2, 6)]:
        X, y, parameters = _problem(rng, n_x, C, m)
        _, cache = reference["softmax_forward"](X, parameters)
        cases.append((X, y, parameters, cache))
    _compare(
        namespace,
        reference,
        "softmax_backward",
        [((y, cache), {}) for _, y, _, cache in cases],
        arg_names=("y", "cache"),
        output_name="grads",
        m_of=lambda args: args[0].shape[1],
    )
    for X, y, parameters, cache in cases:
        where = f"X {X.shape}, W1 {parameters['W1'].shape}"
        grads = _call(namespace, reference, "softmax_backward", y, cache)
        params = copy.deepcopy(parameters)
        numerical = numerical_gradient_dict(
            lambda p, X=X, y=y: cost(p["W1"] @ X + p["b1"], y), params
        )
        for name in ("W1", "b1"):
            GRADER.assert_gradient(
                f"grads['d{name}']", grads["d" + name], numerical[name], where
            )
    # Two classes: the row of class 1 is the logistic-regression gradient of the
    # weight difference w = W1[1] - W1[0], and the row of class 0 its opposite.
    X, y, parameters = _problem(rng, 3, 2, 8)
    _, cache = reference["softmax_forward"](X, parameters)
    grads = _call(namespace, reference, "softmax_backward", y, cache)
    W1, b1 = parameters["W1"], parameters["b1"]
    a, _ = sigmoid((W1[1] - W1[0]) @ X + (b1[1] - b1[0]))
    dw = (X @ (a - y[0])) / X.shape[1]
    _require_close(
        np.asarray(grads["dW1"])[1],
        dw,
        "grads['dW1'][1] for C = 2",
        "with two classes, dW1[1] must equal the logistic-regression gradient "
        "(1/m) X (a - y)",
    )
    _require_close(
        np.asarray(grads["dW1"])[0],
        -dw,
        "grads['dW1'][0] for C = 2",
        "with two classes, dW1[0] must be the opposite of dW1[1]",
    )


@GRADER.test("train_softmax")
def _train_softmax(namespace, reference):
    rng = np.random.default_rng(3010)
    inputs = []
    for n_x, C, m, extra in [
        (3, 3, 10, {"num_iterations": 150}),
        (5, 4, 7, {"learning_rate": 1.0, "num_iterations": 301}),
        (2, 2, 4, {"learning_rate": 0.1, "num_iterations": 1}),
    ]:
        X, y, _ = _problem(rng, n_x, C, m)
        inputs.append(((X, y, C), extra))
    _compare(
        namespace,
        reference,
        "train_softmax",
        inputs,
        arg_names=("X", "y", "C"),
        output_name="(parameters, costs)",
    )


@GRADER.test("predict_softmax")
def _predict_softmax(namespace, reference):
    rng = np.random.default_rng(3011)
    inputs = []
    for n_x, C, m in [(3, 4, 30), (6, 10, 12), (2, 3, 1)]:
        X, _, parameters = _problem(rng, n_x, C, m)
        inputs.append(((parameters, X), {}))
    _compare(
        namespace,
        reference,
        "predict_softmax",
        inputs,
        arg_names=("parameters", "X"),
        output_name="predictions",
    )
