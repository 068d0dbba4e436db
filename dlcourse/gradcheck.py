"""Centred-difference gradient checking.

Backward functions are verified against an independent oracle: the numerical
derivative ``(f(x + h) - f(x - h)) / 2h`` taken one coordinate at a time, in
float64. For correct code on small random shapes the relative error is about
1e-9 or smaller; a missing ``1/m`` or a wrong sign gives errors near 1e-1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["numerical_gradient", "numerical_gradient_dict", "rel_error"]


def rel_error(x, y, *, eps: float = 1e-12) -> float:
    """Return the largest element-wise relative error between two arrays.

    Computes ``max |x - y| / max(|x| + |y|, eps)``; 0 means identical.

    Args:
        x: array of any shape.
        y: array of the same shape as ``x``.
        eps: floor for the denominator so that two zeros compare as equal.

    Returns:
        The relative error as a Python float.

    Raises:
        ValueError: if the shapes differ.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"cannot compare shapes {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), eps)))


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, *, h: float = 1e-5
) -> np.ndarray:
    """Estimate the gradient of a scalar function of one array by centred differences.

    ``x`` is perturbed in place one coordinate at a time and restored after each
    evaluation, so ``f`` may close over ``x`` (the usual way to check a gradient
    with respect to a parameter the function reads from elsewhere).

    Args:
        f: function of ``x`` returning a scalar (float, numpy scalar or 0-d array).
        x: float64 array of any shape, e.g. ``W (n_l, n_{l-1})``.
        h: step size.

    Returns:
        grad: array shaped like ``x`` with ``d f / d x`` at each coordinate.

    Raises:
        TypeError: if ``x`` is not a float64 array (a float32 check is too coarse
            to tell right from wrong).
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            "x must be a float64 numpy array, got "
            f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}"
        )
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        idx = it.multi_index
        original = x[idx]
        x[idx] = original + h
        f_plus = float(np.asarray(f(x)))
        x[idx] = original - h
        f_minus = float(np.asarray(f(x)))
        x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2.0 * h)
    return grad


def numerical_gradient_dict(
    f: Callable[[Mapping[str, np.ndarray]], float],
    params: Mapping[str, np.ndarray],
    *,
    keys=None,
    h: float = 1e-5,
) -> dict[str, np.ndarray]:
    """Estimate the gradient of a scalar function of a dict of arrays.

    Useful for whole-network checks: ``f(parameters)`` runs the forward pass and
    returns the cost; the result has one entry per parameter, ready to compare
    with the analytical ``grads`` (``"W1"`` here corresponds to ``"dW1"`` there).

    Args:
        f: function of the dict returning a scalar.
        params: dict of float64 arrays, e.g. ``{"W1": (n_1, n_0), "b1": (n_1, 1)}``;
            perturbed in place and restored.
        keys: which entries to differentiate (default: all of them).
        h: step size.

    Returns:
        dict mapping each key to an array shaped like ``params[key]``.
    """
    keys = list(params) if keys is None else list(keys)
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"keys {missing} are not in params (have {sorted(params)})")
    return {
        k: numerical_gradient(lambda _x, k=k: f(params), params[k], h=h) for k in keys
    }
