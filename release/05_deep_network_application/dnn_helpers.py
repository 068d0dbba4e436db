"""Given helpers for assignment 05: a correct, fast forward and backward pass.

You wrote these functions yourself in assignment 04 ("Build a deep network step
by step"). Here they are given, frozen and tested, so that this assignment is about
*using* them: training a network on real pictures. A test of the course keeps them
in agreement with the reference solutions of assignment 04.

Two things differ from assignment 04, and both are explained in the notebook:

- ``initialize_parameters_deep`` scales each weight matrix by
  ``1 / sqrt(n_{l-1})`` instead of multiplying by 0.01. With 0.01 the deep cat
  network barely learns: its signal shrinks layer after layer.
- The backward functions can skip ``dA_prev`` of the first layer. Nothing uses
  the gradient with respect to the pixels, and it is the most expensive product
  of the whole backward pass (12288 x 209 numbers on the cat data).

Notation: ``X (n_x, m)``, ``Y (1, m)``, ``W{l} (n_l, n_{l-1})``, ``b{l} (n_l, 1)``,
``Z{l}, A{l} (n_l, m)``; linear cache ``(A_prev, W, b)``, layer cache
``(linear_cache, Z)``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from dlcourse.activations import relu, relu_backward, sigmoid, sigmoid_backward

__all__ = [
    "L_model_backward",
    "L_model_forward",
    "TrainingProgress",
    "compute_cost",
    "initialize_parameters",
    "initialize_parameters_deep",
    "linear_activation_backward",
    "linear_activation_forward",
    "linear_backward",
    "linear_forward",
    "update_parameters",
]

_ACTIVATIONS = {"relu": (relu, relu_backward), "sigmoid": (sigmoid, sigmoid_backward)}


def _activation(name: str):
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation must be 'relu' or 'sigmoid', got {name!r}"
        ) from None


def initialize_parameters(n_x: int, n_h: int, n_y: int) -> dict:
    """Initialise a two-layer network: small random weights, zero biases.

    Draws from numpy's global random generator (seed it first for repeatable
    numbers), ``W1`` before ``W2``.

    Args:
        n_x: size of the input layer.
        n_h: size of the hidden layer.
        n_y: size of the output layer.

    Returns:
        parameters: ``"W1"`` (n_h, n_x) and ``"W2"`` (n_y, n_h) drawn from
        ``randn * 0.01``; ``"b1"`` (n_h, 1) and ``"b2"`` (n_y, 1) zeros.
    """
    # The legacy global generator: the notebook seeds it, as the course always has.
    W1 = np.random.randn(n_h, n_x) * 0.01  # noqa: NPY002
    b1 = np.zeros((n_h, 1))
    W2 = np.random.randn(n_y, n_h) * 0.01  # noqa: NPY002
    b2 = np.zeros((n_y, 1))
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def initialize_parameters_deep(layer_dims) -> dict:
    """Initialise an L-layer network with weights scaled by ``1 / sqrt(n_{l-1})``.

    Draws from numpy's global random generator, ``W1`` first.

    Args:
        layer_dims: sizes ``[n_0, n_1, ..., n_L]`` of every layer, input first.

    Returns:
        parameters: for ``l = 1..L``, ``"W{l}"`` (n_l, n_{l-1}) drawn from
        ``randn / sqrt(n_{l-1})`` and ``"b{l}"`` (n_l, 1) zeros.

    Raises:
        ValueError: if fewer than two sizes are given.
    """
    layer_dims = [int(n) for n in layer_dims]
    if len(layer_dims) < 2:
        raise ValueError(
            f"layer_dims needs at least the input and output sizes, got {layer_dims}"
        )
    parameters = {}
    for layer in range(1, len(layer_dims)):
        n_prev = layer_dims[layer - 1]
        draws = np.random.randn(layer_dims[layer], n_prev)  # noqa: NPY002
        parameters[f"W{layer}"] = draws / np.sqrt(n_prev)
        parameters[f"b{layer}"] = np.zeros((layer_dims[layer], 1))
    return parameters


def linear_forward(A_prev, W, b):
    """Compute the linear part of a layer, ``Z = W A_prev + b``.

    Args:
        A_prev: activations of the previous layer, shape (n_{l-1}, m).
        W: weights, shape (n_l, n_{l-1}).
        b: biases, shape (n_l, 1).

    Returns:
        Z: shape (n_l, m).
        cache: ``(A_prev, W, b)`` for :func:`linear_backward`.
    """
    # (A_prev^T W^T)^T is W A_prev. For the first layer of the cat network
    # (W 20 x 12288, A_prev 12288 x 209) BLAS runs this orientation about 1.5
    # times faster than W @ A_prev.
    Z = (A_prev.T @ W.T).T + b
    return Z, (A_prev, W, b)


def linear_activation_forward(A_prev, W, b, activation: str):
    """Run one layer, LINEAR then ACTIVATION.

    Args:
        A_prev: activations of the previous layer, shape (n_{l-1}, m).
        W: weights, shape (n_l, n_{l-1}).
        b: biases, shape (n_l, 1).
        activation: ``"relu"`` or ``"sigmoid"``.

    Returns:
        A: activations of this layer, shape (n_l, m).
        cache: ``((A_prev, W, b), Z)`` for :func:`linear_activation_backward`.

    Raises:
        ValueError: for an unknown activation.
    """
    forward, _ = _activation(activation)
    Z, linear_cache = linear_forward(A_prev, W, b)
    A, _ = forward(Z)
    return A, (linear_cache, Z)


def L_model_forward(X, parameters: dict):
    """Run [LINEAR -> RELU] x (L-1) -> LINEAR -> SIGMOID on all examples.

    Args:
        X: inputs, shape (n_x, m).
        parameters: ``"W1", "b1", ..., "WL", "bL"``.

    Returns:
        AL: output probabilities, shape (1, m).
        caches: list of the L layer caches, layer 1 first.
    """
    L = len(parameters) // 2
    A, caches = X, []
    for layer in range(1, L + 1):
        activation = "sigmoid" if layer == L else "relu"
        A, cache = linear_activation_forward(
            A, parameters[f"W{layer}"], parameters[f"b{layer}"], activation
        )
        caches.append(cache)
    return A, caches


def compute_cost(AL, Y) -> float:
    """Return the cross-entropy cost ``-(1/m) sum(y log a + (1 - y) log(1 - a))``.

    Args:
        AL: output probabilities, shape (1, m).
        Y: labels 0 or 1, shape (1, m).

    Returns:
        cost: a Python float.
    """
    m = Y.shape[1]
    cost = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
    return float(cost)


def linear_backward(dZ, cache, *, need_dA_prev: bool = True):
    """Backpropagate through the linear part of a layer.

    Args:
        dZ: gradient of the cost with respect to Z, shape (n_l, m).
        cache: ``(A_prev, W, b)`` from :func:`linear_forward`.
        need_dA_prev: compute ``dA_prev``; pass False for the first layer, whose
            ``dA_prev`` (the gradient with respect to the inputs) nobody uses.

    Returns:
        dA_prev: ``W^T dZ``, shape (n_{l-1}, m), or None if not needed.
        dW: ``(1/m) dZ A_prev^T``, shape (n_l, n_{l-1}).
        db: ``(1/m)`` times the row sums of dZ, shape (n_l, 1).
    """
    A_prev, W, _ = cache
    m = A_prev.shape[1]
    # (A_prev (dZ / m)^T)^T is (1/m) dZ A_prev^T: scaling dZ (n_l x m) is cheaper
    # than scaling dW (n_l x 12288 in the first layer), and BLAS runs this
    # orientation fastest for the tall first-layer input.
    dW = (A_prev @ (dZ.T / m)).T
    db = np.sum(dZ, axis=1, keepdims=True) / m
    dA_prev = W.T @ dZ if need_dA_prev else None
    return dA_prev, dW, db


def linear_activation_backward(dA, cache, activation: str, *, need_dA_prev=True):
    """Backpropagate through one layer, ACTIVATION then LINEAR.

    Args:
        dA: gradient of the cost with respect to this layer's A, shape (n_l, m).
        cache: ``((A_prev, W, b), Z)`` from :func:`linear_activation_forward`.
        activation: ``"relu"`` or ``"sigmoid"``, as in the forward pass.
        need_dA_prev: compute ``dA_prev`` (False skips it for the first layer).

    Returns:
        dA_prev: shape (n_{l-1}, m), or None if not needed.
        dW: shape (n_l, n_{l-1}).
        db: shape (n_l, 1).

    Raises:
        ValueError: for an unknown activation.
    """
    _, backward = _activation(activation)
    linear_cache, Z = cache
    dZ = backward(dA, Z)
    return linear_backward(dZ, linear_cache, need_dA_prev=need_dA_prev)


def L_model_backward(AL, Y, caches, *, need_dA0: bool = False) -> dict:
    """Backpropagate through [LINEAR -> RELU] x (L-1) -> LINEAR -> SIGMOID.

    Args:
        AL: output probabilities from :func:`L_model_forward`, shape (1, m).
        Y: labels 0 or 1, shape (1, m).
        caches: the list of layer caches from :func:`L_model_forward`.
        need_dA0: also return ``"dA0"``, the gradient with respect to the
            inputs X; training never needs it, and it is the costliest product.

    Returns:
        grads: ``"dW{l}"``, ``"db{l}"`` for ``l = 1..L`` and ``"dA{l}"`` for
        ``l = 1..L-1`` (plus ``"dA0"`` if asked), each shaped like what it is
        the gradient of.
    """
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    dA = dAL
    for layer in range(L, 0, -1):
        need = layer > 1 or need_dA0
        activation = "sigmoid" if layer == L else "relu"
        dA_prev, dW, db = linear_activation_backward(
            dA, caches[layer - 1], activation, need_dA_prev=need
        )
        if need:
            grads[f"dA{layer - 1}"] = dA_prev
        grads[f"dW{layer}"] = dW
        grads[f"db{layer}"] = db
        dA = dA_prev
    return grads


def update_parameters(parameters: dict, grads: dict, learning_rate: float) -> dict:
    """Take one gradient-descent step; return new parameters.

    The arrays of ``parameters`` are not changed: keep what this returns
    (``parameters = update_parameters(parameters, grads, learning_rate)``).

    Args:
        parameters: ``"W1", "b1", ..., "WL", "bL"``.
        grads: ``"dW1", "db1", ..., "dWL", "dbL"`` (other keys are ignored).
        learning_rate: step size alpha.

    Returns:
        A new dict with ``theta - learning_rate * d theta`` for every parameter.
    """
    updated = {}
    for name, value in parameters.items():
        step = np.multiply(grads["d" + name], learning_rate)
        reusable = (
            isinstance(step, np.ndarray)
            and step.shape == np.shape(value)
            and step.dtype == np.result_type(value, step)
        )
        if reusable:
            # value - step written into step: one temporary array instead of two.
            updated[name] = np.subtract(value, step, out=step)
        else:
            updated[name] = value - step
    return updated


class TrainingProgress:
    """Count training iterations with a progress bar that shows the latest cost.

    Iterate over it like ``range(num_iterations)``; call :meth:`show_cost`
    whenever a new cost is known. The bar is a notebook widget in Jupyter and
    text on standard output elsewhere; it never writes to standard error, and it
    stays off while a notebook is being graded.

    Args:
        num_iterations: number of iterations.
        show: whether to show the bar at all.
    """

    def __init__(self, num_iterations: int, *, show: bool = True):
        from tqdm.auto import tqdm

        grading = bool(os.environ.get("NBGRADER_EXECUTION"))
        self._bar = tqdm(
            range(num_iterations),
            desc="training",
            unit="it",
            file=sys.stdout,
            disable=not show or grading,
            mininterval=0.5,
        )

    def __iter__(self):
        return iter(self._bar)

    def __len__(self) -> int:
        return len(self._bar)

    def show_cost(self, cost) -> None:
        """Display ``cost`` next to the bar."""
        self._bar.set_postfix(cost=f"{float(cost):.6f}", refresh=False)
