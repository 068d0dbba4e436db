"""``python -m autograder check NOTEBOOK``: self-study grading of one file."""

from __future__ import annotations

import json

import pytest
from fixture_course import (
    FIXTURE,
    _json,
    infinite_loop,
    mistake,
    source_nb,
    tree_digest,
)

from autograder.cli import main
from autograder.errors import NotebookNotRecognised
from autograder.selfcheck import identify_assignment

COURSE = ["--course", str(FIXTURE)]


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
