"""Inputs and visible checks of assignment 01, logistic regression on the cat pictures.

The inputs are small and drawn with ``np.random.RandomState(seed)``, so the
notebook's global random state is left alone. A function that calls earlier
exercises (``optimize`` calls ``propagate``, ``model`` calls ``optimize`` and
``predict``) is not failed for a bug in one of those: its check then says which
one to fix first, and under grading the hidden tests, which patch in correct
versions, decide (see :class:`~dlcourse.testcases.CaseSet`).

In a notebook::

    from dlcourse.testcases import logistic as tc
    tc.check("propagate", propagate)
"""

from __future__ import annotations

import numpy as np

from dlcourse.checks import CheckFailure

from . import Case, CaseSet, _slips

__all__ = [
    "ASSIGNMENT",
    "CASES",
    "check",
    "check_prepared_data",
    "expected",
    "inputs",
]

ASSIGNMENT = "01_logistic_regression"

#: Shapes of the prepared cat data: (num_px * num_px * 3, m).
PREPARED_SHAPES = {"train_x": (12288, 209), "test_x": (12288, 50)}


# --- input factories: each returns (args, kwargs) --------------------------------


def _prepare_images():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(3, 2, 2, 3)).astype(np.uint8)
    return (images,), {}


def _sigmoid():
    return (np.array([[-3.0, -0.5, 0.0], [0.5, 2.0, 7.0]]),), {}


def _initialize_with_zeros():
    return (3,), {}


def _logistic_problem(seed: int, n_x: int, m: int):
    rng = np.random.RandomState(seed)
    w = 0.5 * rng.randn(n_x, 1)
    b = 0.25
    X = rng.randn(n_x, m)
    Y = (rng.rand(1, m) > 0.5).astype(np.int64)
    Y[0, 0], Y[0, -1] = 1, 0  # both classes, whatever the seed
    return w, b, X, Y


def _propagate():
    return _logistic_problem(1, 3, 4), {}


def _optimize():
    w, b, X, Y = _logistic_problem(1, 3, 4)
    return (w, b, X, Y, 101, 0.1, False), {}


#: Column of the predict case whose z is exactly 0, so its probability is exactly
#: 0.5: the label must be 0 (``A > 0.5``), and ``A >= 0.5`` gets it wrong.
PREDICT_TIE = 6


def _predict():
    # Chosen so that some z = w^T x + b fall between 0 and 0.5: thresholding z
    # instead of sigmoid(z) at 0.5 gets those wrong. In the last column
    # 0.5 * -0.2 + 0.1 is exactly 0.0 in floating point.
    w = np.array([[0.5], [-1.0], [0.25]])
    b = 0.1
    X = np.array(
        [
            [1.0, 0.4, -2.0, 0.2, 3.0, -0.6, -0.2],
            [0.5, 0.1, 0.3, 0.2, 1.0, -0.8, 0.0],
            [-0.4, 0.6, 1.2, 0.8, 2.0, 0.0, 0.0],
        ]
    )
    return (w, b, X), {}


def _model():
    rng = np.random.RandomState(3)
    true_w = rng.randn(4, 1)
    X_train = rng.randn(4, 12)
    X_test = rng.randn(4, 6)
    # Labels from a noisy linear rule, so training has something to find.
    Y_train = ((true_w.T @ X_train + 0.5 * rng.randn(1, 12)) > 0).astype(np.int64)
    Y_test = ((true_w.T @ X_test + 0.5 * rng.randn(1, 6)) > 0).astype(np.int64)
    return (X_train, Y_train, X_test, Y_test), {
        "num_iterations": 201,
        "learning_rate": 0.05,
        "print_cost": False,
    }


_LOGISTIC_ARGS = ("w", "b", "X", "Y")

CASES = CaseSet(
    ASSIGNMENT,
    {
        "prepare_images": Case(
            "prepare_images",
            _prepare_images,
            arg_names=("images",),
            output_name="X",
            diagnoses=(_slips.mixed_pictures,),
        ),
        "sigmoid": Case("sigmoid", _sigmoid, arg_names=("z",), output_name="s"),
        "initialize_with_zeros": Case(
            "initialize_with_zeros",
            _initialize_with_zeros,
            arg_names=("dim",),
            output_name="(w, b)",
        ),
        "propagate": Case(
            "propagate",
            _propagate,
            arg_names=_LOGISTIC_ARGS,
            output_name="(grads, cost)",
            m=4,
        ),
        "optimize": Case(
            "optimize",
            _optimize,
            arg_names=_LOGISTIC_ARGS
            + ("num_iterations", "learning_rate", "print_cost"),
            output_name="(params, grads, costs)",
            m=4,
            diagnoses=(_slips.cost_goes_up(costs_of=lambda got: got[2]),),
        ),
        "predict": Case(
            "predict",
            _predict,
            arg_names=("w", "b", "X"),
            output_name="Y_prediction",
            diagnoses=(_slips.threshold_includes_half(label_at=(0, PREDICT_TIE)),),
        ),
        "model": Case(
            "model",
            _model,
            arg_names=("X_train", "Y_train", "X_test", "Y_test"),
            output_name="d",
        ),
    },
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected


def check_prepared_data(train_x, test_x) -> None:
    """Check the prepared cat data: one column per picture, values in [0, 1].

    Args:
        train_x: the flattened, scaled training pictures, expected (12288, 209).
        test_x: the same for the test pictures, expected (12288, 50).

    Raises:
        CheckFailure: naming the array and what is wrong with it.
    """
    for name, value in (("train_x", train_x), ("test_x", test_x)):
        want = PREPARED_SHAPES[name]
        if not isinstance(value, np.ndarray):
            raise CheckFailure(f"{name} should be a numpy array, got {type(value)}")
        if value.shape != want:
            hint = " (is it transposed?)" if value.shape == want[::-1] else ""
            raise CheckFailure(
                f"{name} has shape {value.shape}, expected {want}: "
                f"one column of num_px * num_px * 3 values per picture{hint}"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise CheckFailure(
                f"{name} has dtype {value.dtype}, expected floats: divide by 255."
            )
        low, high = float(value.min()), float(value.max())
        if low < 0.0 or high > 1.0:
            raise CheckFailure(
                f"{name} holds values from {low:g} to {high:g}, expected them "
                "between 0 and 1: divide the pixel values by 255"
            )
    print(f"train_x {train_x.shape} and test_x {test_x.shape}: shapes and range OK.")
