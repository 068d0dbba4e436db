"""How fast do assignment 05's given helpers train the L-layer cat network?

Trains [12288, 20, 7, 5, 1] on the 209 cat pictures (learning rate 0.0075, seed 1,
scaled initialisation) twice:

- with the helpers shipped in ``source/05_deep_network_application/dnn_helpers.py``;
- with a loop written the way the classic course code does it: caches kept in
  dicts, ``W @ A`` and ``dZ @ A_prev.T`` as written in the formulas, a copied
  ReLU gradient, and ``dA0 = W1^T dZ1`` computed every iteration although nothing
  uses it.

and compares both with the float64 GEMM floor measured now, on this machine: the
floating-point operations of the products training cannot avoid (forward
``W A_prev``, backward ``dZ A_prev^T``, and ``W^T dZ`` for layers 2..L), divided by
the rate of a large square float64 matrix product. Target: the shipped helpers
within 1.5 x that floor. For context it also times the same products at the
network's own (skinny) shapes. This is a measurement, not a test: it never fails,
and on a machine shared with other work its figures vary from run to run.

A third run is a study, not something shipped: the same helpers with the
first layer's two products in float32 (pictures stored as float32). It halves
the bytes read from the 20 MB input and so is the one change that beats the
float64 floor; the run prints what it does to the course's results, which is
why the shipped helpers stay float64.

Usage::

    DLCOURSE_DATA=/path/to/datasets python benchmarks/bench_deep_application.py
    python benchmarks/bench_deep_application.py --iterations 500   # quicker
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from dlcourse.data import load_cat_dataset

HELPERS = (
    Path(__file__).resolve().parent.parent
    / "source"
    / "05_deep_network_application"
    / "dnn_helpers.py"
)
LAYERS = [12288, 20, 7, 5, 1]
LEARNING_RATE = 0.0075
TARGET = 1.5


def load_helpers():
    """Import the shipped ``dnn_helpers.py`` as a module."""
    spec = importlib.util.spec_from_file_location("dnn_helpers", HELPERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_shipped(h, X, Y, iterations: int) -> tuple[dict, float]:
    """The L-layer loop students write, on the shipped helpers."""
    np.random.seed(1)  # noqa: NPY002 - the seed of the course's results
    parameters = h.initialize_parameters_deep(LAYERS)
    cost = float("nan")
    for _ in range(iterations):
        AL, caches = h.L_model_forward(X, parameters)
        cost = h.compute_cost(AL, Y)
        grads = h.L_model_backward(AL, Y, caches)
        parameters = h.update_parameters(parameters, grads, LEARNING_RATE)
    return parameters, cost


def float32_first_layer(h):
    """Return a copy of the helpers whose products with a float32 input run in float32.

    Only the first layer sees the float32 pictures; its gradients come back in
    float64, so parameters and later layers stay float64.
    """
    study = load_helpers()
    forward, backward = h.linear_forward, h.linear_backward

    def linear_forward(A_prev, W, b):
        if A_prev.dtype == np.float32:
            W = W.astype(np.float32)
        return forward(A_prev, W, b)

    def linear_backward(dZ, cache, *, need_dA_prev: bool = True):
        if cache[0].dtype != np.float32:
            return backward(dZ, cache, need_dA_prev=need_dA_prev)
        dA_prev, dW, db = backward(
            dZ.astype(np.float32), cache, need_dA_prev=need_dA_prev
        )
        return dA_prev, dW.astype(np.float64), db.astype(np.float64)

    study.linear_forward, study.linear_backward = linear_forward, linear_backward
    return study


def accuracy(h, parameters: dict, X, Y) -> float:
    """Fraction of pictures the network labels correctly."""
    AL, _ = h.L_model_forward(X, parameters)
    return float(np.mean((AL > 0.5) == Y))


def train_classic(X, Y, iterations: int) -> tuple[dict, float]:
    """The same training, written as the classic course code does it."""
    np.random.seed(1)  # noqa: NPY002 - the seed of the course's results
    L = len(LAYERS) - 1
    parameters = {}
    for layer in range(1, L + 1):
        draws = np.random.randn(LAYERS[layer], LAYERS[layer - 1])  # noqa: NPY002
        parameters[f"W{layer}"] = draws / np.sqrt(LAYERS[layer - 1])
        parameters[f"b{layer}"] = np.zeros((LAYERS[layer], 1))
    m = X.shape[1]
    cost = float("nan")
    for _ in range(iterations):
        caches = []
        A = X
        for layer in range(1, L + 1):
            W, b = parameters[f"W{layer}"], parameters[f"b{layer}"]
            Z = np.dot(W, A) + b
            caches.append({"A_prev": A, "W": W, "b": b, "Z": Z})
            A = 1 / (1 + np.exp(-Z)) if layer == L else np.maximum(0, Z)
        AL = A
        cost = float(-np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m)
        grads = {}
        dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
        for layer in range(L, 0, -1):
            cache = caches[layer - 1]
            if layer == L:
                s = 1 / (1 + np.exp(-cache["Z"]))
                dZ = dA * s * (1 - s)
            else:
                dZ = np.array(dA, copy=True)
                dZ[cache["Z"] <= 0] = 0
            grads[f"dW{layer}"] = np.dot(dZ, cache["A_prev"].T) / m
            grads[f"db{layer}"] = np.sum(dZ, axis=1, keepdims=True) / m
            dA = np.dot(cache["W"].T, dZ)  # for layer 1 this is dA0: never used
            grads[f"dA{layer - 1}"] = dA
        for layer in range(1, L + 1):
            parameters[f"W{layer}"] = (
                parameters[f"W{layer}"] - LEARNING_RATE * grads[f"dW{layer}"]
            )
            parameters[f"b{layer}"] = (
                parameters[f"b{layer}"] - LEARNING_RATE * grads[f"db{layer}"]
            )
    return parameters, cost


def required_flops(m: int, iterations: int) -> float:
    """Floating-point operations of the matrix products training cannot avoid."""
    per_iteration = 0.0
    for layer in range(1, len(LAYERS)):
        size = 2.0 * LAYERS[layer] * LAYERS[layer - 1] * m
        per_iteration += 2 * size  # forward W A_prev, backward dZ A_prev^T
        if layer > 1:
            per_iteration += size  # backward W^T dZ, needed below this layer
    return per_iteration * iterations


def dgemm_rate(n: int = 2000, repeats: int = 5) -> float:
    """Best observed float64 matrix-product rate, in FLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b  # warm up the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def same_shape_floor(X, iterations: int, repeats: int = 30) -> float:
    """Seconds the required products take at the shapes of this network.

    Times each product of one iteration (best of ``repeats``), in the orientation
    the shipped helpers use, on arrays of the network's shapes: for these skinny
    shapes BLAS stays well below its large-matrix rate.
    """
    rng = np.random.default_rng(1)
    m = X.shape[1]
    per_iteration = 0.0
    A = X
    for layer in range(1, len(LAYERS)):
        W = rng.standard_normal((LAYERS[layer], LAYERS[layer - 1]))
        dZ = rng.standard_normal((LAYERS[layer], m))
        products = [lambda A=A, W=W: A.T @ W.T, lambda A=A, dZ=dZ: A @ dZ.T]
        if layer > 1:
            products.append(lambda W=W, dZ=dZ: W.T @ dZ)
        for product in products:
            product()
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - start)
            per_iteration += best
        A = np.maximum(rng.standard_normal((LAYERS[layer], m)), 0)
    return per_iteration * iterations


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2500)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each loop; the best counts"
    )
    args = parser.parse_args(argv)

    train_x, train_y, test_x, test_y, _ = load_cat_dataset()
    m = train_x.shape[0]
    X = train_x.reshape(m, -1).T / 255.0
    X_test = test_x.reshape(test_x.shape[0], -1).T / 255.0
    helpers = load_helpers()
    study = float32_first_layer(helpers)

    rate_before = dgemm_rate()
    shipped = [timed(train_shipped, helpers, X, train_y, args.iterations)]
    classic = [timed(train_classic, X, train_y, args.iterations)]
    for _ in range(args.repeat - 1):
        shipped.append(timed(train_shipped, helpers, X, train_y, args.iterations))
        classic.append(timed(train_classic, X, train_y, args.iterations))
    study_time, (params_32, cost_32) = timed(
        train_shipped, study, X.astype(np.float32), train_y, args.iterations
    )
    rate = max(rate_before, dgemm_rate())
    shapes_floor = same_shape_floor(X, args.iterations)

    flops = required_flops(m, args.iterations)
    floor = flops / rate
    shipped_time = min(t for t, _ in shipped)
    classic_time = min(t for t, _ in classic)
    (params_a, cost_a), (params_b, cost_b) = shipped[0][1], classic[0][1]
    difference = max(
        float(np.max(np.abs(params_a[k] - params_b[k]) / (np.abs(params_b[k]) + 1e-12)))
        for k in params_b
    )

    print(f"L-layer cat network {LAYERS}, m = {m}, {args.iterations} iterations")
    print(
        f"float64 GEMM rate now: {rate / 1e9:.1f} GFLOP/s; required products: "
        f"{flops / 1e9:.1f} GFLOP"
    )
    print(f"GEMM floor:          {floor:7.2f} s")
    print(
        f"same products at the network's shapes: {shapes_floor:7.2f} s "
        f"({flops / shapes_floor / 1e9:.1f} GFLOP/s)"
    )
    print(
        f"shipped helpers:     {shipped_time:7.2f} s  = {shipped_time / floor:.2f} x "
        f"floor (target <= {TARGET} x)"
    )
    print(
        f"classic-style loop:  {classic_time:7.2f} s  = {classic_time / floor:.2f} x "
        f"floor ({classic_time / shipped_time:.2f} x the shipped helpers)"
    )
    print(
        f"final cost: shipped {cost_a:.12f}, classic {cost_b:.12f}; largest relative "
        f"parameter difference {difference:.1e}"
    )
    verdict = "within" if shipped_time <= TARGET * floor else "NOT within"
    print(f"shipped helpers are {verdict} {TARGET} x the GEMM floor")
    test_64 = accuracy(helpers, params_a, X_test, test_y)
    test_32 = accuracy(study, params_32, X_test.astype(np.float32), test_y)
    print(
        f"study, first layer in float32 (not shipped): {study_time:7.2f} s = "
        f"{study_time / floor:.2f} x floor; final cost {cost_32:.6f} "
        f"(float64: {cost_a:.6f}), test accuracy {100 * test_32:.0f} % "
        f"(float64: {100 * test_64:.0f} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
