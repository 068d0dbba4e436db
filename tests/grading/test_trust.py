"""A class with every way a grade could go wrong, graded by the stock command.

The class holds, for assignments 01 and 04, an honest student, the blank
release, a boundary bug that only the visible check catches (``A >= 0.5`` in
01's ``predict``), a blank notebook whose extra cell fakes every check in the
student's kernel, and every kind of link a submission can carry (to the
solutions, to a classmate, to the gradebook, to ``/dev/zero``, to itself, the
notebook, the assignment folder and the student folder). ``python -m autograder
grade`` must give each a definite, right outcome with its reason, store every
student's grade, and flag what an instructor must look at. ``check`` must give
exactly the points ``grade`` gives, function by function.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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

A01 = "01_logistic_regression"
A04 = "04_deep_network_step_by_step"
#: Every typical mistake of these is graded and checked (05's trainings take
#: minutes per notebook in the sandbox: its mistakes are graded in
#: tests/grading/test_nbgrader_grading.py instead).
WITH_MISTAKES = (A01, "02_one_hidden_layer", "03_softmax", A04)


def _nb(assignment: str):
    return nbformat.read(str(source_notebook(assignment)), as_version=4)


def _blank(assignment: str):
    path = REPO_ROOT / "release" / assignment / f"{assignment}.ipynb"
    return nbformat.read(str(path), as_version=4)


def _mistake(assignment: str, name: str):
    found = [m for m in load_mistakes(assignment) if m["name"] == name]
    assert found, f"no mistake fixture {name} for {assignment}"
    return apply_mistake(_nb(assignment), found[0])


def _write(course: Path, student: str, assignment: str, nb) -> Path:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{assignment}.ipynb"))
    return folder


def _build(course: Path) -> None:
    for assignment in WITH_MISTAKES:
        for folder in ("source", "release"):
            shutil.copytree(
                REPO_ROOT / folder / assignment, course / folder / assignment
            )
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    (course / "gradebook.db").write_bytes(b"")  # a link target, replaced later
    for assignment in (A01, A04):
        _write(course, "honest", assignment, _nb(assignment))
        _write(course, "blank", assignment, _blank(assignment))
        _write(course, "faker", assignment, with_cell(_blank(assignment), FAKE_CHECKS))
    _write(course, "boundary", A01, _mistake(A01, "predict-threshold-at-or-above-half"))
    for assignment in WITH_MISTAKES:
        for mistake in load_mistakes(assignment):
            if mistake["name"] != "predict-threshold-at-or-above-half":
                student = f"mistake-{mistake['name']}"[:60]
                _write(
                    course, student, assignment, apply_mistake(_nb(assignment), mistake)
                )
    name = f"{A04}.ipynb"
    # The notebook itself is a link into source/.
    folder = course / "submitted" / "nb-link" / A04
    folder.mkdir(parents=True)
    os.symlink(f"../../../source/{A04}/{name}", folder / name)
    # The assignment folder is a link to source/<a>.
    (course / "submitted" / "folder-link").mkdir()
    os.symlink(f"../../source/{A04}", course / "submitted" / "folder-link" / A04)
    # The student folder is a link to source/ (which holds <a>/).
    os.symlink("../source", course / "submitted" / "student-link")
    # Extra files linked to the solutions, a classmate, the gradebook,
    # /dev/zero, and two links to the folder itself.
    for student, links in {
        "extra-source": {"answers.ipynb": f"../../../source/{A04}/{name}"},
        "extra-classmate": {"friend.ipynb": f"../../honest/{A04}/{name}"},
        "extra-gradebook": {"grades.txt": "../../../gradebook.db"},
        "extra-devzero": {"zeros.bin": "/dev/zero"},
        "self-links": {"a": ".", "b": "."},
    }.items():
        folder = _write(course, student, A04, _blank(A04))
        for link, target in links.items():
            os.symlink(target, folder / link)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    course = tmp_path_factory.mktemp("trust") / "course"
    course.mkdir()
    _build(course)
    (course / "gradebook.db").unlink()
    # The stock way: from the course directory, no --course.
    proc = _run("grade", "--no-progress", cwd=course)
    outcomes = json.loads((course / "grading_outcomes.json").read_text())
    records = {(r["student"], r["assignment"]): r for r in outcomes}
    return course, proc, records


def test_the_run_completes_and_stores_every_student(graded):
    course, proc, records = graded
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        stored = {
            (s.student.id, a)
            for a in WITH_MISTAKES
            for s in gb.find_assignment(a).submissions
        }
    assert stored == set(records)


@pytest.mark.parametrize(
    ("student", "path"),
    [
        ("nb-link", f"nb-link/{A04}/{A04}.ipynb is a symbolic link"),
        ("folder-link", f"the submission folder folder-link/{A04}/ is a symbolic"),
        ("student-link", "the student folder student-link/ is a symbolic link"),
        ("extra-source", f"extra-source/{A04}/answers.ipynb is a symbolic link"),
        ("extra-classmate", f"extra-classmate/{A04}/friend.ipynb is a symbolic"),
        ("extra-gradebook", f"extra-gradebook/{A04}/grades.txt is a symbolic link"),
        ("extra-devzero", f"extra-devzero/{A04}/zeros.bin is a symbolic link"),
        ("self-links", f"self-links/{A04}/a is a symbolic link"),
    ],
)
def test_every_link_is_refused_with_a_reason_and_scores_zero(graded, student, path):
    _, proc, records = graded
    record = records[(student, A04)]
    assert record["outcome"] == "refused"
    assert path in record["reason"]
    assert record["score"] == 0
    assert record["flags"]["refused"] is True
    assert student in proc.stdout  # the run's table lists it


def test_honest_blank_boundary_and_faker_get_their_right_scores(graded):
    _, _, records = graded
    for assignment in (A01, A04):
        assert records[("honest", assignment)]["score"] == 100
        assert records[("honest", assignment)]["flags"]["disagreement"] == []
        assert records[("blank", assignment)]["score"] == 0
        assert records[("blank", assignment)]["flags"]["disagreement"] == []
        faker = records[("faker", assignment)]
        assert faker["outcome"] == "graded" and faker["score"] == 0
        # Its own kernel passed every faked check; the grader's run of them
        # did not. (01's prepare_images cell also checks train_x, which the
        # blank notebook never made: that fails in both runs, no flag.)
        tests = {gid for gid in faker["scores"] if gid.startswith("test_")}
        faked = tests - {"test_prepare_images"}
        assert set(faker["flags"]["disagreement"]) == faked
    boundary = records[("boundary", A01)]
    assert boundary["score"] == 85
    assert boundary["scores"]["test_predict"] == [0.0, 15.0]
    cell = boundary["cells"]["test_predict"]
    assert cell["visible"] == "failed" and "0.5" in cell["message"]
    assert boundary["flags"]["disagreement"] == []


def test_export_and_feedback_read_the_flags(graded):
    course, _, _ = graded
    proc = _run("export", cwd=course)
    assert proc.returncode == 0, proc.stderr
    rows = {
        (r["student"], r["assignment"]): r
        for r in csv.DictReader(io.StringIO(proc.stdout))
    }
    assert rows[("nb-link", A04)]["flags"] == "refused"
    assert "disagreement test_linear_forward" in rows[("faker", A04)]["flags"]
    assert rows[("honest", A04)]["flags"] == ""
    assert _run("feedback", cwd=course).returncode == 0
    report = next((course / "feedback" / "extra-devzero" / A04).glob("*.html"))
    text = report.read_text()
    assert "refused" in text and "zeros.bin is a symbolic link" in text


def _check(notebook: Path) -> dict[str, float]:
    """Run ``check`` as a learner would; read the points column of its table."""
    proc = _run("check", str(notebook), cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every assignment has a written answer: check says who grades it.
    assert "graded by your instructor" in proc.stdout, proc.stdout
    functions = set(_source_functions(notebook.stem))
    points = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if not line[:1].isspace() and len(parts) >= 3 and parts[0] in functions:
            points[f"test_{parts[0]}"] = float(parts[1])
    return points


def _source_functions(assignment: str) -> list[str]:
    nb = nbformat.read(str(source_notebook(assignment)), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id", "") for c in nb.cells]
    return [i[len("test_") :] for i in ids if i.startswith("test_")]


def test_check_gives_the_points_grade_gives(graded, tmp_path):
    """Same per-function points from ``check`` as from ``grade``: the honest,
    blank, boundary and faker notebooks of 01 and 04, and every typical mistake
    of 01 to 04."""
    course, _, records = graded
    cases = [
        (student, assignment)
        for (student, assignment), record in records.items()
        if record["outcome"] == "graded"
    ]
    notebooks = {}
    for student, assignment in cases:
        folder = tmp_path / f"{student}-{assignment}"
        folder.mkdir()
        src = course / "submitted" / student / assignment / f"{assignment}.ipynb"
        notebooks[(student, assignment)] = Path(shutil.copy(src, folder))
    with ThreadPoolExecutor(2) as pool:
        checked = dict(
            zip(notebooks, pool.map(_check, notebooks.values()), strict=True)
        )
    for key, points in checked.items():
        graded_points = {
            k: v[0] for k, v in records[key]["scores"].items() if k.startswith("test_")
        }
        assert points == graded_points, key
