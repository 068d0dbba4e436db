"""Hidden tests of assignment 05 (a deep network for the cat pictures).

Both models are compared with the reference, exactly (``rtol=1e-6``), on small
random problems of other sizes, depths and learning rates, and end to end on a
slice of the real cat data (20 pictures, 5 iterations): cheap enough for grading,
yet a model that skips a step, updates nothing or mixes up a layer differs.
The given helpers come from ``dnn_helpers.py``, which nbgrader copies over the
student's folder before grading, so they are always the correct ones.
"""

from __future__ import annotations

import contextlib
import copy
import io
from functools import cache

import numpy as np

from dlcourse.data import load_cat_dataset

from . import Grader

__all__ = ["GRADER"]

GRADER = Grader("05_deep_network_application")

_MODEL_ARGS = ("X", "Y", "layers_dims")


def _labels(rng, m: int):
    Y = rng.integers(0, 2, size=(1, m))
    Y[0, 0], Y[0, -1] = 0, 1  # both classes whatever the seed
    return Y


@cache
def _cat_slice(m: int):
    """The first ``m`` training pictures, prepared as in the notebook."""
    train_x, train_y, _, _, _ = load_cat_dataset()
    return train_x[:m].reshape(m, -1).T / 255.0, train_y[:, :m]


def _model_inputs(rng, shapes, real_dims):
    inputs = []
    for layers_dims, m, iterations, rate in shapes:
        X = rng.standard_normal((layers_dims[0], m))
        kwargs = {"learning_rate": rate, "num_iterations": iterations}
        inputs.append(((X, _labels(rng, m), layers_dims), kwargs))
    X, Y = _cat_slice(20)
    real = {"learning_rate": 0.0075, "num_iterations": 5}
    inputs.append(((copy.deepcopy(X), Y.copy(), real_dims), real))
    return inputs


@GRADER.test("two_layer_model")
def _two_layer_model(namespace, reference):
    rng = np.random.default_rng(5001)
    shapes = [
        ((6, 3, 1), 10, 101, 0.3),
        ((2, 5, 1), 7, 4, 1.0),
        ((4, 1, 1), 3, 2, 0.05),
    ]
    GRADER.compare(
        namespace,
        reference,
        "two_layer_model",
        _model_inputs(rng, shapes, (12288, 7, 1)),
        arg_names=_MODEL_ARGS,
        output_name="(parameters, costs)",
    )


@GRADER.test("L_layer_model")
def _L_layer_model(namespace, reference):
    rng = np.random.default_rng(5002)
    shapes = [
        ([6, 5, 4, 3, 1], 9, 101, 0.2),
        ([3, 1], 5, 4, 0.5),  # one layer: logistic regression
        ([4, 3, 1], 6, 3, 0.1),
    ]
    GRADER.compare(
        namespace,
        reference,
        "L_layer_model",
        _model_inputs(rng, shapes, [12288, 20, 7, 5, 1]),
        arg_names=_MODEL_ARGS,
        output_name="(parameters, costs)",
    )


@GRADER.test("predict")
def _predict(namespace, reference):
    rng = np.random.default_rng(5003)
    inputs = []
    for layers_dims, m, with_labels in [
        ([5, 4, 3, 1], 30, True),
        ([2, 1], 7, True),
        ([3, 6, 1], 1, False),
    ]:
        parameters = {}
        for layer in range(1, len(layers_dims)):
            parameters[f"W{layer}"] = rng.standard_normal(
                (layers_dims[layer], layers_dims[layer - 1])
            )
            parameters[f"b{layer}"] = 0.5 * rng.standard_normal((layers_dims[layer], 1))
        X = rng.standard_normal((layers_dims[0], m))
        y = _labels(rng, m) if with_labels else None
        inputs.append(((X, y, parameters), {}))
    # predict prints an accuracy: keep the graded cell's output to what matters.
    with contextlib.redirect_stdout(io.StringIO()):
        GRADER.compare(
            namespace,
            reference,
            "predict",
            inputs,
            arg_names=("X", "y", "parameters"),
            output_name="p",
        )
