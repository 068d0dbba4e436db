"""The activation helpers students are given: values, caches, and gradients."""

import numpy as np
import pytest

from dlcourse import activations as act
from dlcourse.gradcheck import numerical_gradient, rel_error

PAIRS = [
    (act.sigmoid, act.sigmoid_backward),
    (act.relu, act.relu_backward),
    (act.tanh, act.tanh_backward),
]


def test_sigmoid_values_and_cache():
    A, cache = act.sigmoid(np.array([[0.0, 2.0, -2.0]]))
    np.testing.assert_allclose(A, [[0.5, 0.88079708, 0.11920292]], rtol=1e-7)
    np.testing.assert_array_equal(cache, [[0.0, 2.0, -2.0]])


def test_sigmoid_does_not_overflow_on_large_inputs():
    with np.errstate(over="raise", invalid="raise"):
        A, _ = act.sigmoid(np.array([[-1000.0, 1000.0]]))
    np.testing.assert_array_equal(A, [[0.0, 1.0]])


def test_relu_values():
    A, cache = act.relu(np.array([[-1.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(A, [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(cache, [[-1.0, 0.0, 3.0]])


@pytest.mark.parametrize(("forward", "backward"), PAIRS)
def test_backward_matches_numerical_gradient(forward, backward):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4, 5))
    Z[np.abs(Z) < 1e-3] = 0.5  # keep away from the ReLU kink
    G = rng.standard_normal((4, 5))

    def loss(z):
        return float(np.sum(G * forward(z)[0]))

    numeric = numerical_gradient(loss, Z.copy())
    analytic = backward(G, forward(Z)[1])
    assert rel_error(analytic, numeric) < 1e-8


@pytest.mark.parametrize(("forward", "backward"), PAIRS)
def test_backward_leaves_its_inputs_alone(forward, backward):
    Z = np.array([[-1.0, 0.5], [2.0, -0.1]])
    dA = np.ones_like(Z)
    backward(dA, Z)
    np.testing.assert_array_equal(dA, np.ones_like(Z))
    np.testing.assert_array_equal(Z, [[-1.0, 0.5], [2.0, -0.1]])


def test_relu_backward_is_zero_at_the_kink():
    dZ = act.relu_backward(np.ones((1, 3)), np.array([[-1.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(dZ, [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize(("forward", "backward"), PAIRS)
def test_backward_rejects_mismatched_shapes(forward, backward):
    with pytest.raises(ValueError, match=r"dA has shape \(2, 3\), expected \(3, 2\)"):
        backward(np.ones((2, 3)), np.ones((3, 2)))


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="numeric"):
        act.relu(np.array(["a", "b"]))
