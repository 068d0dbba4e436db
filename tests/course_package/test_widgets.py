"""The computations behind the companion widgets and their wiring (no browser)."""

from __future__ import annotations

import base64
import warnings

import ipywidgets
import numpy as np
import pytest

from dlcourse import widgets as w
from dlcourse.data import DatasetError, load_cat_dataset
from dlcourse.gradcheck import numerical_gradient, numerical_gradient_dict, rel_error

# ------------------------------------------------------------------- activations

REFERENCE_ACTIVATIONS = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


@pytest.mark.parametrize("name", w.ACTIVATIONS)
def test_activation_values_match_their_definitions(name):
    x = np.linspace(-5, 5, 41)
    values, _ = w.activation_curves(name, x)
    np.testing.assert_allclose(values, REFERENCE_ACTIVATIONS[name](x), rtol=1e-12)


@pytest.mark.parametrize("name", w.ACTIVATIONS)
def test_activation_derivatives_match_centred_differences(name):
    x = np.linspace(-4.9, 4.9, 50)  # no point at the ReLU kink
    _, derivatives = w.activation_curves(name, x)
    # The functions act element-wise, so the gradient of their sum is g'(x).
    numerical = numerical_gradient(lambda v: w.activation_curves(name, v)[0].sum(), x)
    assert rel_error(derivatives, numerical) < 1e-7


def test_activation_curves_reject_an_unknown_name():
    with pytest.raises(ValueError, match="sigmoid, tanh, relu; got 'softplus'"):
        w.activation_curves("softplus", np.zeros(3))


# -------------------------------------------------------------- gradient descent


@pytest.mark.parametrize("surface", sorted(w.SURFACES))
def test_surface_gradients_match_centred_differences(surface):
    spec = w.SURFACES[surface]
    for point in ([0.7, -1.3], [-1.6, 0.4], [0.05, 2.0]):
        x = np.array(point)
        numerical = numerical_gradient(lambda v, s=spec: s.loss(v[0], v[1]), x)
        assert rel_error(spec.gradient(x), numerical) < 1e-7


def test_gradient_descent_on_the_quadratic_follows_the_closed_form():
    path, losses = w.gradient_descent_path(0.15, 12, start=(-4.0, 1.5))
    k = np.arange(13)
    # Each update multiplies w1 by (1 - lr) and w2 by (1 - 10 lr).
    np.testing.assert_allclose(path[:, 0], -4.0 * 0.85**k, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], 1.5 * (-0.5) ** k, rtol=1e-12)
    np.testing.assert_allclose(
        losses, 0.5 * (path[:, 0] ** 2 + 10 * path[:, 1] ** 2), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("learning_rate", "expected"),
    [
        (0.01, "converges"),
        (0.05, "converges"),
        (0.09, "converges"),
        (0.12, "oscillates"),
        (0.19, "oscillates"),
        (0.2, "oscillates"),  # w2 bounces between +1.5 and -1.5 for ever
        (0.21, "diverges"),
        (0.5, "diverges"),
    ],
)
@pytest.mark.parametrize("steps", [5, 30, 100])
def test_quadratic_runs_are_classified_by_learning_rate(learning_rate, expected, steps):
    path, losses = w.gradient_descent_path(learning_rate, steps)
    assert path.shape == (steps + 1, 2)
    assert losses.shape == (steps + 1,)
    assert w.classify_run(path, losses) == expected


def test_a_diverging_run_stops_before_overflow_and_pads_with_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path, losses = w.gradient_descent_path(0.5, 200)
    escaped = np.flatnonzero(np.isnan(losses))
    assert escaped.size > 0 and np.isnan(path[escaped[0] :]).all()
    assert np.isfinite(path[: escaped[0]]).all()


def test_the_double_well_minimum_reached_depends_on_the_start():
    def end(start):
        path, _ = w.gradient_descent_path(0.05, 200, start, surface="double_well")
        return path[-1]

    np.testing.assert_allclose(end((-0.3, 1.6)), [-1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(end((0.3, 1.6)), [1.0, 0.0], atol=1e-6)


def test_a_run_that_ends_higher_than_it_started_diverges():
    path = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0]])
    assert w.classify_run(path, [1.0, 0.5, 1.5]) == "diverges"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"learning_rate": 0.0, "steps": 3}, ValueError, "learning_rate must be > 0"),
        ({"learning_rate": 0.1, "steps": -1}, ValueError, "steps must be >= 0"),
        ({"learning_rate": 0.1, "steps": 2.5}, TypeError, "steps must be an integer"),
        (
            {"learning_rate": 0.1, "steps": 3, "start": (1.0, 2.0, 3.0)},
            ValueError,
            r"start has shape \(3,\), expected \(2,\)",
        ),
        (
            {"learning_rate": 0.1, "steps": 3, "surface": "saddle"},
            ValueError,
            "surface must be one of quadratic, double_well",
        ),
    ],
)
def test_gradient_descent_path_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        w.gradient_descent_path(**kwargs)


def test_classify_run_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected"):
        w.classify_run(np.zeros((4, 2)), np.zeros(3))


# ----------------------------------------------------------------- initialisation


def test_initial_parameters_match_the_course_draws_and_leave_numpy_alone():
    # The legacy global generator is what the assignments seed, so that is the
    # state that must survive.
    np.random.seed(123)  # noqa: NPY002
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    small = w._initial_parameters([6, 4, 1], "small", seed=1)
    scaled = w._initial_parameters([6, 4, 1], "scaled", seed=1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    legacy = np.random.RandomState(1)
    W1, W2 = legacy.randn(4, 6), legacy.randn(1, 4)
    np.testing.assert_array_equal(small["W1"], W1 * 0.01)
    np.testing.assert_array_equal(small["W2"], W2 * 0.01)
    np.testing.assert_allclose(scaled["W1"], W1 / np.sqrt(6), rtol=1e-15)
    np.testing.assert_allclose(scaled["W2"], W2 / np.sqrt(4), rtol=1e-15)
    assert {k: v.shape for k, v in small.items() if k.startswith("b")} == {
        "b1": (4, 1),
        "b2": (1, 1),
    }
    assert not any(small[k].any() for k in ("b1", "b2"))


def test_network_gradients_match_centred_differences():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 6))
    Y = (rng.random((1, 6)) > 0.5).astype(float)
    params = w._initial_parameters([4, 5, 3, 1], "scaled", seed=2)
    # Non-zero biases keep ReLU inputs away from the kink and test db too.
    params = {k: v + 0.1 if k.startswith("b") else v for k, v in params.items()}
    _, grads = w._cost_and_gradients(params, X, Y)
    numerical = numerical_gradient_dict(
        lambda p: w._cost_and_gradients(p, X, Y)[0], params
    )
    for key, value in numerical.items():
        assert rel_error(grads[f"d{key}"], value) < 1e-7, key


def test_the_cost_is_cross_entropy_even_when_the_sigmoid_saturates():
    ZL = np.array([[-800.0, 0.0, 3.0, 800.0]])
    Y = np.array([[0.0, 1.0, 1.0, 1.0]])
    AL = 1 / (1 + np.exp(-ZL[:, 1:3]))
    expected = (0.0 + -np.log(AL[0, 0]) + -np.log(AL[0, 1]) + 0.0) / 4
    assert w._cost_from_logits(ZL, Y) == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def synthetic_inputs(tmp_path_factory):
    """The stand-in photos (the dataset is looked for in an empty folder)."""
    X, Y, note = w.initialisation_inputs(data_dir=tmp_path_factory.mktemp("no-data"))
    return X, Y, note


@pytest.fixture(scope="module")
def cat_inputs():
    """The first 209 cat training photos, or skip when the dataset is absent."""
    try:
        load_cat_dataset()
    except DatasetError as exc:
        pytest.skip(f"cat dataset not available: {str(exc).splitlines()[0]}")
    X, Y, note = w.initialisation_inputs()
    assert note is None
    return X, Y


def test_without_the_dataset_the_stand_in_has_the_cat_shape_and_says_why(
    synthetic_inputs,
):
    X, Y, note = synthetic_inputs
    assert X.shape == (12288, 209) and Y.shape == (1, 209)
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert int(Y.sum()) == 72
    assert "not available" in note and "fetch-data" in note


def test_label_entropy_is_the_0_644_plateau_of_the_cat_training_set():
    Y = np.zeros((1, 209))
    Y[0, :72] = 1
    assert w.label_entropy(Y) == pytest.approx(0.644, abs=5e-4)
    assert w.label_entropy(np.ones((1, 5))) == 0.0


def _check_small_init_dies_out(stats):
    stds = [row["std"] for row in stats]
    assert [row["activation"] for row in stats] == ["relu", "relu", "relu", "sigmoid"]
    # Each ×0.01 layer shrinks the spread by orders of magnitude ...
    assert stds[0] > 10 * stds[1] > 100 * stds[2]
    assert stds[2] < 1e-3
    # ... so every photo gets the same output, sigmoid(≈0) = 0.5.
    assert stds[3] < 1e-5
    assert stats[3]["mean"] == pytest.approx(0.5, abs=1e-4)


def _check_scaled_init_keeps_the_signal(stats):
    assert all(row["std"] > 0.02 for row in stats)
    assert all(row["frac_zero"] < 0.8 for row in stats[:3])


@pytest.mark.parametrize("inputs", ["synthetic_inputs", "cat_inputs"])
def test_activations_shrink_layer_by_layer_with_small_init_only(inputs, request):
    X = request.getfixturevalue(inputs)[0]
    _check_small_init_dies_out(w.layer_activation_stats(w.CAT_LAYER_DIMS, "small", X))
    _check_scaled_init_keeps_the_signal(
        w.layer_activation_stats(w.CAT_LAYER_DIMS, "scaled", X)
    )


def test_on_the_cat_photos_small_init_stalls_and_scaled_init_learns(cat_inputs):
    X, Y = cat_inputs
    small = w.first_training_costs(w.CAT_LAYER_DIMS, "small", X, Y, steps=300)
    scaled = w.first_training_costs(w.CAT_LAYER_DIMS, "scaled", X, Y, steps=300)
    entropy = w.label_entropy(Y)
    assert entropy == pytest.approx(0.644, abs=5e-4)
    # ×0.01: starts at log 2 and creeps towards the "same guess for all" cost.
    assert small[0] == pytest.approx(np.log(2), abs=1e-5)
    assert np.all((small > entropy) & (small < np.log(2) + 1e-5))
    # Scaled: the course's printed costs, then below what ×0.01 can ever reach.
    assert scaled[0] == pytest.approx(0.771749, abs=1e-6)
    assert scaled[100] == pytest.approx(0.672053, abs=1e-6)
    assert scaled[200] == pytest.approx(0.648263, abs=1e-6)
    assert scaled[300] < entropy - 0.03


def test_on_the_stand_in_small_init_stays_flat_and_scaled_init_learns(
    synthetic_inputs,
):
    X, Y, _ = synthetic_inputs
    small = w.first_training_costs(w.CAT_LAYER_DIMS, "small", X, Y, steps=200)
    scaled = w.first_training_costs(w.CAT_LAYER_DIMS, "scaled", X, Y, steps=200)
    assert np.all((small > w.label_entropy(Y)) & (small < np.log(2) + 1e-5))
    assert scaled[-1] < 0.45


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([12288, 20, 1], "he"), "init must be one of small, scaled; got 'he'"),
        (([12288], "small"), "layer_dims must list at least two positive integers"),
        (([5, 0, 1], "small"), "layer_dims must list at least two positive integers"),
        (([10, 3, 1], "small"), r"X has shape \(12288, 4\), expected \(10, m\)"),
    ],
)
def test_layer_activation_stats_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        w.layer_activation_stats(*args, np.zeros((12288, 4)))


def test_first_training_costs_rejects_mismatched_labels():
    with pytest.raises(ValueError, match=r"Y has shape \(1, 3\), expected \(1, 4\)"):
        w.first_training_costs([3, 2, 1], "small", np.zeros((3, 4)), np.zeros((1, 3)))


# ----------------------------------------------------------------------- widgets


@pytest.fixture
def shown(monkeypatch):
    """Record every figure a widget shows instead of displaying it."""
    figures = []
    monkeypatch.setattr(w, "_show", lambda output, fig: figures.append(fig))
    return figures


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _controls(box):
    return {c.description: c for c in box.children[0].children}


def test_activation_explorer_redraws_when_the_slider_moves(shown):
    box = w.activation_explorer()
    assert isinstance(box, ipywidgets.VBox)
    assert isinstance(box.children[-1], ipywidgets.Output)
    controls = _controls(box)
    assert len(shown) == 1 and "at z = 0.50" in _titles(shown[0])[0]
    controls["z"].value = -2.0
    assert len(shown) == 2 and "at z = -2.00" in _titles(shown[1])[0]
    controls["g"].value = "relu"
    assert _titles(shown[2])[0].startswith("relu(z) = 0.000")


def test_gradient_descent_explorer_shows_each_regime(shown):
    controls = _controls(w.gradient_descent_explorer())
    assert _titles(shown[-1])[0].endswith("converges")
    controls["learning rate"].value = 0.15
    assert _titles(shown[-1])[0].endswith("oscillates")
    controls["learning rate"].value = 0.25
    assert _titles(shown[-1])[0].endswith("diverges")
    controls["surface"].value = "double_well"
    assert _titles(shown[-1])[0].startswith("L = (w1² - 1)² + w2²")


def test_initialisation_explorer_switches_scheme_and_range(shown, synthetic_inputs):
    X, Y, _ = synthetic_inputs
    box = w.initialisation_explorer(X[:, :20], Y[:, :20], max_steps=25)
    controls = _controls(box)
    table = box.children[1]
    assert controls["updates"].max == 25
    assert "after 25 updates" in _titles(shown[-1])[1]
    assert "randn × 0.01" in _titles(shown[-1])[1]
    small_table = table.value
    controls["init"].value = "scaled"
    assert "randn / √n[l-1]" in _titles(shown[-1])[1]
    assert table.value != small_table
    controls["updates"].value = 0
    assert "after 0 updates" in _titles(shown[-1])[1]


def test_a_widget_shows_its_figure_as_a_png_whatever_the_backend():
    box = w.activation_explorer()
    (shown,) = box.children[-1].outputs
    assert shown["output_type"] == "display_data"
    png = base64.b64decode(shown["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    _controls(box)["z"].value = 3.0
    assert (
        box.children[-1].outputs[0]["data"]["image/png"] != shown["data"]["image/png"]
    )


def test_initialisation_explorer_needs_labels_with_inputs():
    with pytest.raises(ValueError, match="Y is required"):
        w.initialisation_explorer(np.zeros((12288, 3)))
