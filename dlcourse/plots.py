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

__all__ = ["plot_costs", "plot_decision_boundary", "show_image_grid"]

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
