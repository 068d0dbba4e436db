"""Assignments 01 (logistic regression) and 05 (deep network application).

Fast tests work in-process: they build a namespace the way a notebook kernel
would (setup cell, then every solution cell, one of them possibly changed) and
run the visible checks and hidden tests in it. They also pin down the given
helpers of assignment 05 (``dnn_helpers.py``): that they agree with the reference
solutions of assignment 04, skip only what training does not need, and report
progress without touching standard error.

Slow tests execute the source notebooks in a Jupyter kernel on the real data:
every accuracy a ``stated-results`` cell quotes must be what the cell before it
printed, and under grading the long runs must be skipped. (Grading through the
real nbgrader — full marks, blank release, typical mistakes — is done for every
assignment by ``test_nbgrader_grading.py``.)
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

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
from autograder.hidden import deep_application as hidden_deep  # noqa: E402
from autograder.hidden import logistic as hidden_logistic  # noqa: E402
from autograder.notebooks import hygiene_problems  # noqa: E402
from autograder.source import (  # noqa: E402
    reference_namespace,
    source_notebook_path,
)
from dlcourse.checks import CheckFailure  # noqa: E402
from dlcourse.gradcheck import numerical_gradient_dict, rel_error  # noqa: E402
from dlcourse.testcases import logistic as tc_logistic  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MISTAKES_DIR = REPO / "tests" / "files" / "mistakes"
LOGISTIC = "01_logistic_regression"
DEEP = "05_deep_network_application"
STEP_BY_STEP = "04_deep_network_step_by_step"
HELPERS_PATH = REPO / "source" / DEEP / "dnn_helpers.py"

HIDDEN = {LOGISTIC: hidden_logistic.GRADER, DEEP: hidden_deep.GRADER}
GRADED = {
    LOGISTIC: [
        "prepare_images",
        "sigmoid",
        "initialize_with_zeros",
        "propagate",
        "optimize",
        "predict",
        "model",
    ],
    DEEP: ["two_layer_model", "L_layer_model", "predict"],
}
ASSIGNMENTS = list(GRADED)

# One more wrong version of every graded function, beyond the typical-mistake
# files: (solution cell, [(old, new), ...]). Each must fail that function's hidden
# test and no other.
MUTANTS = {
    LOGISTIC: {
        "prepare_images": [("/ 255.0", "/ 256.0")],
        "sigmoid": [("1 / (1 + np.exp(-z))", "np.exp(-z) / (1 + np.exp(-z))")],
        "initialize_with_zeros": [("np.zeros((dim, 1))", "np.zeros((1, dim))")],
        "propagate": [("db = np.sum(A - Y) / m", "db = np.sum(Y - A) / m")],
        "optimize": [("if i % 100 == 0:", "if i % 10 == 0:")],
        "predict": [("(A > 0.5)", "(A > 0.6)")],
        "model": [
            (
                "w, b, X_train, Y_train, num_iterations, learning_rate, print_cost",
                "w, b, X_train, Y_train, num_iterations, 0.005, print_cost",
            )
        ],
    },
    DEEP: {
        "two_layer_model": [('grads = {"dW1": dW1', 'grads = {"dW1": 0 * dW1')],
        "L_layer_model": [
            (
                "update_parameters(parameters, grads, learning_rate)",
                "update_parameters(parameters, grads, 2 * learning_rate)",
            )
        ],
        "predict": [("(probabilities > 0.5)", "(probabilities < 0.5)")],
    },
}


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def real_data():
    """Skip without the cat data (DLCOURSE_DATA), but fail in CI."""
    if not os.environ.get("DLCOURSE_DATA", "").strip():
        if os.environ.get("CI"):
            pytest.fail("CI is set but DLCOURSE_DATA is not: CI must test real data")
        pytest.skip("DLCOURSE_DATA is not set; point it at the cat dataset files")
    from dlcourse.data import load_cat_dataset

    return load_cat_dataset()


def _mistakes(assignment: str) -> list[dict]:
    return json.loads((MISTAKES_DIR / f"{assignment}.json").read_text("utf-8"))


def run_test_cells_for(assignment: str, namespace: dict) -> dict[str, str]:
    """Run every test cell of ``assignment`` in ``namespace``; return failures."""
    return run_test_cells(namespace, GRADED[assignment], HIDDEN[assignment])


def _load_helpers():
    spec = importlib.util.spec_from_file_location(
        "dnn_helpers_under_test", HELPERS_PATH
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def helpers():
    return _load_helpers()


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
def test_every_graded_function_has_a_reference_a_case_and_a_hidden_test(assignment):
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
def test_reference_passes_every_visible_check_and_hidden_test(assignment, real_data):
    assert run_test_cells_for(assignment, notebook_namespace(assignment)) == {}


@pytest.mark.parametrize(
    ("assignment", "name"), [(a, name) for a in ASSIGNMENTS for name in GRADED[a]]
)
def test_hidden_test_fails_a_wrong_function_and_only_that_one(
    assignment, name, real_data
):
    namespace = notebook_namespace(
        assignment, cell=name, replace=MUTANTS[assignment][name]
    )
    grader = HIDDEN[assignment]
    with contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(HiddenTestFailure):
            grader.grade(name, namespace)
        for other in GRADED[assignment]:
            if other != name:
                grader.grade(other, namespace)


@pytest.mark.parametrize(
    ("assignment", "mistake"),
    [(a, m) for a in ASSIGNMENTS for m in _mistakes(a)],
    ids=lambda value: value["name"] if isinstance(value, dict) else value,
)
def test_typical_mistake_fails_exactly_the_cells_it_lists(
    assignment, mistake, real_data
):
    namespace = notebook_namespace(
        assignment, cell=mistake["cell"], replace=mistake["replace"]
    )
    failures = run_test_cells_for(assignment, namespace)
    assert sorted(failures) == sorted(mistake["breaks"])
    assert mistake["message"] in failures[mistake["breaks"][0]]


def test_a_bug_in_sigmoid_is_reported_once_and_later_checks_say_why_they_wait():
    namespace = notebook_namespace(
        LOGISTIC, cell="sigmoid", replace=[("np.exp(-z)", "np.exp(z)")]
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        with pytest.raises(CheckFailure):
            tc_logistic.check("sigmoid", namespace["sigmoid"])
        assert tc_logistic.check("propagate", namespace["propagate"]) is None
    assert "propagate: not checked, because it calls sigmoid" in out.getvalue()


def test_a_check_waits_for_a_bug_reached_through_other_exercises():
    """optimize names only propagate; propagate calls the broken sigmoid: the
    check of optimize names sigmoid, the earliest exercise that fails."""
    namespace = notebook_namespace(
        LOGISTIC, cell="sigmoid", replace=[("np.exp(-z)", "np.exp(z)")]
    )
    assert "sigmoid" not in namespace["optimize"].__code__.co_names
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert tc_logistic.check("optimize", namespace["optimize"]) is None
    assert "optimize: not checked, because it calls sigmoid" in out.getvalue()


def test_the_predict_case_tells_thresholding_a_from_thresholding_z():
    w, b, X = tc_logistic.inputs("predict")
    z = w.T @ X + b
    assert np.any((z > 0) & (z < 0.5)), "some z between 0 and 0.5"
    assert np.any(z > 0.5) and np.any(z < 0)


def test_prepared_data_check_names_what_is_wrong():
    good = np.zeros((12288, 209)), np.zeros((12288, 50))
    with contextlib.redirect_stdout(io.StringIO()):
        tc_logistic.check_prepared_data(*good)
    with pytest.raises(CheckFailure, match="transposed"):
        tc_logistic.check_prepared_data(good[0].T, good[1])
    with pytest.raises(CheckFailure, match="dtype uint8"):
        tc_logistic.check_prepared_data(good[0].astype(np.uint8), good[1])
    with pytest.raises(CheckFailure, match="between 0 and 1"):
        tc_logistic.check_prepared_data(good[0], good[1] + 255.0)


def test_mistake_files_are_well_formed():
    for assignment in ASSIGNMENTS:
        mistakes = _mistakes(assignment)
        assert len(mistakes) >= 4
        assert len({m["name"] for m in mistakes}) == len(mistakes)
        for mistake in mistakes:
            assert mistake["cell"] in GRADED[assignment]
            assert mistake["breaks"] and mistake["message"]


# ------------------------------------------- the given helpers of assignment 05


def _random_network(rng, layer_dims, m):
    X = rng.standard_normal((layer_dims[0], m))
    parameters = {}
    for layer in range(1, len(layer_dims)):
        parameters[f"W{layer}"] = rng.standard_normal(
            (layer_dims[layer], layer_dims[layer - 1])
        )
        parameters[f"b{layer}"] = 0.3 * rng.standard_normal((layer_dims[layer], 1))
    Y = rng.integers(0, 2, size=(1, m))
    Y[0, 0], Y[0, -1] = 0, 1
    return X, Y, parameters


def _assert_same(got, want, path="output"):
    """Nested equality with a tight tolerance (the order of sums may differ)."""
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f"{path}: keys {sorted(got)}"
        for key in want:
            _assert_same(got[key], want[key], f"{path}[{key!r}]")
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{path}[{i}]")
    elif want is None or isinstance(want, str):
        assert got == want, path
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=path)


@pytest.fixture(scope="module")
def step_by_step():
    if not source_notebook_path(STEP_BY_STEP, root=REPO).parent.is_dir():
        pytest.skip(f"assignment {STEP_BY_STEP} has no source notebook yet")
    return reference_namespace(STEP_BY_STEP)


@pytest.mark.parametrize("layer_dims", [[5, 4, 3, 1], [3, 1], [6, 2, 1]])
def test_helpers_agree_with_the_step_by_step_reference(
    helpers, step_by_step, layer_dims
):
    ref = step_by_step
    rng = np.random.default_rng(sum(layer_dims))
    X, Y, parameters = _random_network(rng, layer_dims, m=7)
    W1, b1 = parameters["W1"], parameters["b1"]

    _assert_same(helpers.linear_forward(X, W1, b1), ref["linear_forward"](X, W1, b1))
    for activation in ("relu", "sigmoid"):
        _assert_same(
            helpers.linear_activation_forward(X, W1, b1, activation),
            ref["linear_activation_forward"](X, W1, b1, activation),
        )
    AL, caches = helpers.L_model_forward(X, parameters)
    _assert_same((AL, caches), ref["L_model_forward"](X, parameters))
    _assert_same(helpers.compute_cost(AL, Y), ref["compute_cost"](AL, Y))

    dZ = rng.standard_normal(AL.shape)
    _assert_same(
        helpers.linear_backward(dZ, caches[-1][0]),
        ref["linear_backward"](dZ, caches[-1][0]),
    )
    _, dW, db = ref["linear_backward"](dZ, caches[-1][0])
    _assert_same(
        helpers.linear_backward(dZ, caches[-1][0], need_dA_prev=False), (None, dW, db)
    )
    dA = rng.standard_normal(AL.shape)
    for activation in ("relu", "sigmoid"):
        _assert_same(
            helpers.linear_activation_backward(dA, caches[-1], activation),
            ref["linear_activation_backward"](dA, caches[-1], activation),
        )

    want = ref["L_model_backward"](AL, Y, caches)
    _assert_same(helpers.L_model_backward(AL, Y, caches, need_dA0=True), want)
    without_dA0 = {k: v for k, v in want.items() if k != "dA0"}
    _assert_same(helpers.L_model_backward(AL, Y, caches), without_dA0)
    _assert_same(
        helpers.update_parameters(parameters, want, 0.1),
        ref["update_parameters"](parameters, want, 0.1),
    )


def test_helper_initialisations_match_the_reference_but_the_deep_one_is_scaled(
    helpers, step_by_step
):
    ref = step_by_step
    np.random.seed(1)  # noqa: NPY002 - the step-by-step version seeds 1 itself
    _assert_same(
        helpers.initialize_parameters(5, 3, 1), ref["initialize_parameters"](5, 3, 1)
    )
    layer_dims = [12, 5, 4, 1]
    np.random.seed(3)  # noqa: NPY002 - the step-by-step version seeds 3 itself
    scaled = helpers.initialize_parameters_deep(layer_dims)
    small = ref["initialize_parameters_deep"](layer_dims)
    # The same draws: only the factor differs, 1/sqrt(n_{l-1}) instead of 0.01.
    for layer in range(1, len(layer_dims)):
        factor = 0.01 * np.sqrt(layer_dims[layer - 1])
        np.testing.assert_allclose(
            scaled[f"W{layer}"] * factor, small[f"W{layer}"], rtol=1e-12
        )
        np.testing.assert_array_equal(scaled[f"b{layer}"], small[f"b{layer}"])


def test_training_with_the_helpers_is_training_with_the_reference(
    helpers, step_by_step, real_data
):
    ref = step_by_step
    train_x, train_y = real_data[0], real_data[1]
    X = train_x[:40].reshape(40, -1).T / 255.0
    Y = train_y[:, :40]
    np.random.seed(1)  # noqa: NPY002 - the helpers draw from the legacy generator
    start = helpers.initialize_parameters_deep([X.shape[0], 20, 7, 5, 1])
    ours, theirs = dict(start), dict(start)
    for _ in range(15):
        AL, caches = helpers.L_model_forward(X, ours)
        ours = helpers.update_parameters(
            ours, helpers.L_model_backward(AL, Y, caches), 0.0075
        )
        AL, caches = ref["L_model_forward"](X, theirs)
        theirs = ref["update_parameters"](
            theirs, ref["L_model_backward"](AL, Y, caches), 0.0075
        )
    for key in start:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, atol=1e-15)


def test_helper_gradients_match_centred_differences(helpers):
    rng = np.random.default_rng(7)
    X, Y, parameters = _random_network(rng, [4, 5, 3, 1], m=6)

    def cost(params):
        return helpers.compute_cost(helpers.L_model_forward(X, params)[0], Y)

    AL, caches = helpers.L_model_forward(X, parameters)
    grads = helpers.L_model_backward(AL, Y, caches)
    numerical = numerical_gradient_dict(cost, copy.deepcopy(parameters))
    for key, value in numerical.items():
        assert rel_error(grads["d" + key], value) < 1e-7, key


def test_update_parameters_returns_new_arrays_and_leaves_its_input_alone(helpers):
    parameters = {"W1": np.ones((2, 3)), "b1": np.zeros((2, 1))}
    grads = {"dW1": np.ones((2, 3)), "db1": np.ones((2, 1)), "dA0": None}
    updated = helpers.update_parameters(parameters, grads, 0.5)
    np.testing.assert_array_equal(updated["W1"], 0.5)
    np.testing.assert_array_equal(parameters["W1"], 1.0)
    np.testing.assert_array_equal(parameters["b1"], 0.0)


def test_unknown_activation_is_named(helpers):
    with pytest.raises(ValueError, match="'tanh'"):
        helpers.linear_activation_forward(np.ones((2, 1)), np.ones((1, 2)), 0, "tanh")


def test_progress_bar_uses_stdout_only_and_is_off_while_grading(
    helpers, capsys, monkeypatch
):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    # tqdm.auto picks its notebook widget when an earlier test left an IPython
    # shell in this process; outside a notebook it is the text bar.
    import tqdm.auto
    import tqdm.std

    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.std.tqdm)
    progress = helpers.TrainingProgress(3, show=True)
    assert len(progress) == 3
    for i in progress:
        progress.show_cost(0.5 - 0.1 * i)
    shown = capsys.readouterr()
    assert shown.err == ""
    assert "3/3" in shown.out and "cost=0.3" in shown.out

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert list(helpers.TrainingProgress(3, show=True)) == [0, 1, 2]
    assert list(helpers.TrainingProgress(2, show=False)) == [0, 1]
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------- executed notebooks

PERCENT = re.compile(r"(\d+(?:\.\d+)?) %")


def _execute(assignment: str, *, grading: bool):
    from nbclient import NotebookClient

    nb = copy.deepcopy(notebook(assignment))
    saved = os.environ.get("NBGRADER_EXECUTION")
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
        if saved is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = saved
    return nb


def _stream(cell, name="stdout") -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == name
    )


@pytest.fixture(scope="module")
def executed(real_data):
    return {a: _execute(a, grading=False) for a in ASSIGNMENTS}


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_stated_accuracies_are_what_the_cell_before_printed(assignment, executed):
    cells = executed[assignment].cells
    checked = 0
    for index, cell in enumerate(cells):
        if "stated-results" not in cell.metadata.get("tags", []):
            continue
        code = next(c for c in reversed(cells[:index]) if c.cell_type == "code")
        printed = [float(x) for x in PERCENT.findall(_stream(code))]
        stated = PERCENT.findall(cell.source.replace("**", ""))
        assert stated, f"cell {index} is tagged stated-results but states nothing"
        assert len(printed) == len(stated), (
            f"cell {index} states {stated}, the code printed {printed}"
        )
        for said, got in zip(stated, printed, strict=True):
            decimals = len(said.partition(".")[2])
            assert round(got, decimals) == float(said), (
                f"cell {index} states {said} %, the code printed {got} %"
            )
        checked += 1
    assert checked >= 2


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_runs_without_errors_or_stderr(assignment, executed):
    for index, cell in enumerate(executed[assignment].cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell {index}: {errors[0].ename}: {errors[0].evalue}"
        assert _stream(cell, "stderr") == "", f"cell {index} wrote to stderr"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_long_runs_are_skipped_under_grading_with_a_note(assignment, real_data):
    nb = _execute(assignment, grading=True)
    printed = "\n".join(_stream(c) for c in nb.cells if c.cell_type == "code")
    assert "Skipped while grading" in printed
    assert "Cost after iteration 100" not in printed
    # The lines that report full-data results in 01 and in 05.
    assert "train accuracy:" not in printed
    assert "network, training pictures:" not in printed
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"]
            assert _stream(cell, "stderr") == ""


def test_update_parameters_accepts_scalars_and_other_dtypes(helpers):
    parameters = {"W1": np.ones((1, 2)), "b1": np.zeros((1, 1))}
    grads = {"dW1": np.ones((1, 2), np.float32), "db1": 2.0}
    updated = helpers.update_parameters(parameters, grads, 0.25)
    assert updated["W1"].dtype == np.float64
    np.testing.assert_array_equal(updated["W1"], 0.75)
    np.testing.assert_array_equal(updated["b1"], -0.5)


def test_speed_benchmark_runs_and_its_loops_train_the_same_network(real_data):
    """The benchmark prints its figures; it is run here, not timed."""
    import subprocess
    import sys

    script = REPO / "benchmarks" / "bench_deep_application.py"
    result = subprocess.run(
        [sys.executable, str(script), "--iterations", "3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ("GEMM floor:", "shipped helpers:", "classic-style loop:", "study,"):
        assert line in out, out
    shipped, classic = re.search(
        r"final cost: shipped (\S+), classic (\S+);", out
    ).groups()
    assert float(shipped) == pytest.approx(float(classic), rel=1e-12)
