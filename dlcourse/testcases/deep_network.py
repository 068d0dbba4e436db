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

from collections.abc import Sequence

import numpy as np

from dlcourse.activations import relu, sigmoid

from . import Case, CaseSet, _slips

__all__ = ["ASSIGNMENT", "CASES", "check", "expected", "inputs"]

ASSIGNMENT = "04_deep_network_step_by_step"

#: Arguments a graded function may legitimately update in place.
MAY_MODIFY = {"update_parameters": ("parameters",)}

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


def _L_model_forward_1_layer():
    # The smallest network: no ReLU layer, one sigmoid unit on one input feature
    # (logistic regression). With one feature, a loop that runs one layer too far
    # (layer 1 as a ReLU layer, then again as the sigmoid layer) still fits the
    # shapes, so the slip gives numbers the check can explain instead of a crash.
    rng = np.random.RandomState(4)
    X = rng.randn(1, 3)
    W1 = rng.randn(1, 1)
    b1 = rng.randn(1, 1)
    return (X, {"W1": W1, "b1": b1}), {}


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


def _L_model_backward_1_layer():
    # The network of the forward starter case: the backward pass is the sigmoid
    # step alone. One input feature, so that a ReLU loop running one step too far
    # (over layer 0, reading caches[-1]) gives extra keys rather than a crash.
    (X, parameters), _ = _L_model_forward_1_layer()
    AL, caches = _forward_caches(X, [(parameters["W1"], parameters["b1"])])
    Y = np.array([[1, 0, 1]])
    return (AL, Y, caches), {}


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


def _hidden_layers(got):
    """``[(l, Z of layer l, A of layer l)]`` for the hidden layers of L_model_forward.

    Layer l's cache is ``((A_prev, W, b), Z)``; its A is the next layer's A_prev.
    """
    _, caches = got
    return [
        (layer, caches[layer - 1][1], caches[layer][0][0])
        for layer in range(1, len(caches))
    ]


def _number_of_layers(args) -> int:
    """L of ``L_model_forward(X, parameters)``: one W and one b per layer."""
    return len(args[1]) // 2


def _number_of_caches(args) -> int:
    """L of ``L_model_backward(AL, Y, caches)``: one cache per layer."""
    return len(args[2])


_LINEAR_BACKWARD_ARGS = ("dZ", "cache")
_LAYER_BACKWARD_ARGS = ("dA", "cache", "activation")
_MODEL_BACKWARD_ARGS = ("AL", "Y", "caches")

CASES = CaseSet(
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
            diagnoses=(
                _slips.missing_bias(A_at=0, W_at=1, b_at=2, Z_of=lambda got: got[0]),
            ),
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
        "L_model_forward_1_layer": Case(
            "L_model_forward",
            _L_model_forward_1_layer,
            arg_names=("X", "parameters"),
            output_name="(AL, caches)",
            diagnoses=(_slips.caches_per_layer(_number_of_layers),),
        ),
        "L_model_forward": Case(
            "L_model_forward",
            _L_model_forward,
            arg_names=("X", "parameters"),
            output_name="(AL, caches)",
            diagnoses=(
                _slips.sigmoid_in_hidden_layers(_hidden_layers),
                _slips.caches_per_layer(_number_of_layers),
            ),
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
        "L_model_backward_1_layer": Case(
            "L_model_backward",
            _L_model_backward_1_layer,
            arg_names=_MODEL_BACKWARD_ARGS,
            output_name="grads",
            m=3,
            diagnoses=(_slips.gradient_keys_per_layer(_number_of_caches),),
        ),
        "L_model_backward_2_layers": Case(
            "L_model_backward",
            _L_model_backward_2_layers,
            arg_names=_MODEL_BACKWARD_ARGS,
            output_name="grads",
            m=2,
            diagnoses=(_slips.gradient_keys_per_layer(_number_of_caches),),
        ),
        "L_model_backward_3_layers": Case(
            "L_model_backward",
            _L_model_backward_3_layers,
            arg_names=_MODEL_BACKWARD_ARGS,
            output_name="grads",
            m=4,
            diagnoses=(_slips.gradient_keys_per_layer(_number_of_caches),),
        ),
        "update_parameters": Case(
            "update_parameters",
            _update_parameters,
            arg_names=("parameters", "grads", "learning_rate"),
            output_name="parameters",
            diagnoses=(_slips.update_sign(learning_rate_at=2),),
        ),
    },
    may_modify=MAY_MODIFY,
)

inputs = CASES.inputs
check = CASES.check
expected = CASES.expected
