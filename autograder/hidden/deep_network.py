"""Hidden tests of assignment 04, "Build a deep network step by step".

Every graded function is compared with the reference solution on inputs of other
shapes and seeds than the visible checks. Caches are consistent (``Z = W A_prev
+ b``, ``A = g(Z)``, ``AL = sigmoid(Z_L)``), so any mathematically equivalent
implementation passes, e.g. ``dZ = AL - Y`` at the output layer. A function that
calls earlier exercises runs with correct versions of them patched in. Each
backward function is also checked against centred differences, an oracle that
does not depend on the reference.

Gradient conventions (those of the seeds, stated in the notebook): ``dA`` and
``dZ`` are per-example gradients, i.e. gradients of ``m * J``; ``dW`` and ``db``
are gradients of the cost ``J``. For ``linear_backward`` with a given ``dZ`` the
role of ``m * J`` is played by ``f = sum(dZ * (W A_prev + b))``.

Measured relative errors (``dlcourse.gradcheck.rel_error``, float64, h = 1e-5)
on the inputs below, against ``GRADCHECK_THRESHOLD = 1e-6``:

- correct code: at most 6.3e-10 for ``linear_backward``, 6.5e-9 for
  ``linear_activation_backward`` and 5.1e-9 for ``L_model_backward``;
- a missing 1/m in ``dW``: 0.33 to 0.75 (it is ``(m - 1) / (m + 1)``); 1/m
  applied twice in ``L_model_backward``: 0.50 to 0.71;
- ReLU without its mask: 1.0 (on entries whose true gradient is 0).

``tests/test_assignment_04.py`` re-measures them and keeps the margins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from dlcourse.gradcheck import numerical_gradient

from . import Grader, HiddenTestFailure

__all__ = [
    "GRADER",
    "layer_backward_gradients",
    "linear_backward_gradients",
    "model_backward_gradients",
]

ASSIGNMENT = "04_deep_network_step_by_step"
GRADER = Grader(ASSIGNMENT)

#: ReLU pre-activations closer to 0 than this are redrawn, so that a finite
#: difference step (1e-5) never crosses the kink.
KINK_MARGIN = 1e-3

#: (n_prev, n, m) of the single-layer tests; m >= 2 so that a missing 1/m shows.
LAYER_SHAPES = ((5, 3, 7), (1, 1, 2), (4, 6, 3))

#: (layer_dims, m) of the whole-network tests; some hidden layers of equal width,
#: so that a wrong layer index gives wrong numbers rather than a shape error.
NETWORKS = (([4, 3, 1], 5), ([6, 5, 4, 1], 3), ([3, 4, 4, 2, 1], 6))

_LAYER_ARGS = ("A_prev", "W", "b", "activation")
_LAYER_BACKWARD_ARGS = ("dA", "cache", "activation")
_MODEL_BACKWARD_ARGS = ("AL", "Y", "caches")


def _sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))


def _relu(Z):
    return np.maximum(Z, 0.0)


_ACTIVATIONS = {"sigmoid": _sigmoid, "relu": _relu}


def _layer(rng: np.random.Generator, n_prev: int, n: int, m: int, activation: str):
    """Draw ``A_prev, W, b`` whose ReLU pre-activations avoid the kink."""
    while True:
        A_prev = rng.standard_normal((n_prev, m))
        W = rng.standard_normal((n, n_prev))
        b = rng.standard_normal((n, 1))
        Z = W @ A_prev + b
        if activation == "sigmoid" or np.min(np.abs(Z)) > KINK_MARGIN:
            return A_prev, W, b, Z


def _network(reference: Mapping, layer_dims, m: int, seed: int):
    """Draw ``X, Y, parameters`` whose ReLU pre-activations avoid the kink."""
    rng = np.random.default_rng(seed)
    while True:
        parameters = {}
        for layer in range(1, len(layer_dims)):
            n_prev, n = layer_dims[layer - 1], layer_dims[layer]
            W = rng.standard_normal((n, n_prev)) / np.sqrt(n_prev)
            parameters[f"W{layer}"] = W
            parameters[f"b{layer}"] = 0.5 * rng.standard_normal((n, 1))
        X = rng.standard_normal((layer_dims[0], m))
        _, caches = reference["L_model_forward"](X, parameters)
        hidden_Z = [Z for _, Z in caches[:-1]]
        if all(np.min(np.abs(Z)) > KINK_MARGIN for Z in hidden_Z):
            Y = rng.integers(0, 2, size=(1, m))
            return X, Y, parameters


def _call(fn: Callable, *args):
    """Call ``fn`` on copies, so that the inputs of a gradient check stay intact."""
    return fn(*copy.deepcopy(args))


# --- initialisation -------------------------------------------------------------


@GRADER.test("initialize_parameters")
def _initialize_parameters(namespace, reference):
    # Same seed as the visible check (given code), other sizes: the exact values,
    # the shapes, zero biases and the 0.01 scale all show in the comparison.
    GRADER.compare(
        namespace,
        reference,
        "initialize_parameters",
        [((3, 4, 1), {}), ((5, 2, 3), {}), ((1, 6, 2), {})],
        arg_names=("n_x", "n_h", "n_y"),
        output_name="parameters",
    )


@GRADER.test("initialize_parameters_deep")
def _initialize_parameters_deep(namespace, reference):
    GRADER.compare(
        namespace,
        reference,
        "initialize_parameters_deep",
        [(([3, 1],), {}), (([6, 5, 4, 1],), {}), (([2, 7, 3, 3, 1],), {})],
        arg_names=("layer_dims",),
        output_name="parameters",
    )


# --- forward pass ---------------------------------------------------------------


@GRADER.test("linear_forward")
def _linear_forward(namespace, reference):
    inputs = []
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=40):
        rng = np.random.default_rng(seed)
        A, W, b, _ = _layer(rng, n_prev, n, m, "sigmoid")
        inputs.append(((A, W, b), {}))
    GRADER.compare(
        namespace,
        reference,
        "linear_forward",
        inputs,
        arg_names=("A", "W", "b"),
        output_name="(Z, cache)",
    )


@GRADER.test("linear_activation_forward")
def _linear_activation_forward(namespace, reference):
    inputs = []
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=50):
        rng = np.random.default_rng(seed)
        for activation in ("sigmoid", "relu"):
            A_prev, W, b, _ = _layer(rng, n_prev, n, m, activation)
            inputs.append(((A_prev, W, b, activation), {}))
    GRADER.compare(
        namespace,
        reference,
        "linear_activation_forward",
        inputs,
        arg_names=_LAYER_ARGS,
        output_name="(A, cache)",
    )


@GRADER.test("L_model_forward")
def _L_model_forward(namespace, reference):
    inputs = []
    for seed, (layer_dims, m) in enumerate(NETWORKS, start=60):
        X, _, parameters = _network(reference, layer_dims, m, seed)
        inputs.append(((X, parameters), {}))
    GRADER.compare(
        namespace,
        reference,
        "L_model_forward",
        inputs,
        arg_names=("X", "parameters"),
        output_name="(AL, caches)",
    )


@GRADER.test("compute_cost")
def _compute_cost(namespace, reference):
    inputs = []
    for seed, m in enumerate((1, 4, 50), start=70):
        rng = np.random.default_rng(seed)
        AL = rng.uniform(0.05, 0.95, size=(1, m))
        Y = rng.integers(0, 2, size=(1, m))
        inputs.append(((AL, Y), {}))
        inputs.append(((AL, Y.astype(np.float64)), {}))
    GRADER.compare(
        namespace,
        reference,
        "compute_cost",
        inputs,
        arg_names=("AL", "Y"),
        output_name="cost",
        m_of=lambda args: args[1].shape[1],
    )


# --- backward pass --------------------------------------------------------------


def linear_backward_gradients(
    fn: Callable,
) -> Iterator[tuple[str, str, object, object]]:
    """Yield ``(where, label, analytical, numerical)`` for ``linear_backward``.

    Args:
        fn: an implementation of ``linear_backward(dZ, cache)``.
    """
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=80):
        rng = np.random.default_rng(seed)
        A_prev, W, b, _ = _layer(rng, n_prev, n, m, "sigmoid")
        dZ = rng.standard_normal((n, m))
        dA_prev, dW, db = _call(fn, dZ, (A_prev, W, b))

        def f(_x, A_prev=A_prev, W=W, b=b, dZ=dZ):
            return np.sum(dZ * (W @ A_prev + b))

        where = f"dZ {dZ.shape}, A_prev {A_prev.shape}"
        yield where, "dW", dW, numerical_gradient(f, W) / m
        yield where, "db", db, numerical_gradient(f, b) / m
        yield where, "dA_prev", dA_prev, numerical_gradient(f, A_prev)


def layer_backward_gradients(fn: Callable) -> Iterator[tuple[str, str, object, object]]:
    """Yield ``(where, label, analytical, numerical)`` for a layer's backward step.

    Args:
        fn: an implementation of ``linear_activation_backward(dA, cache, activation)``.
    """
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=90):
        rng = np.random.default_rng(seed)
        for activation, g in _ACTIVATIONS.items():
            A_prev, W, b, Z = _layer(rng, n_prev, n, m, activation)
            dA = rng.standard_normal((n, m))
            dA_prev, dW, db = _call(fn, dA, ((A_prev, W, b), Z), activation)

            def f(_x, A_prev=A_prev, W=W, b=b, dA=dA, g=g):
                return np.sum(dA * g(W @ A_prev + b))

            where = f"{activation}, dA {dA.shape}, A_prev {A_prev.shape}"
            yield where, "dW", dW, numerical_gradient(f, W) / m
            yield where, "db", db, numerical_gradient(f, b) / m
            yield where, "dA_prev", dA_prev, numerical_gradient(f, A_prev)


def model_backward_gradients(
    fn: Callable, reference: Mapping
) -> Iterator[tuple[str, str, object, object]]:
    """Yield ``(where, label, analytical, numerical)`` for ``L_model_backward``.

    The numerical gradients are those of the reference cost of the reference
    forward pass, with respect to every parameter and to the input ``X``.

    Args:
        fn: an implementation of ``L_model_backward(AL, Y, caches)``.
        reference: the reference namespace.
    """
    forward, cost = reference["L_model_forward"], reference["compute_cost"]
    for seed, (layer_dims, m) in enumerate(NETWORKS, start=100):
        X, Y, parameters = _network(reference, layer_dims, m, seed)
        AL, caches = forward(X, parameters)
        grads = _call(fn, AL, Y, caches)
        if not isinstance(grads, Mapping):
            raise HiddenTestFailure(
                f"L_model_backward returned {type(grads).__name__}, expected a dict"
            )

        def J(_x, X=X, Y=Y, parameters=parameters):
            return cost(forward(X, parameters)[0], Y)

        where = f"layer_dims {layer_dims}, m = {m}"
        for key in parameters:
            label = f"grads['d{key}']"
            yield (
                where,
                label,
                grads.get(f"d{key}"),
                numerical_gradient(J, parameters[key]),
            )
        yield where, "grads['dA0']", grads.get("dA0"), m * numerical_gradient(J, X)


def _assert_gradients(checks) -> None:
    for where, label, analytical, numerical in checks:
        GRADER.assert_gradient(label, analytical, numerical, where)


@GRADER.test("linear_backward")
def _linear_backward(namespace, reference):
    inputs = []
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=110):
        rng = np.random.default_rng(seed)
        A_prev, W, b, _ = _layer(rng, n_prev, n, m, "sigmoid")
        inputs.append(((rng.standard_normal((n, m)), (A_prev, W, b)), {}))
    GRADER.compare(
        namespace,
        reference,
        "linear_backward",
        inputs,
        arg_names=("dZ", "cache"),
        output_name="(dA_prev, dW, db)",
        m_of=lambda args: args[0].shape[1],
    )
    _assert_gradients(linear_backward_gradients(namespace["linear_backward"]))


@GRADER.test("linear_activation_backward")
def _linear_activation_backward(namespace, reference):
    inputs = []
    for seed, (n_prev, n, m) in enumerate(LAYER_SHAPES, start=120):
        rng = np.random.default_rng(seed)
        for activation in ("sigmoid", "relu"):
            A_prev, W, b, Z = _layer(rng, n_prev, n, m, activation)
            dA = rng.standard_normal((n, m))
            inputs.append(((dA, ((A_prev, W, b), Z), activation), {}))
    GRADER.compare(
        namespace,
        reference,
        "linear_activation_backward",
        inputs,
        arg_names=_LAYER_BACKWARD_ARGS,
        output_name="(dA_prev, dW, db)",
        m_of=lambda args: args[0].shape[1],
    )
    with GRADER.patched(namespace, "linear_activation_backward", reference):
        _assert_gradients(
            layer_backward_gradients(namespace["linear_activation_backward"])
        )


@GRADER.test("L_model_backward")
def _L_model_backward(namespace, reference):
    inputs = []
    for seed, (layer_dims, m) in enumerate(NETWORKS, start=130):
        X, Y, parameters = _network(reference, layer_dims, m, seed)
        AL, caches = reference["L_model_forward"](X, parameters)
        inputs.append(((AL, Y, caches), {}))
    GRADER.compare(
        namespace,
        reference,
        "L_model_backward",
        inputs,
        arg_names=_MODEL_BACKWARD_ARGS,
        output_name="grads",
        m_of=lambda args: args[0].shape[1],
    )
    with GRADER.patched(namespace, "L_model_backward", reference):
        _assert_gradients(
            model_backward_gradients(namespace["L_model_backward"], reference)
        )


# --- update ---------------------------------------------------------------------


def _accept_in_place(fn: Callable) -> Callable:
    """Give ``fn`` its own copy of ``parameters``: updating it in place is allowed."""

    def update_parameters(parameters, grads, learning_rate):
        return fn(copy.deepcopy(parameters), grads, learning_rate)

    return update_parameters


@GRADER.test("update_parameters")
def _update_parameters(namespace, reference):
    inputs = []
    for seed, (layer_dims, learning_rate) in enumerate(
        (([3, 1], 0.5), ([4, 5, 2, 1], 0.0075), ([2, 3, 3, 1], 1.3)), start=140
    ):
        rng = np.random.default_rng(seed)
        parameters, grads = {}, {}
        for layer in range(1, len(layer_dims)):
            n_prev, n = layer_dims[layer - 1], layer_dims[layer]
            parameters[f"W{layer}"] = rng.standard_normal((n, n_prev))
            parameters[f"b{layer}"] = rng.standard_normal((n, 1))
            grads[f"dA{layer - 1}"] = rng.standard_normal((n_prev, 4))
            grads[f"dW{layer}"] = rng.standard_normal((n, n_prev))
            grads[f"db{layer}"] = rng.standard_normal((n, 1))
        inputs.append(((parameters, grads, learning_rate), {}))
    student = _accept_in_place(namespace["update_parameters"])
    GRADER.compare(
        {"update_parameters": student},
        reference,
        "update_parameters",
        inputs,
        arg_names=("parameters", "grads", "learning_rate"),
        output_name="parameters",
    )
