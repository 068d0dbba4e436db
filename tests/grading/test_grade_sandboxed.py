"""`autograder grade` on a real assignment: sandboxed kernels, verified scores.

A small class for assignment 04 is graded through the CLI with the default
settings (bubblewrap sandbox, scores verified outside the student's process):
the reference earns full marks, a typical mistake loses its own points, and a
student who monkeypatches numpy's comparisons so that every visible check passes
earns nothing for the broken function, with the disagreement flagged in the
export. A cell that tries to read the solutions finds nothing to read.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import (
    CHEAT_ALLCLOSE,
    apply_mistake,
    load_mistakes,
    source_notebook,
    with_cell,
    write_submissions,
)

from autograder import REPO_ROOT
from autograder.cli import main

pytestmark = pytest.mark.slow

ASSIGNMENT = "04_deep_network_step_by_step"
NAME = f"{ASSIGNMENT}.ipynb"

SNOOP = (
    "import pathlib\n"
    "hits = [str(p) for p in pathlib.Path('/').glob('**/source/04_*/*.ipynb')]\n"
    "print('FOUND', hits)\n"
)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    course = tmp_path_factory.mktemp("sandboxed-class")
    for folder in ("source", "release"):
        shutil.copytree(REPO_ROOT / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    source = nbformat.read(str(source_notebook(ASSIGNMENT)), as_version=4)
    mistake = next(
        m for m in load_mistakes(ASSIGNMENT) if m["name"] == "missing-1-over-m-in-dW"
    )
    students = {
        "reference": source,
        "mistake": apply_mistake(source, mistake),
        "cheat-allclose": with_cell(apply_mistake(source, mistake), CHEAT_ALLCLOSE),
        "snoop-solutions": with_cell(source, SNOOP),
    }
    write_submissions(course, ASSIGNMENT, students)
    code = main(["grade", "--course", str(course), "--no-progress"])
    return course, code


def _export(course, capsys):
    capsys.readouterr()
    assert main(["export", "--course", str(course)]) == 0
    return {
        r["student"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))
    }


def test_grading_completes(graded_class):
    _, code = graded_class
    assert code == 0


def test_verified_scores_and_flags(graded_class, capsys):
    course, _ = graded_class
    rows = _export(course, capsys)
    assert rows["reference"]["total"] == "100" and rows["reference"]["flags"] == ""
    assert rows["mistake"]["total"] == "90"
    assert rows["mistake"]["test_linear_backward"] == "0"
    cheat = rows["cheat-allclose"]
    assert cheat["test_linear_backward"] == "0", "monkeypatched checks earned points"
    assert cheat["total"] == "90"
    assert "disagreement test_linear_backward" in cheat["flags"]
    assert "unsandboxed" not in "".join(r["flags"] for r in rows.values())


@pytest.fixture(scope="module")
def blank_class(tmp_path_factory):
    """Every assignment's blank student copy, graded sandboxed."""
    course = tmp_path_factory.mktemp("blank-class")
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    assignments = sorted(p.name for p in (REPO_ROOT / "source").iterdir())
    for assignment in assignments:
        for folder in ("source", "release"):
            shutil.copytree(
                REPO_ROOT / folder / assignment, course / folder / assignment
            )
        submitted = course / "submitted" / "blank" / assignment
        submitted.mkdir(parents=True)
        name = f"{assignment}.ipynb"
        shutil.copy(REPO_ROOT / "release" / assignment / name, submitted / name)
    code = main(["grade", "--course", str(course), "--no-progress"])
    return course, code, assignments


def test_blank_copies_score_zero_without_flags(blank_class, capsys):
    """A check skipped because an earlier exercise is missing is not a disagreement.

    In the notebook run such a cell passes (its check prints "not checked" and
    the hidden tests run elsewhere); the verified run gives 0. Only the verified
    score counts, and nothing is flagged for the instructor to look at.
    """
    course, code, assignments = blank_class
    assert code == 0
    capsys.readouterr()
    assert main(["export", "--course", str(course)]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["assignment"] for r in table) == assignments
    for row in table:
        assert row["outcome"] == "graded", row
        assert row["total"] == "0", row
        assert row["flags"] == "", row


def test_student_code_cannot_see_the_solutions(graded_class):
    course, _ = graded_class
    nb = nbformat.read(
        str(course / "autograded" / "snoop-solutions" / ASSIGNMENT / NAME),
        as_version=4,
    )
    printed = "".join(
        o.get("text", "") for o in nb.cells[3].get("outputs", []) if "text" in o
    )
    assert "FOUND []" in printed, printed


def test_require_sandbox_fails_clearly_without_bubblewrap(tmp_path, monkeypatch):
    course = tmp_path / "course"
    shutil.copytree(REPO_ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    folder = course / "submitted" / "someone" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(source_notebook(ASSIGNMENT), folder / NAME)
    # Only this interpreter's folder on PATH: no bwrap to be found.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert (
        main(["grade", "--course", str(course), "--require-sandbox", "--no-progress"])
        == 2
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("memory", "expected NAME=VALUE"),
        ("memory=lots", "expected a whole number"),
        ("nosuch=1", "unknown sandbox limit"),
    ],
)
def test_bad_limit_options_are_usage_errors(option, message, tmp_path, capsys):
    course = tmp_path / "course"
    shutil.copytree(REPO_ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    folder = course / "submitted" / "someone" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(source_notebook(ASSIGNMENT), folder / NAME)
    try:
        code = main(["grade", "--course", str(course), "--limit", option])
    except SystemExit as exit_:  # argparse rejects malformed values itself
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_memory_limit_given_on_the_command_line_is_enforced(tmp_path, capsys):
    """A 64 MiB address-space limit cannot even start a numpy kernel: the
    pre-flight's reference solution does not start, so nobody is graded (a
    class of zeros would be wrong) and the command says why."""
    course = tmp_path / "course"
    for folder in ("source", "release"):
        shutil.copytree(REPO_ROOT / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    folder = course / "submitted" / "someone" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(source_notebook(ASSIGNMENT), folder / NAME)
    code = main(
        ["grade", "--course", str(course), "--no-progress", "--limit", "memory=64M"]
    )
    err = capsys.readouterr().err
    assert code == 7, err
    assert "pre-flight of 04_deep_network_step_by_step failed" in err
    assert "reference solution: kernel died: the kernel did not start" in err
    assert not (course / "gradebook.db").exists()
