"""Recognisers of typical slips, for the hints of the visible checks.

A generic comparison can only say that values differ. These functions look at
what a student's function returned (and at its inputs) and recognise one
specific slip each, for certain, from a relation the wrong output satisfies:
"``Z`` equals ``W A`` without the bias", "the parameters are still the initial
ones". Each has the signature of :attr:`dlcourse.testcases.Case.diagnoses`,
``diagnose(args, kwargs, got, fn) -> hint or None``, and is only called when
the check has already failed. None of them guesses from whole numbers: a slip on
integers (sizes, labels) is named only when the wrong value is exactly the one
the slip produces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

CLOSE = dict(rtol=1e-6, atol=1e-9)


def _close(a, b) -> bool:
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, **CLOSE))


def _sigmoid(Z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-Z))


def _argument(fn: Callable, args, kwargs, name: str, position: int):
    """The value of argument ``name``: given by position, by keyword, or default."""
    if name in kwargs:
        return kwargs[name]
    if len(args) > position:
        return args[position]
    return inspect.signature(fn).parameters[name].default


# ----------------------------------------------------------------- forward


def missing_bias(*, A_at: int, W_at: int, b_at: int, Z_of: Callable):
    """``Z`` (found in the output by ``Z_of``) equals ``W A`` with no ``+ b``."""

    def diagnose(args, kwargs, got, fn):
        A, W, b = args[A_at], args[W_at], args[b_at]
        if np.any(b != 0) and _close(Z_of(got), np.dot(W, A)):
            return (
                "Z equals np.dot(W, A) without the bias: is `+ b` missing? "
                "(b has shape (n, 1); numpy adds it to every column)"
            )
        return None

    return diagnose


def sigmoid_in_hidden_layers(diagnose_caches: Callable):
    """A hidden layer's activation is ``sigmoid(Z)`` instead of relu or tanh.

    Args:
        diagnose_caches: ``got -> [(layer, Z, A), ...]`` for the hidden layers,
            read from the output (the caches hold every layer's Z and A).
    """

    def diagnose(args, kwargs, got, fn):
        for layer, Z, A in diagnose_caches(got):
            if _close(A, _sigmoid(np.asarray(Z))):
                return (
                    f"layer {layer} is a hidden layer but its activation is "
                    "sigmoid(Z): only the output layer uses the sigmoid"
                )
        return None

    return diagnose


def caches_per_layer(number_of_layers: Callable):
    """``L_model_forward`` returned more or fewer caches than the network has layers.

    One cache too many is the loop over the ReLU layers running for ``l = L``
    too, so that layer L runs twice (as a ReLU layer, then as the sigmoid layer).

    Args:
        number_of_layers: ``args -> L``, read from the inputs.
    """

    def diagnose(args, kwargs, got, fn):
        L = number_of_layers(args)
        caches = got[1]
        if len(caches) > L:
            return (
                f"caches holds {len(caches)} caches for a network of L = {L} "
                f"layer{'s' if L != 1 else ''}: a layer ran more than once. The "
                "ReLU loop covers layers 1 to L - 1 only (range(1, L), which is "
                "empty when L = 1); layer L then runs once, with the sigmoid"
            )
        if len(caches) < L:
            return (
                f"caches holds {len(caches)} caches for a network of L = {L} "
                f"layer{'s' if L != 1 else ''}: append every layer's cache, the "
                "sigmoid layer's too"
            )
        return None

    return diagnose


# ---------------------------------------------------------------- backward


def gradient_keys_per_layer(number_of_layers: Callable):
    """``L_model_backward`` wrote keys of layers the network does not have.

    For ``L`` layers the keys are ``dA0 .. dA{L-1}``, ``dW1 .. dWL`` and
    ``db1 .. dbL``; a ``dW0`` (or a ``dA{L}``) means the loop over the ReLU
    layers ran one step too far (or started one step too early).

    Args:
        number_of_layers: ``args -> L``, read from the inputs.
    """

    def diagnose(args, kwargs, got, fn):
        if not isinstance(got, Mapping):
            return None
        L = number_of_layers(args)
        layers = range(1, L + 1)
        wanted = {f"{d}{k}" for d in ("dW", "db") for k in layers}
        wanted |= {f"dA{k - 1}" for k in layers}
        extra = sorted(str(key) for key in got if key not in wanted)
        if not extra:
            return None
        return (
            f"grads has keys {extra} that a network of L = {L} "
            f"layer{'s' if L != 1 else ''} does not have: the ReLU loop runs for "
            "l = L - 1 down to 1 (range(L - 1, 0, -1), which is empty when "
            "L = 1), after the sigmoid step of layer L"
        )

    return diagnose


def tanh_derivative_not_squared(args, kwargs, got, fn):
    """02 ``backward_propagation`` used ``1 - A1`` for the derivative of tanh."""
    parameters, cache, X, Y = args
    m = X.shape[1]
    dZ2 = cache["A2"] - Y
    dZ1 = np.dot(parameters["W2"].T, dZ2) * (1 - cache["A1"])
    if isinstance(got, Mapping) and _close(got.get("dW1"), np.dot(dZ1, X.T) / m):
        return (
            "dW1 is what the derivative 1 - A1 gives: the derivative of tanh is "
            "1 - tanh(z)**2, that is 1 - A1**2 (A1 squared)"
        )
    return None


# ------------------------------------------------------------------ update


def update_sign(*, learning_rate_at: int):
    """``update_parameters`` stepped up the gradient (``+`` instead of ``-``)."""

    def diagnose(args, kwargs, got, fn):
        parameters, grads = args[0], args[1]
        rate = _argument(fn, args, kwargs, "learning_rate", learning_rate_at)
        if not isinstance(got, Mapping) or not parameters:
            return None
        uphill = all(
            _close(got.get(key), value + rate * grads["d" + key])
            for key, value in parameters.items()
        )
        if uphill:
            return (
                "every parameter moved *up* its gradient: gradient descent steps "
                "against it, W = W - learning_rate * dW"
            )
        return None

    return diagnose


def cost_goes_up(*, costs_of: Callable):
    """The recorded costs rise: the step goes in the direction of the gradient."""

    def diagnose(args, kwargs, got, fn):
        costs = [float(c) for c in costs_of(got)]
        if len(costs) >= 2 and costs[-1] > costs[0]:
            return (
                f"the cost went up, from {costs[0]:.6f} to {costs[-1]:.6f}: is the "
                "update w = w + ... instead of w = w - learning_rate * dw?"
            )
        return None

    return diagnose


def returns_initial_parameters(*, parameters_of: Callable, initial: Callable):
    """The trained parameters are the initial ones: the update result was dropped.

    Args:
        parameters_of: ``got -> parameters dict``.
        initial: ``(args, kwargs, namespace) -> the initial parameters``, made
            with the student's own initialisation function.
    """

    def diagnose(args, kwargs, got, fn):
        start = initial(args, kwargs, getattr(fn, "__globals__", {}))
        trained = parameters_of(got)
        if isinstance(trained, Mapping) and set(trained) == set(start):
            if all(_close(trained[key], start[key]) for key in start):
                return (
                    "these are the initial parameters: training never changed "
                    "them. update_parameters returns the updated parameters; keep "
                    "its result: parameters = update_parameters(...)"
                )
        return None

    return diagnose


def ignores_learning_rate(*, position: int, other: float):
    """The output does not change when ``learning_rate`` does: it is hard-coded."""

    def diagnose(args, kwargs, got, fn):
        rate = _argument(fn, args, kwargs, "learning_rate", position)
        if np.isclose(rate, other):
            return None
        args, kwargs = list(args), dict(kwargs)
        if "learning_rate" in kwargs or len(args) <= position:
            kwargs["learning_rate"] = other
        else:
            args[position] = other
        again = fn(*args, **kwargs)
        if _same_output(again, got):
            return (
                f"training with learning_rate={other:g} instead of {rate:g} gives "
                "exactly the same result: is a learning rate written into the "
                "code instead of the argument learning_rate?"
            )
        return None

    return diagnose


def _same_output(a, b) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same_output(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(
            _same_output(x, y) for x, y in zip(a, b, strict=True)
        )
    return _close(a, b)


# ----------------------------------------------------------- shapes, labels


def rows_versus_columns(*, sizes: Callable):
    """A size was read from ``shape[1]`` (examples) instead of ``shape[0]``.

    Args:
        sizes: ``(args, got) -> [(name, got value, right value, wrong value)]``.
    """

    def diagnose(args, kwargs, got, fn):
        for name, value, right, wrong in sizes(args, got):
            if value != right and value == wrong:
                return (
                    f"{name} = {value} is the number of columns (examples): rows vs "
                    "columns (shape[0] vs shape[1])? A layer's size is the number "
                    "of rows"
                )
        return None

    return diagnose


def mixed_pictures(args, kwargs, got, fn):
    """01 ``prepare_images`` used ``reshape(-1, m)``, mixing pictures in a column."""
    images = args[0]
    m = images.shape[0]
    if _close(got, images.reshape(-1, m) / 255.0):
        return (
            "reshape(-1, m) has the right shape but fills each column with values "
            "of several pictures: use images.reshape(m, -1) (one row per picture), "
            "then .T"
        )
    return None


def threshold_includes_half(*, label_at: tuple[int, int]):
    """The probability at ``label_at`` is exactly 0.5; ``>=`` labels it 1."""

    def diagnose(args, kwargs, got, fn):
        if isinstance(got, np.ndarray) and got.ndim == 2 and got[label_at] == 1:
            return (
                f"the example in column {label_at[1]} has a probability of exactly "
                "0.5 and must get label 0: use `> 0.5`, not `>= 0.5`"
            )
        return None

    return diagnose
