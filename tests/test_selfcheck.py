"""``python -m autograder check NOTEBOOK``: self-study grading of one file."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from fixture_course import (
    FIXTURE,
    _json,
    infinite_loop,
    mistake,
    source_nb,
    tree_digest,
)

from autograder import REPO_ROOT
from autograder.cli import main
from autograder.errors import NotebookNotRecognised
from autograder.hidden import Grader, describe_call
from autograder.selfcheck import hidden_inputs_report, identify_assignment
from autograder.source import graded_cells

COURSE = ["--course", str(FIXTURE)]


def source_notebook_04():
    """The solved notebook of assignment 04, as a student who finished it has it."""
    path = REPO_ROOT / "source" / "04_deep_network_step_by_step"
    return nbformat.read(str(path / "04_deep_network_step_by_step.ipynb"), 4)


def _student_folder(tmp_path, name, data):
    folder = tmp_path / "my work"
    folder.mkdir()
    (folder / name).write_bytes(data)
    return folder


def test_identifies_the_assignment_by_file_name(tmp_path):
    path = _student_folder(tmp_path, "mini.ipynb", b"{}") / "mini.ipynb"
    assert identify_assignment(path, FIXTURE) == ("mini", "mini.ipynb")


def test_identifies_a_renamed_copy_by_its_grade_ids(tmp_path):
    path = _student_folder(tmp_path, "homework (1).ipynb", _json(source_nb()))
    assert identify_assignment(path / "homework (1).ipynb", FIXTURE) == (
        "mini",
        "mini.ipynb",
    )


def test_says_clearly_when_it_cannot_tell(tmp_path, capsys):
    other = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    folder = _student_folder(tmp_path, "unrelated.ipynb", json.dumps(other).encode())
    with pytest.raises(NotebookNotRecognised, match="carries no nbgrader cell ids"):
        identify_assignment(folder / "unrelated.ipynb", FIXTURE)
    code = main(["check", str(folder / "unrelated.ipynb"), *COURSE])
    err = capsys.readouterr().err
    assert code == NotebookNotRecognised.exit_code
    assert "Known assignments: mini" in err and "--assignment" in err


def test_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.ipynb"), *COURSE]) == 2
    assert "no such notebook" in capsys.readouterr().err


@pytest.mark.slow
def test_grades_a_renamed_notebook_and_never_writes_beside_it(tmp_path, capsys):
    folder = _student_folder(
        tmp_path, "my attempt.ipynb", _json(mistake("mean-divides-by-n-minus-1"))
    )
    before = tree_digest(folder)
    code = main(
        ["check", str(folder / "my attempt.ipynb"), *COURSE, "--cell-timeout", "5"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert tree_digest(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["my attempt.ipynb"]
    assert "assignment mini" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["square"].split()[1:4] == ["10", "10", "passed:"]
    assert lines["mean"].split()[1:4] == ["0", "10", "failed:"]
    assert "expected 3.0" in lines["mean"]
    assert lines["total"].split()[1:3] == ["20", "30"]
    assert "BEGIN HIDDEN" not in out and "hidden check" not in out


@pytest.mark.slow
def test_reports_a_runaway_cell_with_the_assignment_given(tmp_path, capsys):
    folder = _student_folder(tmp_path, "loop.ipynb", _json(infinite_loop()))
    args = ["check", str(folder / "loop.ipynb"), *COURSE, "--assignment", "mini"]
    assert main([*args, "--cell-timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert "outcome: timed out" in out and "cell limit (2 s)" in out
    assert [p.name for p in folder.iterdir()] == ["loop.ipynb"]


# --- --verbose: the shapes of the hidden tests' inputs ----------------------------


def test_hidden_inputs_are_what_the_test_gives_compare_and_nothing_is_run():
    grader = Grader("04_deep_network_step_by_step")
    calls = []

    def student(A, W, b):
        calls.append("student ran")
        return W @ A + b, (A, W, b)

    @grader.test("linear_forward")
    def _test(namespace, reference):
        A, W, b = np.ones((5, 2)), np.ones((3, 5)), np.ones((3, 1))
        inputs = [((A, W, b), {}), ((A[:1], W[:, :1], b), {}), ((A, W, b), {})]
        grader.compare(
            namespace, reference, "linear_forward", inputs, arg_names=("A", "W", "b")
        )

    assert grader.hidden_inputs("linear_forward") == [
        "A (5, 2), W (3, 5), b (3, 1)",
        "A (1, 2), W (3, 1), b (3, 1)",
    ]
    assert calls == []
    # Recording is over: grading compares for real again.
    grader.grade("linear_forward", {"linear_forward": student})
    assert calls == ["student ran"] * 3


def test_describe_call_shows_keyword_settings_and_the_arrays_of_a_dict():
    parameters = {"W1": np.zeros((4, 3)), "b1": np.zeros((4, 1))}
    text = describe_call(
        (np.zeros((3, 7)), parameters, [3, 4, 1]),
        {"learning_rate": 0.0075, "num_iterations": 5},
        ("X", "parameters", "layer_dims"),
    )
    assert text == (
        "X (3, 7), parameters {W1 (4, 3), b1 (4, 1)}, layer_dims [3, 4, 1], "
        "learning_rate 0.0075, num_iterations 5"
    )


def test_verbose_report_lists_every_graded_function_with_its_hidden_shapes():
    report = hidden_inputs_report(REPO_ROOT, "04_deep_network_step_by_step")
    lines = report.splitlines()
    functions = [
        line.strip()
        for line in lines
        if line.startswith("  ") and not line.startswith("    ")
    ]
    assert functions == [
        c.function for c in graded_cells("04_deep_network_step_by_step")
    ]
    assert "    A (5, 7), W (3, 5), b (3, 1)" in lines
    assert "    AL (1, 6), Y (1, 6), caches (list of 4)" in lines
    assert all(len(line) <= 100 for line in lines), report
    assert "BEGIN HIDDEN" not in report


def test_verbose_report_says_so_when_the_hidden_tests_list_nothing():
    report = hidden_inputs_report(FIXTURE, "mini")
    assert "the hidden tests of mini do not list their inputs" in report


@pytest.mark.slow
def test_check_verbose_prints_the_table_then_the_hidden_shapes(tmp_path, capsys):
    folder = _student_folder(
        tmp_path, "04_deep_network_step_by_step.ipynb", _json(source_notebook_04())
    )
    code = main(
        ["check", str(folder / "04_deep_network_step_by_step.ipynb"), "--verbose"]
    )
    out = capsys.readouterr().out
    assert code == 0
    table, _, shapes = out.partition("Inputs of the hidden tests, by shape")
    assert "L_model_backward" in table and "total" in table
    assert "  L_model_backward\n    AL (1, 5), Y (1, 5), caches (list of 2)" in shapes
