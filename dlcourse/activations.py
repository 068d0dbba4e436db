"""Activation functions given to students, as ``(value, cache)`` forward/backward pairs.

Each forward function returns ``(A, cache)`` where ``cache`` is the pre-activation
``Z``; the matching backward function takes the upstream gradient ``dA`` and that
cache and returns ``dZ = dA * g'(Z)``. Shapes follow the course notation:
``Z, A, dA, dZ`` all have shape ``(n_l, m)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
]


def _as_float_array(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    return array


def _check_same_shape(dA: np.ndarray, Z: np.ndarray) -> None:
    if dA.shape != Z.shape:
        raise ValueError(
            f"dA has shape {dA.shape}, expected {Z.shape} (the shape of the cached Z)"
        )


def sigmoid(Z):
    """Apply the logistic sigmoid element-wise.

    Computed piecewise so that large negative inputs do not overflow ``exp``.

    Args:
        Z: pre-activation, any shape, e.g. ``(n_l, m)``.

    Returns:
        A: ``1 / (1 + exp(-Z))``, same shape as ``Z``.
        cache: ``Z`` itself, for :func:`sigmoid_backward`.
    """
    Z = _as_float_array("Z", Z)
    A = np.empty(Z.shape, dtype=np.result_type(Z.dtype, np.float64))
    positive = Z >= 0
    A[positive] = 1.0 / (1.0 + np.exp(-Z[positive]))
    # For negative Z, exp(Z) is small and cannot overflow.
    exp_z = np.exp(Z[~positive])
    A[~positive] = exp_z / (1.0 + exp_z)
    return A, Z


def sigmoid_backward(dA, cache):
    """Backpropagate through a sigmoid unit.

    Args:
        dA: gradient of the cost with respect to the sigmoid output, shape ``(n_l, m)``.
        cache: the ``Z`` returned by :func:`sigmoid`, shape ``(n_l, m)``.

    Returns:
        dZ: ``dA * s * (1 - s)`` with ``s = sigmoid(Z)``, shape ``(n_l, m)``.

    Raises:
        ValueError: if ``dA`` and ``Z`` have different shapes.
    """
    dA = _as_float_array("dA", dA)
    Z = _as_float_array("cache (Z)", cache)
    _check_same_shape(dA, Z)
    s, _ = sigmoid(Z)
    return dA * s * (1.0 - s)


def relu(Z):
    """Apply the rectified linear unit ``max(0, Z)`` element-wise.

    Args:
        Z: pre-activation, any shape, e.g. ``(n_l, m)``.

    Returns:
        A: ``max(0, Z)``, same shape as ``Z``.
        cache: ``Z`` itself, for :func:`relu_backward`.
    """
    Z = _as_float_array("Z", Z)
    return np.maximum(Z, 0), Z


def relu_backward(dA, cache):
    """Backpropagate through a ReLU unit.

    The derivative at ``Z == 0`` is taken as 0 (any value in [0, 1] is a valid
    subgradient; 0 is the usual convention).

    Args:
        dA: gradient of the cost with respect to the ReLU output, shape ``(n_l, m)``.
        cache: the ``Z`` returned by :func:`relu`, shape ``(n_l, m)``.

    Returns:
        dZ: ``dA`` where ``Z > 0`` and 0 elsewhere, shape ``(n_l, m)``; a new array
        (``dA`` is never modified).

    Raises:
        ValueError: if ``dA`` and ``Z`` have different shapes.
    """
    dA = _as_float_array("dA", dA)
    Z = _as_float_array("cache (Z)", cache)
    _check_same_shape(dA, Z)
    return np.where(Z > 0, dA, 0.0)


def tanh(Z):
    """Apply the hyperbolic tangent element-wise.

    Args:
        Z: pre-activation, any shape, e.g. ``(n_l, m)``.

    Returns:
        A: ``tanh(Z)``, same shape as ``Z``.
        cache: ``Z`` itself, for :func:`tanh_backward`.
    """
    Z = _as_float_array("Z", Z)
    return np.tanh(Z), Z


def tanh_backward(dA, cache):
    """Backpropagate through a tanh unit.

    Args:
        dA: gradient of the cost with respect to the tanh output, shape ``(n_l, m)``.
        cache: the ``Z`` returned by :func:`tanh`, shape ``(n_l, m)``.

    Returns:
        dZ: ``dA * (1 - tanh(Z) ** 2)``, shape ``(n_l, m)``.

    Raises:
        ValueError: if ``dA`` and ``Z`` have different shapes.
    """
    dA = _as_float_array("dA", dA)
    Z = _as_float_array("cache (Z)", cache)
    _check_same_shape(dA, Z)
    return dA * (1.0 - np.tanh(Z) ** 2)
