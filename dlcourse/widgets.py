"""Computations and widgets behind the ungraded companion notebooks (``notebooks/``).

Each companion is split in two. A plain function computes what is shown
(:func:`activation_curves`, :func:`gradient_descent_path` and
:func:`classify_run`, :func:`layer_activation_stats` and
:func:`first_training_costs`) and is tested without a browser; a ``plot_*``
function draws it as a matplotlib :class:`~matplotlib.figure.Figure`; an
``*_explorer`` builder wires the plot to ipywidgets 8 controls and returns the
widget, so a notebook cell is a single call.

The deep-network computations use a compact training loop of their own
(:func:`_train`, :func:`_cost_and_gradients`). Decision: write it here rather
than import a reference. ``dlcourse`` must not depend on ``source/`` (instructor
files) or on a notebook's folder (``dnn_helpers.py`` of assignment 05), and the
loop is deliberately not the function-by-function API that assignment 04 grades
(``initialize_parameters_deep``, ``L_model_forward``, ... with their caches): it
is one fused pass that computes the cost from the logits and skips ``dA0``, and
its helpers are private. It hands out nothing new either: assignment 05 gives
students a full, tested implementation of the 04 functions in ``dnn_helpers.py``,
and the reference solutions sit in ``source/`` of this open repository. The
activations come from :mod:`dlcourse.activations`, the ones the assignments use.

ipywidgets and matplotlib are imported only by the plotting and widget functions,
so the computations import quickly.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlcourse import activations

__all__ = [
    "ACTIVATIONS",
    "CAT_LAYER_DIMS",
    "INIT_SCHEMES",
    "SURFACES",
    "Surface",
    "activation_curves",
    "activation_explorer",
    "classify_run",
    "first_training_costs",
    "gradient_descent_explorer",
    "gradient_descent_path",
    "initialisation_explorer",
    "initialisation_inputs",
    "label_entropy",
    "layer_activation_stats",
    "plot_activation",
    "plot_gradient_descent",
    "plot_initialisation",
]

# ------------------------------------------------------------------- activations

#: name -> (forward, backward) from :mod:`dlcourse.activations`.
_ACTIVATION_PAIRS: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (activations.sigmoid, activations.sigmoid_backward),
    "tanh": (activations.tanh, activations.tanh_backward),
    "relu": (activations.relu, activations.relu_backward),
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATION_PAIRS)


def _check_choice(what: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def activation_curves(name: str, x) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate an activation function and its derivative.

    The derivative comes from the course's backward function with an upstream
    gradient of ones (``dZ = 1 * g'(Z)``), so the curves show exactly what
    backpropagation multiplies by.

    Args:
        name: ``"sigmoid"``, ``"tanh"`` or ``"relu"``.
        x: inputs ``Z``, any shape, e.g. ``(n,)``.

    Returns:
        values: ``g(x)``, shaped like ``x``.
        derivatives: ``g'(x)``, shaped like ``x`` (0 for ReLU at ``x == 0``).

    Raises:
        ValueError: for an unknown ``name``.
    """
    _check_choice("name", name, ACTIVATIONS)
    forward, backward = _ACTIVATION_PAIRS[name]
    values, cache = forward(np.asarray(x, dtype=np.float64))
    derivatives = backward(np.ones_like(values), cache)
    return values, derivatives


def plot_activation(name: str, z: float, *, x_range: tuple[float, float] = (-6, 6)):
    """Draw ``g`` and ``g'`` over ``x_range`` with the point ``z`` and its tangent.

    Args:
        name: ``"sigmoid"``, ``"tanh"`` or ``"relu"``.
        z: the input marked on both curves.
        x_range: ``(low, high)`` of the horizontal axis.

    Returns:
        A :class:`matplotlib.figure.Figure` with two axes (function, derivative).
    """
    from matplotlib.figure import Figure

    low, high = x_range
    if not low < high:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range}")
    x = np.linspace(low, high, 401)
    values, derivatives = activation_curves(name, x)
    gz, dgz = (float(v[0]) for v in activation_curves(name, np.array([z])))

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_g, ax_d = fig.subplots(1, 2)
    ax_g.plot(x, values, color="C0", label=f"{name}(z)")
    # The tangent at z: its slope is the derivative plotted on the right.
    half = 0.15 * (high - low)
    tangent_x = np.array([z - half, z + half])
    ax_g.plot(tangent_x, gz + dgz * (tangent_x - z), color="C3", lw=1.5, ls="--")
    ax_g.plot([z], [gz], "o", color="C3")
    ax_g.set(title=f"{name}(z) = {gz:.3f} at z = {z:.2f}", xlabel="z")

    ax_d.plot(x, derivatives, color="C1", label=f"{name}'(z)")
    ax_d.plot([z], [dgz], "o", color="C3")
    # Where g' is nearly 0 the unit passes almost no gradient back: saturation.
    flat = derivatives < 0.01
    ax_d.fill_between(x, 0, 1.05, where=flat, color="0.85", lw=0, label="g' < 0.01")
    ax_d.set(
        title=f"{name}'(z) = {dgz:.3f}  (slope of the dashed tangent)",
        xlabel="z",
        ylim=(-0.05, 1.05),
    )
    for ax in (ax_g, ax_d):
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.legend(loc="upper left", fontsize=8)
    return fig


# -------------------------------------------------------------- gradient descent


@dataclass(frozen=True)
class Surface:
    """A loss on two parameters ``w = (w1, w2)``, with its gradient.

    Attributes:
        name: key in :data:`SURFACES`.
        formula: the loss in words for plot titles.
        loss: ``loss(w1, w2)`` on arrays of any (equal) shape.
        gradient: ``gradient(w)`` for ``w`` of shape ``(2,)``, returns shape ``(2,)``.
        start: default starting point, shape ``(2,)``.
        extent: ``((w1_low, w1_high), (w2_low, w2_high))`` drawn in the contour plot.
        note: what the surface shows, one sentence.
    """

    name: str
    formula: str
    loss: Callable[[np.ndarray, np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray], np.ndarray]
    start: tuple[float, float]
    extent: tuple[tuple[float, float], tuple[float, float]]
    note: str


SURFACES: dict[str, Surface] = {
    "quadratic": Surface(
        name="quadratic",
        formula="L = (w1² + 10·w2²) / 2",
        loss=lambda w1, w2: 0.5 * (w1**2 + 10.0 * w2**2),
        gradient=lambda w: np.array([w[0], 10.0 * w[1]]),
        start=(-4.0, 1.5),
        extent=((-5.0, 5.0), (-2.5, 2.5)),
        note=(
            "A narrow valley: curvature 1 along w1 and 10 along w2. Each step "
            "multiplies w2 by (1 - 10·learning_rate): steady for learning_rate "
            "< 0.1, zig-zag across the valley between 0.1 and 0.2, divergence "
            "above 0.2."
        ),
    ),
    "double_well": Surface(
        name="double_well",
        formula="L = (w1² - 1)² + w2²",
        loss=lambda w1, w2: (w1**2 - 1.0) ** 2 + w2**2,
        gradient=lambda w: np.array([4.0 * w[0] * (w[0] ** 2 - 1.0), 2.0 * w[1]]),
        start=(-0.3, 1.6),
        extent=((-2.0, 2.0), (-2.0, 2.0)),
        note=(
            "Two minima at w1 = -1 and w1 = +1 with a ridge between them: "
            "which one a run reaches depends on where it starts and on the "
            "step size; curvature 8 along w1 at a minimum makes learning_rate "
            "> 0.25 unstable there."
        ),
    ),
}

# Once a run is this far out it has diverged; later rows are NaN.
_ESCAPE = 1e6


def gradient_descent_path(
    learning_rate: float,
    steps: int,
    start: Sequence[float] | None = None,
    *,
    surface: str = "quadratic",
) -> tuple[np.ndarray, np.ndarray]:
    """Run plain gradient descent ``w <- w - learning_rate * dL/dw`` on a 2-D loss.

    Args:
        learning_rate: step size, > 0.
        steps: number of updates, >= 0.
        start: initial ``(w1, w2)``; default the surface's own starting point.
        surface: a key of :data:`SURFACES`.

    Returns:
        path: shape ``(steps + 1, 2)``; row ``k`` is ``w`` after ``k`` updates.
            After a run leaves ``|w| < 1e6`` (it has diverged) the later rows are
            NaN, so the arrays never overflow.
        losses: shape ``(steps + 1,)``; the loss at each row of ``path``.

    Raises:
        ValueError: for a non-positive learning rate, negative ``steps``, a
            ``start`` that is not two numbers, or an unknown surface.
        TypeError: if ``steps`` is not an integer.
    """
    _check_choice("surface", surface, tuple(SURFACES))
    spec = SURFACES[surface]
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an integer, got {type(steps).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    w = np.array(spec.start if start is None else start, dtype=np.float64)
    if w.shape != (2,):
        raise ValueError(f"start has shape {w.shape}, expected (2,)")

    path = np.full((steps + 1, 2), np.nan)
    path[0] = w
    for k in range(1, steps + 1):
        w = w - learning_rate * spec.gradient(w)
        if not np.all(np.abs(w) < _ESCAPE):
            break
        path[k] = w
    losses = spec.loss(path[:, 0], path[:, 1])
    return path, losses


def classify_run(path, losses) -> str:
    """Say whether a gradient-descent run converges, oscillates or diverges.

    - ``"diverges"``: the loss became NaN/inf (the run escaped) or ended higher
      than it started.
    - ``"oscillates"``: the loss did not grow, but along some parameter the step
      changes sign at least every other update: the run zig-zags across the
      valley instead of walking down it (including the borderline case of
      bouncing between two walls forever).
    - ``"converges"``: the loss did not grow and no parameter zig-zags.

    Args:
        path: shape ``(steps + 1, 2)`` from :func:`gradient_descent_path`.
        losses: shape ``(steps + 1,)``, the loss along ``path``.

    Returns:
        ``"converges"``, ``"oscillates"`` or ``"diverges"``.

    Raises:
        ValueError: if the shapes do not match.
    """
    path = np.asarray(path, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if path.ndim != 2 or losses.shape != (path.shape[0],):
        raise ValueError(
            f"path has shape {path.shape} and losses {losses.shape}; expected "
            "(steps + 1, d) and (steps + 1,)"
        )
    if not np.all(np.isfinite(losses)) or losses[-1] > losses[0]:
        return "diverges"
    moves = np.diff(path, axis=0)
    for j in range(moves.shape[1]):
        step = moves[:, j]
        largest = np.max(np.abs(step), initial=0.0)
        # Ignore steps too small to see; their sign is rounding noise.
        signs = np.sign(step[np.abs(step) > 1e-9 * largest])
        if signs.size >= 3 and np.mean(signs[1:] != signs[:-1]) >= 0.5:
            return "oscillates"
    return "converges"


def plot_gradient_descent(
    learning_rate: float,
    steps: int,
    start: Sequence[float] | None = None,
    *,
    surface: str = "quadratic",
):
    """Draw a run of :func:`gradient_descent_path` on the contours, and its losses.

    Returns:
        A :class:`matplotlib.figure.Figure` with two axes (path, loss per step).
    """
    from matplotlib.figure import Figure

    path, losses = gradient_descent_path(learning_rate, steps, start, surface=surface)
    spec = SURFACES[surface]
    verdict = classify_run(path, losses)
    (w1_low, w1_high), (w2_low, w2_high) = spec.extent
    g1, g2 = np.meshgrid(
        np.linspace(w1_low, w1_high, 241), np.linspace(w2_low, w2_high, 181)
    )
    grid = spec.loss(g1, g2)

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_path, ax_loss = fig.subplots(1, 2, width_ratios=(1.4, 1))
    levels = np.quantile(grid, np.linspace(0.0, 0.95, 16) ** 2)
    ax_path.contour(
        g1, g2, grid, levels=np.unique(levels), cmap="viridis", linewidths=0.8
    )
    shown = path[np.all(np.isfinite(path), axis=1)]
    ax_path.plot(shown[:, 0], shown[:, 1], "-o", color="C3", ms=3, lw=1)
    ax_path.plot(*shown[0], "s", color="k", ms=6, label="start")
    ax_path.set(
        xlim=(w1_low, w1_high),
        ylim=(w2_low, w2_high),
        xlabel="w1",
        ylabel="w2",
        title=f"{spec.formula}: {verdict}",
    )
    ax_path.legend(loc="lower right", fontsize=8)

    finite = np.isfinite(losses)
    ax_loss.semilogy(np.flatnonzero(finite), np.maximum(losses[finite], 1e-300), "-o")
    if not finite.all():
        ax_loss.axvline(np.argmin(finite), color="C3", ls="--", label="escaped")
        ax_loss.legend(fontsize=8)
    last = losses[finite][-1]
    ax_loss.set(
        xlabel="update",
        ylabel="loss (log scale)",
        title=f"learning_rate {learning_rate:.3g}: final loss {last:.3g}",
    )
    return fig


# ----------------------------------------------------------------- initialisation

#: The L-layer cat model of assignment 05: 64·64·3 inputs, three ReLU layers, sigmoid.
CAT_LAYER_DIMS: tuple[int, ...] = (12288, 20, 7, 5, 1)
#: ``"small"``: ``randn * 0.01``; ``"scaled"``: ``randn / sqrt(n_{l-1})``.
INIT_SCHEMES: tuple[str, ...] = ("small", "scaled")
_INIT_LABELS = {"small": "randn × 0.01", "scaled": "randn / √n[l-1]"}


def _check_layer_dims(layer_dims) -> list[int]:
    dims = list(layer_dims)
    if len(dims) < 2 or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
        for n in dims
    ):
        raise ValueError(
            "layer_dims must list at least two positive integers (n_x, ..., n_L), "
            f"got {layer_dims!r}"
        )
    return [int(n) for n in dims]


def _initial_parameters(layer_dims, init: str, *, seed: int = 1) -> dict:
    """Draw the weights of an L-layer network with one of two scales.

    The draws follow the course's convention (legacy ``np.random.seed(seed)`` and
    ``randn`` for ``W1, W2, ...`` in order) from a private ``RandomState``, so the
    global numpy random state is left alone and the numbers match assignment 05.

    Args:
        layer_dims: ``[n_x, n_1, ..., n_L]``.
        init: ``"small"`` (``randn * 0.01``) or ``"scaled"``
            (``randn / sqrt(n_{l-1})``).
        seed: seed of the ``RandomState``.

    Returns:
        ``{"W1": (n_1, n_x), "b1": (n_1, 1), ..., "WL", "bL"}``; biases are zero.

    Raises:
        ValueError: for bad ``layer_dims`` or an unknown ``init``.
    """
    dims = _check_layer_dims(layer_dims)
    _check_choice("init", init, INIT_SCHEMES)
    rng = np.random.RandomState(seed)
    params = {}
    for layer in range(1, len(dims)):
        n_l, n_prev = dims[layer], dims[layer - 1]
        scale = 0.01 if init == "small" else 1.0 / np.sqrt(n_prev)
        params[f"W{layer}"] = rng.randn(n_l, n_prev) * scale
        params[f"b{layer}"] = np.zeros((n_l, 1))
    return params


def _check_inputs(dims: list[int], X, Y=None):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != dims[0]:
        raise ValueError(f"X has shape {X.shape}, expected ({dims[0]}, m)")
    if Y is None:
        return X, None
    Y = np.asarray(Y, dtype=np.float64)
    if Y.shape != (1, X.shape[1]):
        raise ValueError(f"Y has shape {Y.shape}, expected (1, {X.shape[1]})")
    return X, Y


def _forward(params: dict, X: np.ndarray, n_layers: int) -> list[tuple]:
    """Return ``[(A_prev, Z, A), ...]`` for layers 1..L (ReLU, then sigmoid)."""
    layers = []
    A = X
    for layer in range(1, n_layers + 1):
        Z = params[f"W{layer}"] @ A + params[f"b{layer}"]
        g = activations.sigmoid if layer == n_layers else activations.relu
        A_next, _ = g(Z)
        layers.append((A, Z, A_next))
        A = A_next
    return layers


def layer_activation_stats(
    layer_dims, init: str, X, *, seed: int = 1
) -> list[dict[str, float]]:
    """Summarise the activations of each layer right after initialisation.

    Args:
        layer_dims: ``[n_x, n_1, ..., n_L]``; hidden layers use ReLU, layer L sigmoid.
        init: ``"small"`` or ``"scaled"`` (see :func:`_initial_parameters`).
        X: inputs, shape ``(n_x, m)``.
        seed: seed of the weights.

    Returns:
        One dict per layer ``l = 1..L`` with ``layer`` (l), ``activation``
        (``"relu"``/``"sigmoid"``), and the ``mean`` and ``std`` of ``A{l}`` and
        ``frac_zero``, the fraction of its entries that are exactly 0 (dead ReLUs).

    Raises:
        ValueError: for bad ``layer_dims``, ``init`` or shape of ``X``.
    """
    dims = _check_layer_dims(layer_dims)
    X, _ = _check_inputs(dims, X)
    params = _initial_parameters(dims, init, seed=seed)
    n_layers = len(dims) - 1
    stats = []
    for layer, (_, _, A) in enumerate(_forward(params, X, n_layers), start=1):
        stats.append(
            {
                "layer": layer,
                "activation": "sigmoid" if layer == n_layers else "relu",
                "mean": float(A.mean()),
                "std": float(A.std()),
                "frac_zero": float(np.mean(A == 0)),
            }
        )
    return stats


def _cost_from_logits(ZL: np.ndarray, Y: np.ndarray) -> float:
    # Cross-entropy of sigmoid(ZL), written as log(1 + e^Z) - Y·Z so it never
    # takes log(0), even when the sigmoid saturates.
    return float(np.mean(np.logaddexp(0.0, ZL) - Y * ZL))


def _cost_and_gradients(params: dict, X, Y) -> tuple[float, dict]:
    """Return the cost and ``{"dW1": ..., "db1": ..., ...}`` at ``params``."""
    n_layers = len(params) // 2
    m = X.shape[1]
    layers = _forward(params, X, n_layers)
    cost = _cost_from_logits(layers[-1][1], Y)
    grads = {}
    # Sigmoid and cross-entropy together have the gradient AL - Y at ZL.
    dZ = layers[-1][2] - Y
    for layer in range(n_layers, 0, -1):
        A_prev = layers[layer - 1][0]
        grads[f"dW{layer}"] = dZ @ A_prev.T / m
        grads[f"db{layer}"] = dZ.sum(axis=1, keepdims=True) / m
        # Layer 1 needs no gradient for X (a 12288 × m product saved per step).
        if layer > 1:
            dA_prev = params[f"W{layer}"].T @ dZ
            dZ = activations.relu_backward(dA_prev, layers[layer - 2][1])
    return cost, grads


def _train(params: dict, X, Y, steps: int, learning_rate: float) -> np.ndarray:
    """Run ``steps`` full-batch updates; return the cost before each and at the end."""
    costs = np.empty(steps + 1)
    for step in range(steps + 1):
        if step == steps:
            layers = _forward(params, X, len(params) // 2)
            costs[step] = _cost_from_logits(layers[-1][1], Y)
            break
        costs[step], grads = _cost_and_gradients(params, X, Y)
        params = {
            key: value - learning_rate * grads[f"d{key}"]
            for key, value in params.items()
        }
    return costs


def first_training_costs(
    layer_dims,
    init: str,
    X,
    Y,
    *,
    steps: int = 300,
    learning_rate: float = 0.0075,
    seed: int = 1,
) -> np.ndarray:
    """Train an L-layer network by full-batch gradient descent and record the cost.

    Hidden layers use ReLU, the output layer sigmoid; the cost is the mean
    cross-entropy, as in assignment 05.

    Args:
        layer_dims: ``[n_x, n_1, ..., n_L]`` with ``n_L == 1``.
        init: ``"small"`` or ``"scaled"`` (see :func:`_initial_parameters`).
        X: inputs, shape ``(n_x, m)``.
        Y: labels 0/1, shape ``(1, m)``.
        steps: number of updates, >= 0.
        learning_rate: step size, > 0.
        seed: seed of the initial weights.

    Returns:
        costs: shape ``(steps + 1,)``; ``costs[k]`` is the cost after ``k`` updates.

    Raises:
        ValueError: for bad ``layer_dims``, ``init``, shapes, ``steps`` or
            ``learning_rate``.
    """
    dims = _check_layer_dims(layer_dims)
    if dims[-1] != 1:
        raise ValueError(f"the output layer must have 1 unit, got {dims[-1]}")
    X, Y = _check_inputs(dims, X, Y)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    params = _initial_parameters(dims, init, seed=seed)
    return _train(params, X, Y, int(steps), float(learning_rate))


def label_entropy(Y) -> float:
    """Return the cost of predicting the fraction of 1s for every example.

    That is the entropy ``-(p log p + (1 - p) log(1 - p))`` with ``p = mean(Y)``:
    the best a network that ignores its input can do (≈ 0.644 on the cat
    training set, where the ×0.01 network stalls).

    Args:
        Y: labels 0/1, shape ``(1, m)``.
    """
    p = float(np.mean(Y))
    if p in (0.0, 1.0):
        return 0.0
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


def initialisation_inputs(m: int = 209, *, data_dir=None, seed: int = 0):
    """Return inputs for the initialisation companion: cat photos, or a stand-in.

    The first ``m`` training photos, flattened as in assignment 05. Without the
    dataset, random "photos" of the same shape stand in: uniform pixels plus a
    fixed random pattern, added to cats and subtracted from non-cats so that a
    network that trains at all can learn them, with the cat training set's share
    of cats so that the cost of ignoring the input is the same ≈ 0.644.

    Args:
        m: number of examples, 1..209.
        data_dir: where to look for the cat dataset (default: the usual places,
            see :func:`dlcourse.data.resolve_data_dir`).
        seed: seed of the synthetic stand-in.

    Returns:
        X: shape ``(12288, m)``, values in [0, 1].
        Y: shape ``(1, m)``, labels 0/1 as floats.
        note: ``None`` for real photos; otherwise why synthetic inputs are used
            and how to get the real ones.

    Raises:
        ValueError: if ``m`` is outside 1..209.
    """
    from dlcourse.data import DatasetError, load_cat_dataset

    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= 209:
        raise ValueError(f"m must be an integer between 1 and 209, got {m!r}")
    try:
        train_x, train_y, *_ = load_cat_dataset(data_dir)
    except DatasetError as exc:
        rng = np.random.default_rng(seed)
        Y = (rng.permutation(m) < round(m * 72 / 209)).astype(np.float64)[None, :]
        pattern = rng.standard_normal((CAT_LAYER_DIMS[0], 1))
        X = np.clip(
            rng.random((CAT_LAYER_DIMS[0], m)) + 0.15 * pattern * (2 * Y - 1), 0, 1
        )
        reason = str(exc).splitlines()[0]
        note = (
            "Note: the cat dataset is not available, so random pixels of the same "
            "shape, with the same share of cats, stand in for the photos: the lesson "
            f"is the same, the numbers differ. To use the photos: {reason}"
        )
        return X, Y, note
    X = train_x[:m].reshape(m, -1).T / 255.0
    return X, train_y[:, :m].astype(np.float64), None


def plot_initialisation(
    init: str,
    steps: int,
    stats: dict,
    costs: dict,
    entropy: float,
    *,
    learning_rate: float = 0.0075,
):
    """Draw per-layer activation spread and the first training costs.

    Args:
        init: the scheme to highlight, ``"small"`` or ``"scaled"``.
        steps: how many updates of the cost curves to show.
        stats: ``{init: layer_activation_stats(...)}`` for both schemes.
        costs: ``{init: first_training_costs(...)}`` for both schemes, at least
            ``steps + 1`` long.
        entropy: :func:`label_entropy` of the labels, drawn as a reference line.
        learning_rate: the step size the costs were computed with, for the label.

    Returns:
        A :class:`matplotlib.figure.Figure` with two axes.
    """
    from matplotlib.figure import Figure

    _check_choice("init", init, INIT_SCHEMES)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_std, ax_cost = fig.subplots(1, 2)
    width = 0.38
    for offset, scheme in zip((-width / 2, width / 2), INIT_SCHEMES, strict=True):
        rows = stats[scheme]
        layers = np.array([row["layer"] for row in rows])
        stds = np.array([max(row["std"], 1e-12) for row in rows])
        chosen = scheme == init
        ax_std.bar(
            layers + offset,
            stds,
            width,
            color="C0" if scheme == "small" else "C2",
            alpha=1.0 if chosen else 0.3,
            label=_INIT_LABELS[scheme],
        )
    ax_std.set_yscale("log")
    ax_std.set(
        xticks=layers,
        xticklabels=[f"A{row['layer']}" for row in stats[init]],
        ylabel="std of the activations",
        title="spread of each layer's output at initialisation",
    )
    ax_std.legend(fontsize=8)

    iterations = np.arange(steps + 1)
    for scheme in INIT_SCHEMES:
        chosen = scheme == init
        ax_cost.plot(
            iterations,
            costs[scheme][: steps + 1],
            color="C0" if scheme == "small" else "C2",
            lw=2.0 if chosen else 1.0,
            alpha=1.0 if chosen else 0.4,
            label=_INIT_LABELS[scheme],
        )
    ax_cost.axhline(
        entropy,
        color="C3",
        ls="--",
        lw=1,
        label=f"{entropy:.3f}: same guess for every photo",
    )
    final = costs[init][steps]
    ax_cost.set(
        xlabel=f"update (full batch, learning_rate {learning_rate:g})",
        ylabel="cost",
        title=f"{_INIT_LABELS[init]}: cost {final:.3f} after {steps} updates",
    )
    ax_cost.legend(fontsize=8, loc="upper right")
    return fig


# ----------------------------------------------------------------------- widgets


def _png_output(fig, *, dpi: int = 85) -> dict:
    """Render ``fig`` to a PNG ``display_data`` output, whatever the backend."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "text/plain": repr(fig),
        },
        "metadata": {},
    }


def _show(output, fig) -> None:
    """Make ``output`` show ``fig`` and nothing else.

    The Output widget's ``outputs`` are set directly instead of capturing a
    ``display`` call: this needs no inline backend, does not flicker, and avoids
    nbclient's capture of ``clear_output(wait=True)`` inside Output widgets, which
    can stall a notebook run until the cell timeout.
    """
    output.outputs = (_png_output(fig),)


def _bind(controls: dict, draw: Callable[..., object]):
    """Redraw into one Output widget whenever a control changes; draw once now."""
    import ipywidgets as widgets

    output = widgets.Output()

    def redraw(_change=None):
        _show(output, draw(**{name: c.value for name, c in controls.items()}))

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return output


def activation_explorer():
    """Build the activation explorer: pick a function, slide ``z`` along the axis.

    Returns:
        An ``ipywidgets.VBox`` with a dropdown, a ``z`` slider and the figure.
    """
    import ipywidgets as widgets

    controls = {
        "name": widgets.Dropdown(options=ACTIVATIONS, value="sigmoid", description="g"),
        "z": widgets.FloatSlider(
            value=0.5, min=-6.0, max=6.0, step=0.25, description="z"
        ),
    }
    output = _bind(controls, plot_activation)
    return widgets.VBox([widgets.HBox(list(controls.values())), output])


def gradient_descent_explorer():
    """Build the gradient-descent explorer: surface, learning rate, number of steps.

    Returns:
        An ``ipywidgets.VBox`` with the controls, a note on the surface and the
        figure.
    """
    import ipywidgets as widgets

    controls = {
        "surface": widgets.Dropdown(
            options=tuple(SURFACES), value="quadratic", description="surface"
        ),
        "learning_rate": widgets.FloatLogSlider(
            value=0.05,
            base=10,
            min=-3,
            max=np.log10(0.3),
            step=0.02,
            description="learning rate",
            readout_format=".3f",
            style={"description_width": "initial"},
        ),
        "steps": widgets.IntSlider(value=30, min=1, max=100, description="steps"),
    }
    note = widgets.HTML()

    def describe(change=None):
        note.value = f"<i>{SURFACES[controls['surface'].value].note}</i>"

    controls["surface"].observe(describe, names="value")
    describe()
    output = _bind(
        controls,
        lambda surface, learning_rate, steps: plot_gradient_descent(
            learning_rate, steps, surface=surface
        ),
    )
    return widgets.VBox([widgets.HBox(list(controls.values())), note, output])


def initialisation_explorer(
    X=None, Y=None, *, max_steps: int = 400, learning_rate: float = 0.0075
):
    """Build the initialisation explorer for the cat model ``[12288, 20, 7, 5, 1]``.

    Trains the network from both initialisations once (a few seconds), then lets
    the controls pick which one to highlight and how many updates to show.

    Args:
        X: inputs, shape ``(12288, m)``; default :func:`initialisation_inputs`
            (printing its note when the cat dataset is missing).
        Y: labels, shape ``(1, m)``; required when ``X`` is given.
        max_steps: updates computed and the slider's maximum.
        learning_rate: step size of the training runs.

    Returns:
        An ``ipywidgets.VBox`` with the controls, a per-layer table and the figure.
    """
    import ipywidgets as widgets

    if X is None:
        X, Y, note = initialisation_inputs()
        if note:
            print(note)
    elif Y is None:
        raise ValueError("Y is required when X is given")
    stats = {s: layer_activation_stats(CAT_LAYER_DIMS, s, X) for s in INIT_SCHEMES}
    costs = {
        s: first_training_costs(
            CAT_LAYER_DIMS, s, X, Y, steps=max_steps, learning_rate=learning_rate
        )
        for s in INIT_SCHEMES
    }
    entropy = label_entropy(Y)
    controls = {
        "init": widgets.ToggleButtons(
            options=[(_INIT_LABELS[s], s) for s in INIT_SCHEMES],
            value="small",
            description="init",
        ),
        "steps": widgets.IntSlider(
            value=max_steps,
            min=0,
            max=max_steps,
            step=25,
            description="updates",
        ),
    }
    table = widgets.HTML()

    def tabulate(change=None):
        rows = "".join(
            f"<tr><td>A{r['layer']} ({r['activation']})</td><td>{r['mean']:.2e}</td>"
            f"<td>{r['std']:.2e}</td><td>{r['frac_zero']:.0%}</td></tr>"
            for r in stats[controls["init"].value]
        )
        table.value = (
            "<table><tr><th>layer</th><th>mean</th><th>std</th>"
            f"<th>exactly 0</th></tr>{rows}</table>"
        )

    controls["init"].observe(tabulate, names="value")
    tabulate()
    output = _bind(
        controls,
        lambda init, steps: plot_initialisation(
            init, steps, stats, costs, entropy, learning_rate=learning_rate
        ),
    )
    return widgets.VBox([widgets.HBox(list(controls.values())), table, output])
