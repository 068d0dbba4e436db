"""Centred-difference gradients and the relative-error measure."""

import numpy as np
import pytest

from dlcourse.gradcheck import numerical_gradient, numerical_gradient_dict, rel_error


def test_rel_error_is_zero_for_identical_and_large_for_different():
    x = np.array([1.0, -2.0, 3.0])
    assert rel_error(x, x) == 0.0
    assert rel_error(x, 2 * x) == pytest.approx(1 / 3)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_rel_error_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        rel_error(np.ones(2), np.ones(3))


def test_numerical_gradient_of_a_quadratic():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([0.5, -1.5])
    grad = numerical_gradient(lambda v: 0.5 * v @ A @ v, x)
    assert rel_error(grad, A @ x) < 1e-9
    np.testing.assert_array_equal(x, [0.5, -1.5])  # restored after perturbation


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: float(v.sum()), np.ones(3, dtype=np.float32))


def test_numerical_gradient_dict_of_a_linear_model():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 4))
    params = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal((2, 1))}
    G = rng.standard_normal((2, 4))

    def cost(p):
        return float(np.sum(G * (p["W"] @ X + p["b"])))

    grads = numerical_gradient_dict(cost, params)
    assert rel_error(grads["W"], G @ X.T) < 1e-9
    assert rel_error(grads["b"], G.sum(axis=1, keepdims=True)) < 1e-9


def test_numerical_gradient_dict_names_unknown_keys():
    with pytest.raises(KeyError, match="W9"):
        numerical_gradient_dict(lambda p: 0.0, {"W1": np.ones(2)}, keys=["W9"])
