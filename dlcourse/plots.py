"""Figures the notebooks share: decision boundaries, cost curves, image grids.

Each function draws on a matplotlib ``Axes`` (or ``Figure``) it is given or creates,
and returns it so that a notebook can add titles or save it. Nothing here calls
``plt.show()``: the notebook decides when a figure is displayed.

Shapes follow the course notation: data points are columns, ``X (2, m)`` for the
2-D toy problems and labels ``Y (1, m)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "DIAGRAM_COLOURS",
    "draw_diagram",
    "draw_logistic_unit",
    "draw_one_hidden_layer_network",
    "plot_costs",
    "plot_decision_boundary",
    "show_image_grid",
]

#: Box colours of the diagrams: forward steps, backward steps, stored values.
DIAGRAM_COLOURS = {"forward": "#d6e6f5", "backward": "#f6d8cf", "stored": "#ececec"}

# Points per side of the grid on which a classifier is evaluated: fine enough for
# a smooth boundary, small enough (250 x 250 = 62 500 points) to take milliseconds.
_GRID_SIZE = 250
# Margin around the data, as a fraction of its extent along each axis.
_MARGIN = 0.1


def _labels_row(name: str, values, m: int) -> np.ndarray:
    """Return ``values`` as a flat array of ``m`` labels, or raise ValueError."""
    array = np.asarray(values)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.size != m:
        raise ValueError(
            f"{name} has shape {np.shape(values)}, expected (1, {m}) or ({m},)"
        )
    return array


def plot_decision_boundary(predict_fn: Callable, X, Y, ax=None, title=None):
    """Shade the regions a 2-D classifier assigns to each class and show the data.

    Args:
        predict_fn: maps points of shape ``(2, k)`` (one point per column) to
            labels of shape ``(1, k)`` or ``(k,)``; e.g.
            ``lambda P: predict(parameters, P)``.
        X: data points, shape ``(2, m)``.
        Y: their labels, shape ``(1, m)`` or ``(m,)``; used to colour the points.
        ax: the ``Axes`` to draw on; a new figure is made if None.
        title: optional title of the axes.

    Returns:
        The ``Axes`` drawn on.

    Raises:
        ValueError: if ``X`` is not ``(2, m)``, ``Y`` does not hold ``m`` labels,
            or ``predict_fn`` does not return one label per point.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != 2:
        raise ValueError(
            f"X has shape {X.shape}, expected (2, m): one 2-D point per column"
        )
    m = X.shape[1]
    labels = _labels_row("Y", Y, m)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))

    lows, highs = X.min(axis=1), X.max(axis=1)
    pad = _MARGIN * np.maximum(highs - lows, 1e-9) + 0.5
    xs = np.linspace(lows[0] - pad[0], highs[0] + pad[0], _GRID_SIZE)
    ys = np.linspace(lows[1] - pad[1], highs[1] + pad[1], _GRID_SIZE)
    xx, yy = np.meshgrid(xs, ys)
    grid = np.vstack([xx.ravel(), yy.ravel()])
    predicted = _labels_row("predict_fn's output", predict_fn(grid), grid.shape[1])
    regions = predicted.astype(np.float64).reshape(xx.shape)

    # One colour band per class, so a constant prediction still draws a region.
    classes = np.union1d(np.unique(labels), np.unique(predicted)).astype(np.float64)
    edges = np.concatenate(
        [[classes[0] - 0.5], (classes[:-1] + classes[1:]) / 2, [classes[-1] + 0.5]]
    )
    cmap = plt.get_cmap("coolwarm" if classes.size <= 2 else "tab10")
    ax.contourf(xx, yy, regions, levels=edges, cmap=cmap, alpha=0.35)
    ax.scatter(
        X[0],
        X[1],
        c=labels.astype(np.float64),
        cmap=cmap,
        vmin=edges[0],
        vmax=edges[-1],
        s=14,
        edgecolors="k",
        linewidths=0.3,
    )
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_costs(costs: Sequence[float], learning_rate=None, ax=None, every=100):
    """Plot a cost curve recorded every ``every`` iterations.

    Args:
        costs: costs recorded at iterations ``0, every, 2 * every, ...``
            (floats, numpy scalars or 0-d arrays).
        learning_rate: shown in the title when given.
        ax: the ``Axes`` to draw on; a new figure is made if None.
        every: number of iterations between two recorded costs.

    Returns:
        The ``Axes`` drawn on.

    Raises:
        ValueError: if ``costs`` is empty or not one-dimensional, or ``every``
            is not a positive integer.
    """
    values = np.asarray([float(np.asarray(c)) for c in costs], dtype=np.float64)
    if values.size == 0:
        raise ValueError("costs is empty: record at least one cost to plot")
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    iterations = np.arange(values.size) * every
    ax.plot(iterations, values, marker="." if values.size <= 30 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost")
    if learning_rate is not None:
        ax.set_title(f"Cost during training (learning rate = {learning_rate:g})")
    else:
        ax.set_title("Cost during training")
    ax.grid(alpha=0.3)
    return ax


def show_image_grid(
    images,
    titles,
    ncols: int = 5,
    *,
    cmap: str | None = "gray",
    size: float = 2.0,
    suptitle: str | None = None,
):
    """Show images in a grid, each with its title (e.g. "true 3, predicted 8").

    Args:
        images: sequence (or array) of ``k`` images, each ``(h, w)`` (grey) or
            ``(h, w, 3)`` (colour, values in [0, 1] or uint8).
        titles: ``k`` strings, one per image, or None for no titles.
        ncols: images per row.
        cmap: colour map for grey images.
        size: width and height of each cell, in inches.
        suptitle: optional title above the grid.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: if there are no images, ``titles`` has the wrong length,
            ``ncols`` is not positive, or an image is not 2-D or ``(h, w, 3)``.
    """
    images = list(images)
    if not images:
        raise ValueError("no images to show")
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(images):
            raise ValueError(
                f"got {len(titles)} titles for {len(images)} images; give one each"
            )
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)):
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    for index, image in enumerate(images):
        shape = np.shape(image)
        if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)):
            raise ValueError(
                f"image {index} has shape {shape}, expected (h, w) or (h, w, 3)"
            )

    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = np.asarray(images[index])
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[index], fontsize=9)
    if suptitle is not None:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- diagrams


def _arrow_sides(start, end):
    """Anchor points (in box coordinates) for an arrow from ``start`` to ``end``."""
    (x0, y0), (x1, y1) = start, end
    if abs(x1 - x0) >= abs(y1 - y0):
        return ((1, 0.5), (0, 0.5)) if x1 > x0 else ((0, 0.5), (1, 0.5)), True
    return ((0.5, 0), (0.5, 1)) if y1 < y0 else ((0.5, 1), (0.5, 0)), False


def draw_diagram(nodes, arrows, *, size, title, ax=None):
    """Draw labelled boxes joined by arrows: the course's block diagrams.

    Args:
        nodes: ``{key: (x, y, text, colour)}``; a colour of None draws plain text
            without a box. Colours of :data:`DIAGRAM_COLOURS` keep figures alike.
        arrows: ``[(from_key, to_key, label, dashed), ...]``.
        size: figure size in inches, used when ``ax`` is None.
        title: the figure's title.
        ax: matplotlib Axes to draw on (a new figure if None).

    Returns:
        The Axes.

    Raises:
        KeyError: if an arrow names a node that is not in ``nodes``.
    """
    for start, end, *_ in arrows:
        for key in (start, end):
            if key not in nodes:
                raise KeyError(f"arrow {start!r} -> {end!r}: no node {key!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    boxes = {}
    for key, (x, y, text, colour) in nodes.items():
        frame = dict(boxstyle="round,pad=0.45", fc=colour, ec="0.35")
        boxes[key] = ax.text(
            x, y, text, ha="center", va="center", fontsize=10,
            bbox=frame if colour else None,
        )  # fmt: skip
    for start, end, label, dashed in arrows:
        (tail, head), across = _arrow_sides(nodes[start][:2], nodes[end][:2])
        ax.annotate(
            "",
            xy=head,
            xycoords=boxes[end],
            xytext=tail,
            textcoords=boxes[start],
            arrowprops=dict(
                arrowstyle="-|>", color="0.25", lw=1.2,
                linestyle="--" if dashed else "-",
            ),
        )  # fmt: skip
        if label:
            (x0, y0), (x1, y1) = nodes[start][:2], nodes[end][:2]
            dx, dy = (0, 0.22) if across else (0.12, 0)
            ax.text(
                (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy, label, fontsize=9,
                ha="center" if across else "left", va="center",
            )  # fmt: skip
    xs = [x for x, *_ in nodes.values()]
    ys = [y for _, y, *_ in nodes.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return ax


def draw_logistic_unit(n_shown: int = 3, ax=None):
    """Draw logistic regression as one unit: inputs, weighted sum, sigmoid, cost.

    Args:
        n_shown: how many of the n_x inputs to draw (the rest are dots).
        ax: matplotlib Axes to draw on (a new figure if None).

    Returns:
        The Axes.
    """
    forward, stored = DIAGRAM_COLOURS["forward"], DIAGRAM_COLOURS["stored"]
    nodes, arrows = {}, []
    rows = [f"$x_{i}$" for i in range(1, n_shown + 1)] + ["⋮", "$x_{n_x}$"]
    top = (len(rows) - 1) / 2
    for k, text in enumerate(rows):
        nodes[f"x{k}"] = (0, top - k, text, None if text == "⋮" else stored)
        if text != "⋮":
            label = "$w_{n_x}$" if k == len(rows) - 1 else f"$w_{k + 1}$"
            arrows.append((f"x{k}", "z", label, False))
    nodes["z"] = (3, 0, "$z = w^T x + b$", forward)
    nodes["a"] = (5.6, 0, "$a = \\sigma(z)$", forward)
    nodes["L"] = (8.4, 0, "loss\n$\\mathcal{L}(a, y)$", stored)
    arrows += [("z", "a", "", False), ("a", "L", "$\\hat{y} = a$", False)]
    return draw_diagram(
        nodes, arrows, size=(10, 3.6), ax=ax,
        title="Logistic regression: one unit, a weighted sum of the pixels "
        "and a sigmoid",
    )  # fmt: skip


def draw_one_hidden_layer_network(n_x: int = 2, n_h: int = 4, ax=None):
    """Draw the network of assignment 02: n_x inputs, n_h tanh units, one sigmoid.

    Args:
        n_x: number of inputs drawn.
        n_h: number of hidden units drawn.
        ax: matplotlib Axes to draw on (a new figure if None).

    Returns:
        The Axes.

    Raises:
        ValueError: if ``n_x`` or ``n_h`` is not between 1 and 8.
    """
    for name, value in (("n_x", n_x), ("n_h", n_h)):
        if not 1 <= value <= 8:
            raise ValueError(f"{name} = {value}, expected 1 to 8 units to draw")
    forward, stored = DIAGRAM_COLOURS["forward"], DIAGRAM_COLOURS["stored"]
    nodes, arrows = {}, []
    for i in range(n_x):
        nodes[f"x{i}"] = (0, (n_x - 1) / 2 - i, f"$x_{i + 1}$", stored)
    for j in range(n_h):
        nodes[f"h{j}"] = (3, (n_h - 1) / 2 - j, f"$a^{{[1]}}_{j + 1}$ (tanh)", forward)
        arrows += [(f"x{i}", f"h{j}", "", False) for i in range(n_x)]
        arrows.append((f"h{j}", "out", "", False))
    nodes["out"] = (6.2, 0, "$a^{[2]} = \\sigma(z^{[2]})$", forward)
    nodes["yhat"] = (9, 0, "$\\hat{y}$: 1 if $a^{[2]} > 0.5$", None)
    arrows.append(("out", "yhat", "", False))
    return draw_diagram(
        nodes, arrows, size=(10, 1.2 + 0.9 * max(n_x, n_h)), ax=ax,
        title=f"One hidden layer: {n_x} inputs, {n_h} tanh units "
        "($W^{[1]}, b^{[1]}$), one sigmoid output ($W^{[2]}, b^{[2]}$)",
    )  # fmt: skip
