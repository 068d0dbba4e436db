"""Assignment 04 (deep network step by step): reference, visible checks, hidden tests.

Fast tests, no nbgrader and no Jupyter kernel: the source notebook's setup and
solution cells are executed into a plain dict, the way a student's kernel holds
them, and the checks run against that. The typical mistakes of
``tests/files/mistakes/04_deep_network_step_by_step.json`` are applied the same
way, so each one is shown to cost exactly the function it breaks.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
from functools import cache

import nbformat
import numpy as np
import pytest

from autograder import REPO_ROOT
from autograder.authoring.expected import compute_expected
from autograder.hidden import GRADCHECK_THRESHOLD
from autograder.hidden import deep_network as hidden
from autograder.notebooks import hygiene_problems
from autograder.source import reference_namespace
from dlcourse.checks import CheckFailure
from dlcourse.gradcheck import rel_error
from dlcourse.testcases import EXPECTED_DIR
from dlcourse.testcases import deep_network as tc

ASSIGNMENT = "04_deep_network_step_by_step"
SOURCE = REPO_ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
MISTAKES = json.loads(
    (REPO_ROOT / "tests" / "files" / "mistakes" / f"{ASSIGNMENT}.json").read_text()
)
GRADED = (
    "initialize_parameters",
    "initialize_parameters_deep",
    "linear_forward",
    "linear_activation_forward",
    "L_model_forward",
    "compute_cost",
    "linear_backward",
    "linear_activation_backward",
    "L_model_backward",
    "update_parameters",
)


@cache
def _notebook():
    return nbformat.read(str(SOURCE), as_version=4)


def _solution_cells():
    return [
        cell
        for cell in _notebook().cells
        if cell.metadata.get("nbgrader", {}).get("solution")
        and cell.cell_type == "code"
    ]


def student_namespace(edits: dict[str, list] | None = None) -> dict:
    """Execute the setup and solution cells into one dict, as a kernel would.

    Args:
        edits: grade_id of a solution cell -> list of (old, new) replacements,
            each of which must match exactly once.
    """
    edits = edits or {}
    namespace: dict = {"__name__": "student"}
    for cell in _notebook().cells:
        meta = cell.metadata.get("nbgrader", {})
        if "setup" in cell.metadata.get("tags", []):
            exec(cell.source, namespace)  # noqa: S102 - our own notebook
        elif meta.get("solution") and cell.cell_type == "code":
            source = cell.source
            for old, new in edits.get(meta["grade_id"], ()):
                assert source.count(old) == 1, f"{old!r} in {meta['grade_id']}"
                source = source.replace(old, new)
            exec(source, namespace)  # noqa: S102
    return namespace


def with_mistake(mistake: dict) -> dict:
    return student_namespace({mistake["cell"]: mistake["replace"]})


def visible_cases(function: str) -> list[str]:
    return [name for name, case in tc.CASES.cases.items() if case.function == function]


def run_visible(namespace: dict, function: str) -> tuple[bool, str]:
    """Run the visible checks of ``function``; return (passed, printed text)."""
    out = io.StringIO()
    passed = True
    with contextlib.redirect_stdout(out):
        try:
            for name in visible_cases(function):
                tc.check(name, namespace[function])
        except Exception as error:  # noqa: BLE001 - any failure fails the cell
            passed = False
            print(f"{type(error).__name__}: {error}")
    return passed, out.getvalue()


def run_hidden(namespace: dict, function: str) -> str | None:
    """Run the hidden test of ``function``; return the error text, None if it passed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hidden.GRADER.grade(function, namespace)
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"
    return None


# --- the source notebook --------------------------------------------------------


def test_source_notebook_is_clean_and_has_ten_graded_cells_worth_100_points():
    assert hygiene_problems(SOURCE) == []
    cells = _notebook().cells
    tests = [
        c
        for c in cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]
    assert [c.metadata.nbgrader.grade_id for c in tests] == [
        f"test_{name}" for name in GRADED
    ]
    assert sum(c.metadata.nbgrader.points for c in tests) == 100
    assert [c.metadata.nbgrader.grade_id for c in _solution_cells()] == list(GRADED)
    nbgrader_cells = [c for c in cells if "nbgrader" in c.metadata]
    assert all(c.metadata.nbgrader.schema_version == 3 for c in nbgrader_cells)
    setup = [c for c in cells if "setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1 and setup[0].metadata.nbgrader.locked


def test_nbgrader_markers_appear_only_in_the_cells_they_belong_to():
    # nbgrader scans every cell, markdown included, for these markers.
    for cell in _notebook().cells:
        meta = cell.metadata.get("nbgrader", {})
        solution = meta.get("solution", False)
        test = meta.get("grade", False) and not solution
        for marker in ("BEGIN SOLUTION", "END SOLUTION"):
            assert cell.source.count(marker) == (1 if solution else 0), cell.source
        for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert cell.source.count(marker) == (1 if test else 0), cell.source


def test_every_test_cell_runs_its_visible_check_then_its_hidden_test():
    for cell in _notebook().cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or meta.get("solution"):
            continue  # not a test cell (a written answer is graded by hand)
        function = meta["grade_id"].removeprefix("test_")
        visible, _, hidden_part = cell.source.partition("### BEGIN HIDDEN TESTS")
        for name in visible_cases(function):
            assert f'tc.check("{name}", {function}' in visible
        assert f'hidden.GRADER.grade("{function}", globals())' in hidden_part
        assert hidden_part.rstrip().endswith("### END HIDDEN TESTS")


def test_reference_defines_the_ten_graded_functions():
    reference = reference_namespace(ASSIGNMENT)
    for name in GRADED:
        assert callable(reference[name]), name


def test_committed_expected_outputs_equal_a_fresh_computation():
    stored = json.loads((EXPECTED_DIR / f"{ASSIGNMENT}.json").read_text())
    fresh = json.loads(json.dumps(compute_expected(tc.CASES)))
    assert stored == fresh


#: What the seeds print for the visible inputs: (case, item) -> values.
SEED_PRINTS = {
    ("linear_forward", 0): [[3.26295337, -1.23429987]],
    ("linear_activation_forward_sigmoid", 0): [[0.96890023, 0.11013289]],
    ("linear_activation_forward_relu", 0): [[3.43896131, 0.0]],
    ("L_model_forward", 0): [[0.17007265, 0.2524272]],
    ("compute_cost", None): 0.41493159961539694,
    ("initialize_parameters", "W1"): [
        [0.01624345, -0.00611756],
        [-0.00528172, -0.01072969],
    ],
    ("initialize_parameters", "b1"): [[0.0], [0.0]],
    ("initialize_parameters", "W2"): [[0.00865408, -0.02301539]],
    ("initialize_parameters", "b2"): [[0.0]],
    ("initialize_parameters_deep", "W1"): [
        [0.01788628, 0.0043651, 0.00096497, -0.01863493, -0.00277388],
        [-0.00354759, -0.00082741, -0.00627001, -0.00043818, -0.00477218],
        [-0.01313865, 0.00884622, 0.00881318, 0.01709573, 0.00050034],
        [-0.00404677, -0.0054536, -0.01546477, 0.00982367, -0.01101068],
    ],
    ("initialize_parameters_deep", "b1"): [[0.0]] * 4,
    ("initialize_parameters_deep", "W2"): [
        [-0.01185047, -0.0020565, 0.01486148, 0.00236716],
        [-0.01023785, -0.00712993, 0.00625245, -0.00160513],
        [-0.00768836, -0.00230031, 0.00745056, 0.01976111],
    ],
    ("initialize_parameters_deep", "b2"): [[0.0]] * 3,
    ("linear_backward", 0): [
        [0.51822968, -0.19517421],
        [-0.40506361, 0.15255393],
        [2.37496825, -0.89445391],
    ],
    ("linear_backward", 1): [[-0.10076895, 1.40685096, 1.64992505]],
    ("linear_backward", 2): [[0.50629448]],
    ("linear_activation_backward_sigmoid", 0): [
        [0.11017994, 0.01105339],
        [0.09466817, 0.00949723],
        [-0.05743092, -0.00576154],
    ],
    ("linear_activation_backward_sigmoid", 1): [[0.10266786, 0.09778551, -0.01968084]],
    ("linear_activation_backward_sigmoid", 2): [[-0.05729622]],
    ("linear_activation_backward_relu", 0): [
        [0.44090989, 0.0],
        [0.37883606, 0.0],
        [-0.2298228, 0.0],
    ],
    ("linear_activation_backward_relu", 1): [[0.44513824, 0.37371418, -0.10478989]],
    ("linear_activation_backward_relu", 2): [[-0.20837892]],
    ("update_parameters", "W1"): [
        [-0.59562069, -0.09991781, -2.14584584, 1.82662008],
        [-1.76569676, -0.80627147, 0.51115557, -1.18258802],
        [-1.0535704, -0.86128581, 0.68284052, 2.20374577],
    ],
    ("update_parameters", "b1"): [[-0.04659241], [-1.28888275], [0.53405496]],
    ("update_parameters", "W2"): [[-0.55569196, 0.0354055, 1.32964895]],
    ("update_parameters", "b2"): [[-0.84610769]],
}


@pytest.mark.parametrize(("case", "item"), list(SEED_PRINTS))
def test_visible_outputs_reproduce_the_numbers_the_seeds_print(case, item):
    value = tc.expected(case)
    if item is not None:
        value = value[item]
    seed_value = SEED_PRINTS[case, item]
    assert np.shape(value) == np.shape(seed_value)
    np.testing.assert_allclose(value, seed_value, rtol=0, atol=1e-8)


def test_compute_cost_prints_exactly_the_seed_value():
    assert str(tc.expected("compute_cost")) == "0.41493159961539694"


def test_visible_L_model_backward_cases_have_consistent_caches():
    for name in visible_cases("L_model_backward"):
        AL, Y, caches = tc.inputs(name)
        A = caches[0][0][0]
        for layer, ((A_prev, W, b), Z) in enumerate(caches, start=1):
            np.testing.assert_array_equal(A_prev, A)
            np.testing.assert_allclose(Z, W @ A_prev + b, rtol=1e-12)
            last = layer == len(caches)
            A = 1 / (1 + np.exp(-Z)) if last else np.maximum(Z, 0)
        np.testing.assert_allclose(AL, A, rtol=1e-12)


def test_visible_cases_leave_the_global_random_state_alone():
    state = np.random.get_state()  # noqa: NPY002 - the legacy state is the point
    for name in tc.CASES.cases:
        tc.inputs(name)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1])
    assert state[2:] == after[2:]


def test_expected_output_cells_show_what_the_reference_prints():
    namespace = student_namespace()
    cells = _notebook().cells
    demos = set()
    for index, cell in enumerate(cells):
        if "expected-output" not in cell.metadata.get("tags", []):
            continue
        demos |= {name for name in GRADED if f"{name}(" in cell.source}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(cell.source, namespace)  # noqa: S102
        shown = cells[index + 1]
        assert shown.cell_type == "markdown"
        assert shown.source.startswith("**Expected output**")
        block = re.search(r"```\n(.*)\n```", shown.source, re.S)
        assert block, shown.source
        assert block.group(1) == out.getvalue().rstrip("\n")
    # Every graded function has one (L_model_forward and L_model_backward have
    # two: their L = 1 starter case first).
    assert demos == set(GRADED)


# --- visible and hidden tests on correct code -----------------------------------


@pytest.mark.parametrize("function", GRADED)
def test_hidden_test_passes_on_the_reference_namespace(function):
    hidden.GRADER.grade(function, dict(reference_namespace(ASSIGNMENT)))


@pytest.mark.parametrize("function", GRADED)
def test_visible_and_hidden_tests_pass_on_the_notebook_solutions(function):
    namespace = student_namespace()
    passed, text = run_visible(namespace, function)
    assert passed, text
    assert text.strip().endswith("All visible checks passed.")
    assert run_hidden(namespace, function) is None


def test_output_layer_shortcut_dZ_equals_AL_minus_Y_passes():
    start = "dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))"
    call = 'dA_prev, dW, db = linear_activation_backward(dAL, caches[L - 1], "sigmoid")'
    shortcut = "dA_prev, dW, db = linear_backward(AL - Y, caches[L - 1][0])"
    namespace = student_namespace({"L_model_backward": [(start, ""), (call, shortcut)]})
    assert run_visible(namespace, "L_model_backward")[0]
    assert run_hidden(namespace, "L_model_backward") is None


@pytest.mark.parametrize(
    "wrap", [float, np.float64, np.asarray, lambda c: np.asarray(c).reshape(())]
)
def test_compute_cost_may_return_a_float_a_numpy_scalar_or_a_0d_array(wrap):
    namespace = student_namespace()
    correct = namespace["compute_cost"]
    namespace["compute_cost"] = lambda AL, Y: wrap(correct(AL, Y))
    assert run_visible(namespace, "compute_cost")[0]
    assert run_hidden(namespace, "compute_cost") is None


def test_update_parameters_may_update_the_given_dict_in_place():
    body = textwrap.dedent(
        """
        def update_parameters(parameters, grads, learning_rate):
            for l in range(1, len(parameters) // 2 + 1):
                parameters[f"W{l}"] -= learning_rate * grads[f"dW{l}"]
                parameters[f"b{l}"] -= learning_rate * grads[f"db{l}"]
            return parameters
        """
    )
    namespace = student_namespace()
    exec(body, namespace)  # noqa: S102
    assert run_visible(namespace, "update_parameters")[0]
    assert run_hidden(namespace, "update_parameters") is None


def test_update_parameters_must_return_the_dict():
    namespace = student_namespace()
    correct = namespace["update_parameters"]
    namespace["update_parameters"] = lambda p, g, lr: correct(p, g, lr) and None
    passed, text = run_visible(namespace, "update_parameters")
    assert not passed and "expected a dict, got a NoneType" in text
    assert run_hidden(namespace, "update_parameters") is not None


# --- visible checks of functions that call earlier exercises ---------------------


def test_a_check_that_fails_because_of_an_earlier_exercise_says_so_without_failing():
    namespace = with_mistake(
        next(m for m in MISTAKES if m["name"] == "missing-1-over-m-in-dW")
    )
    for function in ("linear_activation_backward", "L_model_backward"):
        passed, text = run_visible(namespace, function)
        assert passed, text
        assert "not checked, because it calls linear_backward" in text


def test_a_stub_raises_not_implemented_but_a_stub_it_calls_only_skips_the_check():
    namespace = student_namespace()
    exec(  # noqa: S102
        "def linear_backward(dZ, cache):\n    raise NotImplementedError()",
        namespace,
    )
    passed, text = run_visible(namespace, "linear_backward")
    assert not passed and text.startswith("NotImplementedError")
    passed, text = run_visible(namespace, "linear_activation_backward")
    assert passed and "not checked" in text
    assert run_hidden(namespace, "linear_activation_backward") is None


def test_a_wrong_function_is_not_excused_when_what_it_calls_is_right():
    namespace = with_mistake(
        next(m for m in MISTAKES if m["name"] == "relu-backward-without-mask")
    )
    passed, text = run_visible(namespace, "linear_activation_backward")
    assert not passed and "CheckFailure" in text and "not checked" not in text


# --- typical mistakes -----------------------------------------------------------


def test_there_is_a_typical_mistake_for_every_graded_function():
    broken = {b for m in MISTAKES for b in m["breaks"]}
    assert broken == {f"test_{name}" for name in GRADED}


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m["name"] for m in MISTAKES])
def test_a_typical_mistake_costs_only_the_function_it_breaks(mistake):
    namespace = with_mistake(mistake)
    failed = {}
    for function in GRADED:
        passed, text = run_visible(namespace, function)
        hidden_error = run_hidden(namespace, function)
        if not passed or hidden_error:
            failed[f"test_{function}"] = (passed, text, hidden_error)
    assert sorted(failed) == sorted(mistake["breaks"])
    broken = mistake["breaks"][0]
    passed, text, hidden_error = failed[broken]
    # The hidden test alone fails too: the mistake cannot pass by luck of inputs.
    assert hidden_error is not None
    assert not passed
    assert mistake["message"] in text, text


# --- gradient checks --------------------------------------------------------------


def _largest_error(checks) -> float:
    return max(
        rel_error(analytical, numerical) for _, _, analytical, numerical in checks
    )


def test_gradient_checks_separate_correct_from_mistaken_backward_functions():
    reference = reference_namespace(ASSIGNMENT)
    by_name = {m["name"]: m for m in MISTAKES}
    correct = [
        _largest_error(hidden.linear_backward_gradients(reference["linear_backward"])),
        _largest_error(
            hidden.layer_backward_gradients(reference["linear_activation_backward"])
        ),
        _largest_error(
            hidden.model_backward_gradients(reference["L_model_backward"], reference)
        ),
    ]
    no_1_over_m = with_mistake(by_name["missing-1-over-m-in-dW"])["linear_backward"]
    no_mask = with_mistake(by_name["relu-backward-without-mask"])
    twice = student_namespace(
        {
            "L_model_backward": [
                ("1 - AL))", "1 - AL)) / AL.shape[1]"),
            ]
        }
    )
    wrong = [
        _largest_error(hidden.linear_backward_gradients(no_1_over_m)),
        _largest_error(
            hidden.layer_backward_gradients(no_mask["linear_activation_backward"])
        ),
        _largest_error(
            hidden.model_backward_gradients(twice["L_model_backward"], reference)
        ),
    ]
    # Measured: correct <= 6.5e-9, wrong >= 0.33 (autograder/hidden/deep_network.py).
    assert max(correct) < GRADCHECK_THRESHOLD / 100
    assert min(wrong) > GRADCHECK_THRESHOLD * 1e4


def test_gradient_check_alone_fails_a_mistake_the_comparison_would_also_catch():
    namespace = with_mistake(
        next(m for m in MISTAKES if m["name"] == "missing-1-over-m-in-dW")
    )
    with pytest.raises(AssertionError, match="gradient check"):
        for where, label, analytical, numerical in hidden.linear_backward_gradients(
            namespace["linear_backward"]
        ):
            hidden.GRADER.assert_gradient(label, analytical, numerical, where)


def test_check_failure_names_the_returned_item():
    namespace = student_namespace()
    correct = namespace["linear_backward"]

    def doubled_db(dZ, cache):
        dA_prev, dW, db = correct(dZ, cache)
        return dA_prev, dW, 2 * db

    with pytest.raises(CheckFailure, match=r"^linear_backward: db: "):
        tc.check("linear_backward", doubled_db)
