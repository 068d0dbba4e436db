"""Tests for dlcourse.plots: decision boundaries, cost curves and image grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlcourse import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _two_clusters(m=20):
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(-2, 0.5, (2, m // 2)), rng.normal(2, 0.5, (2, m // 2))])
    Y = np.repeat([[0, 1]], m // 2, axis=1)
    return X, Y


# ----------------------------------------------------------- decision boundary


def test_decision_boundary_evaluates_the_classifier_on_a_grid_around_the_data():
    X, Y = _two_clusters()
    seen = []

    def predict(points):
        seen.append(points)
        return (points[0:1] > 0).astype(int)

    ax = plots.plot_decision_boundary(predict, X, Y, title="two clusters")

    (points,) = seen
    assert points.shape[0] == 2, "predict_fn receives one point per column"
    assert points[0].min() < X[0].min() and points[0].max() > X[0].max()
    assert points[1].min() < X[1].min() and points[1].max() > X[1].max()
    assert ax.get_title() == "two clusters"
    scatter = [c for c in ax.collections if c.get_offsets().shape == (X.shape[1], 2)]
    assert scatter, "the data points are drawn on top of the regions"
    np.testing.assert_allclose(scatter[0].get_offsets(), X.T)


@pytest.mark.parametrize("shape", ["row", "flat", "bool"])
def test_decision_boundary_accepts_row_flat_or_boolean_predictions(shape):
    X, Y = _two_clusters()

    def predict(points):
        labels = points[0] > 0
        if shape == "row":
            return labels.astype(int).reshape(1, -1)
        if shape == "flat":
            return labels.astype(int)
        return labels.reshape(1, -1)

    ax = plots.plot_decision_boundary(predict, X, Y.ravel())
    assert ax.collections


def test_decision_boundary_draws_on_the_given_axes():
    X, Y = _two_clusters()
    fig, axes = plt.subplots(1, 2)
    returned = plots.plot_decision_boundary(
        lambda p: np.zeros((1, p.shape[1])), X, Y, ax=axes[1]
    )
    assert returned is axes[1]
    assert not axes[0].collections


def test_decision_boundary_rejects_points_that_are_not_2d_columns():
    X, Y = _two_clusters()
    with pytest.raises(ValueError, match=r"X has shape \(20, 2\), expected \(2, m\)"):
        plots.plot_decision_boundary(lambda p: p[0] > 0, X.T, Y)


def test_decision_boundary_rejects_labels_of_the_wrong_length():
    X, Y = _two_clusters()
    with pytest.raises(ValueError, match=r"Y has shape \(1, 19\), expected \(1, 20\)"):
        plots.plot_decision_boundary(lambda p: p[0] > 0, X, Y[:, 1:])


def test_decision_boundary_rejects_a_classifier_returning_the_wrong_number():
    X, Y = _two_clusters()
    with pytest.raises(ValueError, match="predict_fn's output"):
        plots.plot_decision_boundary(lambda p: np.zeros((1, 3)), X, Y)


# ------------------------------------------------------------------ cost curve


def test_cost_curve_places_each_cost_at_its_iteration():
    costs = [0.69, np.float64(0.5), np.array(0.4)]
    ax = plots.plot_costs(costs, learning_rate=0.005)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [0, 100, 200])
    np.testing.assert_allclose(line.get_ydata(), [0.69, 0.5, 0.4])
    assert "0.005" in ax.get_title()
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "cost"


def test_cost_curve_uses_the_recording_interval_and_given_axes():
    fig, ax = plt.subplots()
    returned = plots.plot_costs([3.0, 2.0, 1.0], ax=ax, every=50)
    assert returned is ax
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 50, 100])
    assert "learning rate" not in ax.get_title()


@pytest.mark.parametrize(
    ("costs", "every", "message"),
    [([], 100, "costs is empty"), ([1.0], 0, "every must be a positive integer")],
)
def test_cost_curve_rejects_bad_input(costs, every, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_costs(costs, every=every)


# ------------------------------------------------------------------ image grid


def test_image_grid_shows_each_image_with_its_title_and_hides_empty_cells():
    images = [np.full((8, 8), i, dtype=float) for i in range(7)]
    titles = [f"digit {i}" for i in range(7)]
    fig = plots.show_image_grid(images, titles, ncols=3, suptitle="seven")

    axes = fig.get_axes()
    assert len(axes) == 9, "3 columns x 3 rows"
    shown = [ax for ax in axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == titles
    assert all(not ax.axison for ax in axes), "no ticks or frames on images"
    np.testing.assert_array_equal(shown[4].get_images()[0].get_array(), images[4])
    assert fig._suptitle.get_text() == "seven"


def test_image_grid_accepts_colour_images_an_array_and_no_titles():
    images = np.random.default_rng(0).random((2, 4, 4, 3))
    fig = plots.show_image_grid(images, None)
    assert len(fig.get_axes()) == 2
    assert all(ax.get_title() == "" for ax in fig.get_axes())


@pytest.mark.parametrize(
    ("images", "titles", "ncols", "message"),
    [
        ([], [], 5, "no images"),
        ([np.zeros((2, 2))] * 2, ["one"], 5, "got 1 titles for 2 images"),
        ([np.zeros((2, 2))], ["a"], 0, "ncols must be a positive integer"),
        ([np.zeros((2, 2, 4))], ["a"], 5, r"image 0 has shape \(2, 2, 4\)"),
    ],
)
def test_image_grid_rejects_bad_input(images, titles, ncols, message):
    with pytest.raises(ValueError, match=message):
        plots.show_image_grid(images, titles, ncols=ncols)


# ------------------------------------------------------------------- diagrams


def _boxed_texts(ax):
    return [t.get_text() for t in ax.texts if t.get_bbox_patch() is not None]


def test_draw_diagram_draws_one_box_per_coloured_node_and_one_arrow_per_edge():
    nodes = {
        "a": (0, 0, "A", plots.DIAGRAM_COLOURS["forward"]),
        "b": (2, 0, "B", plots.DIAGRAM_COLOURS["stored"]),
        "c": (4, 0, "plain", None),
    }
    ax = plots.draw_diagram(
        nodes, [("a", "b", "x", False), ("b", "c", "", True)], size=(4, 2), title="t"
    )
    assert sorted(_boxed_texts(ax)) == ["A", "B"]
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
    assert len(arrows) == 2
    assert ax.get_title() == "t"


def test_draw_diagram_names_an_arrow_to_a_missing_node():
    with pytest.raises(KeyError, match="no node 'z'"):
        plots.draw_diagram({"a": (0, 0, "A", None)}, [("a", "z", "", False)],
                           size=(2, 2), title="")  # fmt: skip


def test_logistic_unit_shows_the_sum_the_sigmoid_and_the_loss():
    texts = " ".join(_boxed_texts(plots.draw_logistic_unit()))
    assert "w^T x + b" in texts and "sigma(z)" in texts and "mathcal{L}" in texts


@pytest.mark.parametrize(("n_x", "n_h"), [(2, 4), (3, 1)])
def test_one_hidden_layer_network_draws_every_unit(n_x, n_h):
    boxes = _boxed_texts(plots.draw_one_hidden_layer_network(n_x=n_x, n_h=n_h))
    assert sum("tanh" in t for t in boxes) == n_h
    assert sum(t.startswith("$x_") for t in boxes) == n_x


def test_one_hidden_layer_network_rejects_sizes_it_cannot_draw():
    with pytest.raises(ValueError, match="n_h = 0"):
        plots.draw_one_hidden_layer_network(n_h=0)
