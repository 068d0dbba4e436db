"""Assignments 02 (one hidden layer) and 03 (softmax): references, checks, mistakes.

The fast tests work in-process: they build a namespace the way a notebook kernel
would (setup cell, then every solution cell) and run the visible checks and the
hidden tests in it. The slow tests execute the source notebooks in a Jupyter
kernel, to pin down the printed numbers the prose quotes and the expected outputs
it shows.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from notebook_sim import (
    grade_id,
    is_solution,
    notebook,
    notebook_namespace,
    points,
    run_test_cells,
)

from autograder.authoring.expected import case_sets, write_expected  # noqa: E402
from autograder.hidden import HiddenTestFailure  # noqa: E402
from autograder.hidden import planar as hidden_planar  # noqa: E402
from autograder.hidden import softmax as hidden_softmax  # noqa: E402
from autograder.notebooks import hygiene_problems  # noqa: E402
from autograder.source import (  # noqa: E402
    reference_namespace,
    source_notebook_path,
)
from dlcourse.activations import sigmoid  # noqa: E402
from dlcourse.gradcheck import numerical_gradient  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MISTAKES_DIR = REPO / "tests" / "files" / "mistakes"

HIDDEN = {
    "02_one_hidden_layer": hidden_planar.GRADER,
    "03_softmax": hidden_softmax.GRADER,
}
GRADED = {
    "02_one_hidden_layer": [
        "layer_sizes",
        "initialize_parameters",
        "forward_propagation",
        "compute_cost",
        "backward_propagation",
        "update_parameters",
        "nn_model",
        "predict",
    ],
    "03_softmax": [
        "softmax",
        "cross_entropy",
        "cross_entropy_one_hot",
        "delta_cross_entropy",
        "delta_cross_entropy_one_hot",
        "initialize_softmax",
        "softmax_forward",
        "softmax_backward",
        "train_softmax",
        "predict_softmax",
    ],
}
ASSIGNMENTS = list(GRADED)

# One wrong version of every graded function, beyond the typical-mistake files:
# (solution cell, [(old, new), ...]). Each must fail that function's hidden test.
MUTANTS = {
    "02_one_hidden_layer": {
        "layer_sizes": [("n_y = Y.shape[0]", "n_y = Y.shape[1]")],
        "initialize_parameters": [
            ("W1 = np.random.randn(n_h, n_x) * 0.01", "W1 = np.random.randn(n_h, n_x)")
        ],
        "forward_propagation": [("A1 = np.tanh(Z1)", "A1, _ = sigmoid(Z1)")],
        "compute_cost": [
            ("cost = -np.sum(log_probs) / m", "cost = -np.sum(log_probs)")
        ],
        "backward_propagation": [("(1 - A1**2)", "(1 - A1)")],
        "update_parameters": [
            ("- learning_rate * grads", "+ learning_rate * grads"),
        ],
        "nn_model": [
            (
                "parameters = update_parameters(parameters, grads, learning_rate)",
                "parameters = update_parameters(parameters, grads)",
            )
        ],
        "predict": [("(A2 > 0.5)", "(A2 > 0.6)")],
    },
    "03_softmax": {
        "softmax": [("shifted = Z - np.max(Z, axis=0, keepdims=True)", "shifted = Z")],
        "cross_entropy": [
            ("cost = np.sum(log_likelihood) / m", "cost = np.sum(log_likelihood)")
        ],
        "cross_entropy_one_hot": [
            ("cost = -np.sum(Y * np.log(A)) / m", "cost = -np.sum(Y * np.log(A))")
        ],
        "delta_cross_entropy": [("dZ = A - Y", "dZ = (A - Y) / m")],
        "delta_cross_entropy_one_hot": [
            ("    dZ = softmax(Z) - Y", "    dZ = (softmax(Z) - Y) / m")
        ],
        "initialize_softmax": [
            (
                "W1 = np.random.randn(C, n_x) * 0.01",
                "W1 = np.random.randn(n_x, C).T * 0.01",
            )
        ],
        "softmax_forward": [("Z = np.dot(W1, X) + b1", "Z = np.dot(W1, X)")],
        "softmax_backward": [
            (
                "db1 = np.sum(dZ, axis=1, keepdims=True) / m",
                "db1 = np.mean(dZ, axis=1, keepdims=True) / m",
            )
        ],
        "train_softmax": [
            ("cost = cross_entropy(cache[1], y)", "cost = cross_entropy(A, y)")
        ],
        "predict_softmax": [
            ("np.argmax(A, axis=0).reshape(1, -1)", "np.argmax(A, axis=0)")
        ],
    },
}


# ------------------------------------------------------------------ helpers


def _mistakes(assignment: str) -> list[dict]:
    return json.loads((MISTAKES_DIR / f"{assignment}.json").read_text("utf-8"))


def run_test_cells_for(assignment: str, namespace: dict) -> dict[str, str]:
    """Run every test cell of ``assignment`` in ``namespace``; return failures."""
    return run_test_cells(namespace, GRADED[assignment], HIDDEN[assignment])


# ------------------------------------------------------------ notebook layout


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_clean_and_its_graded_cells_total_100(assignment):
    assert hygiene_problems(source_notebook_path(assignment)) == []
    cell_points = points(assignment)
    assert sorted(cell_points) == sorted(f"test_{name}" for name in GRADED[assignment])
    assert sum(cell_points.values()) == 100
    solutions = [grade_id(c) for c in notebook(assignment).cells if is_solution(c)]
    assert solutions == GRADED[assignment], "one solution cell per graded function"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_namespace_defines_every_graded_function(assignment):
    reference = reference_namespace(assignment)
    for name in GRADED[assignment]:
        assert callable(reference.get(name)), name
    assert sorted(HIDDEN[assignment]._tests) == sorted(GRADED[assignment])
    assert sorted(case_sets()[assignment].cases) == sorted(GRADED[assignment])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_expected_outputs_match_the_reference(assignment):
    write_expected([assignment], check=True)


# ----------------------------------------------------- visible + hidden tests


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_passes_every_visible_check_and_hidden_test(assignment):
    assert run_test_cells_for(assignment, notebook_namespace(assignment)) == {}


@pytest.mark.parametrize(
    ("assignment", "name"),
    [(a, name) for a in ASSIGNMENTS for name in GRADED[a]],
)
def test_hidden_test_fails_a_wrong_function_and_only_that_one(assignment, name):
    namespace = notebook_namespace(
        assignment, cell=name, replace=MUTANTS[assignment][name]
    )
    grader = HIDDEN[assignment]
    with contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(HiddenTestFailure):
            grader.grade(name, namespace)
        # The hidden tests of the other functions patch in correct versions of
        # what they call, so the bug costs this one function only.
        for other in GRADED[assignment]:
            if other != name:
                grader.grade(other, namespace)


@pytest.mark.parametrize(
    ("assignment", "mistake"),
    [(a, m) for a in ASSIGNMENTS for m in _mistakes(a)],
    ids=lambda value: value["name"] if isinstance(value, dict) else value,
)
def test_typical_mistake_fails_exactly_the_cells_it_lists(assignment, mistake):
    namespace = notebook_namespace(
        assignment, cell=mistake["cell"], replace=mistake["replace"]
    )
    failures = run_test_cells_for(assignment, namespace)
    assert sorted(failures) == sorted(mistake["breaks"])
    assert mistake["message"] in failures[mistake["breaks"][0]]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mistake_files_are_well_formed(assignment):
    mistakes = _mistakes(assignment)
    assert len(mistakes) >= 5
    assert len({m["name"] for m in mistakes}) == len(mistakes)
    cell_points = points(assignment)
    for mistake in mistakes:
        assert mistake["cell"] in GRADED[assignment]
        assert mistake["breaks"] and set(mistake["breaks"]) <= set(cell_points)
        assert f"test_{mistake['cell']}" in mistake["breaks"]


# ------------------------------------------------ properties of the references


def test_reference_softmax_is_stable_for_scores_near_1e4():
    softmax = reference_namespace("03_softmax")["softmax"]
    Z = np.array(
        [[1e4, -1e4, 3.0], [1e4 + 1.0, -1e4 + 2.0, 3.0], [1e4 - 1.0, -1e4, 3.0]]
    )
    with np.errstate(all="raise"):
        A = softmax(Z.copy())
    assert np.all(np.isfinite(A))
    np.testing.assert_allclose(A.sum(axis=0), 1.0)
    np.testing.assert_allclose(A, softmax(Z - 1e4 * np.sign(Z[0])), rtol=1e-12)
    np.testing.assert_allclose(A[:, 2], 1 / 3)


def test_reference_softmax_model_with_two_classes_is_the_sigmoid_model():
    reference = reference_namespace("03_softmax")
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((2, 9))
    y = rng.integers(0, 2, size=(1, 9))
    a, _ = sigmoid(Z[1] - Z[0])
    np.testing.assert_allclose(reference["softmax"](Z)[1], a, rtol=1e-12)
    logistic = -np.mean(y[0] * np.log(a) + (1 - y[0]) * np.log(1 - a))
    assert reference["cross_entropy"](Z, y) == pytest.approx(logistic, rel=1e-12)
    # Gradient of the logistic model with respect to the score difference.
    dZ = reference["delta_cross_entropy"](Z, y)
    np.testing.assert_allclose(dZ[1], a - y[0], rtol=1e-10)
    np.testing.assert_allclose(dZ[0], -dZ[1], rtol=1e-10)


def _norm_error(analytical, numerical) -> float:
    # Norm-based, so that a near-zero entry (a unit whose outgoing weight is
    # tiny) does not turn finite-difference noise into a large relative error.
    difference = np.linalg.norm(analytical - numerical)
    return float(difference / (np.linalg.norm(analytical) + np.linalg.norm(numerical)))


def test_reference_gradients_match_centred_differences():
    planar = reference_namespace("02_one_hidden_layer")
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3, 7))
    Y = rng.integers(0, 2, size=(1, 7))
    params = {
        k: 0.5 * rng.standard_normal(v.shape)
        for k, v in planar["initialize_parameters"](3, 4, 1).items()
    }
    _, cache = planar["forward_propagation"](X, params)
    grads = planar["backward_propagation"](params, cache, X, Y)
    for name in params:
        numerical = numerical_gradient(
            lambda _: planar["compute_cost"](
                planar["forward_propagation"](X, params)[0], Y
            ),
            params[name],
        )
        assert _norm_error(grads["d" + name], numerical) < 1e-8, name

    soft = reference_namespace("03_softmax")
    Z = rng.standard_normal((4, 5))
    y = rng.integers(0, 4, size=(1, 5))
    numerical = numerical_gradient(lambda Z: soft["cross_entropy"](Z, y), Z.copy())
    # dZ holds each example's gradient: the averaged cost's is dZ / m.
    assert _norm_error(soft["delta_cross_entropy"](Z, y) / 5, numerical) < 1e-8


# ------------------------------------------------- the widget's computation


def test_train_and_draw_works_without_a_widget():
    """The function behind the 02 sliders trains, scores and draws by itself."""
    namespace = notebook_namespace("02_one_hidden_layer")
    for cell in notebook("02_one_hidden_layer").cells:
        if cell.cell_type == "code" and "def train_and_draw(" in cell.source:
            tree = ast.parse(cell.source)
            tree.body = [
                node
                for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == "train_and_draw"
            ]
            exec(compile(tree, "train_and_draw", "exec"), namespace)
            break
    else:
        pytest.fail("no cell of the 02 notebook defines train_and_draw")

    X, Y = namespace["data"].load_planar_dataset(m=60)
    fig, ax = plt.subplots()
    parameters, accuracy = namespace["train_and_draw"](
        X, Y, n_h=3, learning_rate=0.7, num_iterations=30, ax=ax
    )
    expected = namespace["nn_model"](X, Y, 3, num_iterations=30, learning_rate=0.7)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(parameters[name], expected[name])
    assert parameters["W1"].shape == (3, 2)
    predictions = namespace["predict"](parameters, X)
    assert accuracy == pytest.approx(100 * np.mean(predictions == Y))
    assert isinstance(accuracy, float)
    assert "n_h = 3" in ax.get_title() and "0.7" in ax.get_title()
    assert ax.collections, "the decision boundary is drawn"
    plt.close(fig)


# ------------------------------------------------------- executed notebooks


def _execute(assignment: str, *, grading: bool):
    from nbclient import NotebookClient

    nb = copy.deepcopy(notebook(assignment))
    env_before = os.environ.get("NBGRADER_EXECUTION")
    if grading:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    else:
        os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={
                "metadata": {"path": str(source_notebook_path(assignment).parent)}
            },
        ).execute()
    finally:
        if env_before is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = env_before
    return nb


def _stdout(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout"
    )


@pytest.fixture(scope="module")
def executed():
    return {a: _execute(a, grading=False) for a in ASSIGNMENTS}


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_percentage_the_prose_states_is_printed_by_the_code(assignment, executed):
    nb = executed[assignment]
    printed = "\n".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    stated = {
        number
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for number in re.findall(r"\b(\d+\.\d\d) %", cell.source)
    }
    assert stated, "the prose states the accuracies it discusses"
    for number in sorted(stated):
        assert f"{number} %" in printed, f"the prose says {number} %, the code does not"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_expected_output_blocks_show_what_the_demo_cells_print(assignment, executed):
    cells = executed[assignment].cells
    demos = 0
    for index, cell in enumerate(cells):
        if "expected-output" not in cell.metadata.get("tags", []):
            continue
        demos += 1
        block = re.search(r"```\n(.*?)```", cells[index + 1].source, re.DOTALL)
        assert block, f"cell {index + 1} shows no expected output"
        assert block.group(1) == _stdout(cell)
    assert demos >= 2


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_long_computations_are_skipped_under_grading(assignment):
    nb = _execute(assignment, grading=True)
    printed = "\n".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    assert "Skipped while grading" in printed
    assert "Cost after iteration 500" not in printed
    assert "Cost after iteration 1000" not in printed
    assert "accuracy" not in printed.lower() or assignment == "02_one_hidden_layer"
