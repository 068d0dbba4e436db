"""Every nbgrader entry point grades the same cheating notebook the same way.

The course's ``nbgrader_config.py`` plugs the intake, the sandbox and the
verified scores into nbgrader's own autograde converter. Graded three ways —
stock ``nbgrader autograde``, the formgrader's *Autograde* button (its REST
handler calls ``NbGraderAPI.autograde``) and ``python -m autograder grade`` —
a class of an honest student, a typical mistake and a blank notebook whose
extra cell fakes every check (and the in-kernel hidden grader) gets the same
per-cell scores; the faker scores 0 and is ``flagged`` in nbgrader's gradebook;
a submission holding a link to the solutions is refused before it runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import (
    FAKE_CHECKS,
    apply_mistake,
    load_mistakes,
    source_notebook,
    with_cell,
)

from autograder import REPO_ROOT

pytestmark = pytest.mark.slow

A04 = "04_deep_network_step_by_step"
NAME = f"{A04}.ipynb"
STUDENTS = ("honest", "mistake", "faker")


def _course(base: Path) -> Path:
    course = base / "course"
    for folder in ("source", "release"):
        shutil.copytree(REPO_ROOT / folder / A04, course / folder / A04)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    source = nbformat.read(str(source_notebook(A04)), as_version=4)
    blank = nbformat.read(str(REPO_ROOT / "release" / A04 / NAME), as_version=4)
    mistake = next(
        m for m in load_mistakes(A04) if m["name"] == "missing-1-over-m-in-dW"
    )
    notebooks = {
        "honest": source,
        "mistake": apply_mistake(source, mistake),
        "faker": with_cell(blank, FAKE_CHECKS),
        "linker": blank,
    }
    for student, nb in notebooks.items():
        folder = course / "submitted" / student / A04
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / NAME))
    os.symlink(
        f"../../../source/{A04}/{NAME}",
        course / "submitted" / "linker" / A04 / "answers.ipynb",
    )
    return course


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], course: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=course, env=_env(), capture_output=True, text=True, timeout=1800
    )


def _gradebook(course: Path) -> dict:
    """``{student: ({grade id: score}, flagged)}`` from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.find_assignment(A04).submissions:
            for nb in submission.notebooks:
                scores = {g.name: g.score for g in nb.grades}
                out[submission.student.id] = (scores, nb.flagged)
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    results = {}
    nbgrader = [sys.executable, "-m", "nbgrader"]

    course = _course(tmp_path_factory.mktemp("stock"))
    assert (
        _run([*nbgrader, "generate_assignment", A04, "--force"], course).returncode == 0
    )
    stock = _run([*nbgrader, "autograde", A04, "--force"], course)
    results["nbgrader autograde"] = (course, stock, _gradebook(course))

    course = _course(tmp_path_factory.mktemp("formgrader"))
    assert (
        _run([*nbgrader, "generate_assignment", A04, "--force"], course).returncode == 0
    )
    button = (
        "import json, sys\n"
        "from nbgrader.apps import NbGraderAPI\n"
        "from nbgrader.coursedir import CourseDirectory\n"
        "from traitlets.config import Config\n"
        "from nbgrader.apps.baseapp import NbGrader\n"
        "app = NbGrader()\n"
        "app.load_config_file()\n"
        "coursedir = CourseDirectory(config=app.config)\n"
        "api = NbGraderAPI(coursedir=coursedir, config=app.config)\n"
        f"for student in {[*STUDENTS, 'linker']!r}:\n"
        f"    result = api.autograde({A04!r}, student)\n"
        "    print(student, result['success'])\n"
        # What the formgrader shows after pressing the button.
        "    print(result.get('log', ''), result.get('error', ''))\n"
    )
    proc = _run([sys.executable, "-c", button], course)
    results["formgrader"] = (course, proc, _gradebook(course))

    course = _course(tmp_path_factory.mktemp("autograder"))
    proc = _run([sys.executable, "-m", "autograder", "grade", "--no-progress"], course)
    results["autograder grade"] = (course, proc, _gradebook(course))
    return results


def test_every_entry_point_gives_the_same_scores(graded):
    table = {name: gradebook for name, (_, _, gradebook) in graded.items()}
    reference = table["autograder grade"]
    assert sum(reference["honest"][0].values()) == 100
    assert sum(reference["mistake"][0].values()) == 90
    assert sum(reference["faker"][0].values()) == 0
    for name, gradebook in table.items():
        for student in STUDENTS:
            assert gradebook[student][0] == reference[student][0], (name, student)


def test_the_faker_is_flagged_everywhere(graded):
    for name, (_, _, gradebook) in graded.items():
        assert gradebook["faker"][1] is True, name
        assert gradebook["honest"][1] is False, name


def test_a_linked_solution_is_refused_before_it_runs(graded):
    for name, (_, proc, gradebook) in graded.items():
        scores = gradebook.get("linker", ({}, False))[0]
        assert sum(v or 0 for v in scores.values()) == 0, name
        assert "answers.ipynb is a symbolic link" in proc.stdout + proc.stderr, name
