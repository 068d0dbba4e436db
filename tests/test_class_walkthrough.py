"""One simulated class, start to finish, through the stock nbgrader workflow.

A course directory outside the repository (in tmp) with a real exchange folder
and assignment ``03_softmax``; nbgrader's late penalty plugin set to ``zero``:

- the instructor adds three students, generates and releases the assignment;
- each student fetches it, answers it and submits with ``nbgrader submit``:
  ``ada`` on time with correct answers, ``cy`` on time with a cell that makes
  ``np.allclose`` and ``np.isclose`` always agree (and a wrong ``softmax``),
  ``bob`` with correct answers after the due date;
- the instructor collects, grades with stock ``nbgrader autograde`` (the
  course's ``nbgrader_config.py`` makes it sandboxed and verified), then with
  ``python -m autograder grade`` and again with ``--seed`` of that run,
  writes the project's feedback (``python -m autograder feedback``: after
  ``grade``, nbgrader's own ``generate_feedback`` shows the scores without the
  grader's reasons), releases it with stock ``nbgrader release_feedback`` and
  exports for Canvas; the students fetch their feedback with
  ``nbgrader fetch_feedback``; an extension granted to ``bob`` lifts his
  penalty at the next regrade.

Run with ``CLASS_WALKTHROUGH_TRANSCRIPT=/some/file.md`` to keep the commands
and their output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from conftest import user_env

from autograder import REPO_ROOT

pytestmark = pytest.mark.slow

ASSIGNMENT = "03_softmax"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "nn-walkthrough"
STUDENTS = {
    "ada": ("Ada", "Lovelace", "ada@uni.example", "101"),
    "bob": ("Bob", "Late", "bob@uni.example", "102"),
    "cy": ("Cy", "Cheat", "cy@uni.example", "103"),
}
#: The cheater's extra cell: every comparison the checks make agrees.
CHEAT = """\
import numpy as np

def _all_true(a, b, *args, **kwargs):
    return np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, dtype=bool)

np.allclose = lambda *args, **kwargs: True
np.isclose = _all_true
"""
AUTOGRADED_POINTS = 100.0  # 10 functions; the written answer (5) is graded by hand
VOLATILE = ("duration", "peak_rss_mb", "timing")


class Transcript:
    """Run commands as the instructor or a student and keep what they print."""

    def __init__(self, base: Path):
        self.base = base
        self.lines: list[str] = []

    def run(self, cwd: Path, home: Path, *argv: str) -> str:
        env = user_env(home)
        command = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
        )
        said = (done.stdout + done.stderr).replace(str(self.base), "$CLASS")
        where = str(cwd).replace(str(self.base), "$CLASS")
        self.lines += [f"$ cd {where} && {shlex.join(argv)}", said.rstrip(), ""]
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{said}"
        return said

    def note(self, text: str) -> None:
        self.lines += [f"# {text}", ""]

    def markdown(self) -> str:
        return "```\n" + "\n".join(self.lines) + "\n```\n"


def _answered(fetched: Path, *, cheat: bool) -> nbformat.NotebookNode:
    """The fetched notebook with every function answered (the reference's
    code), or, for the cheater, a wrong softmax and the cheating cell."""
    nb = nbformat.read(str(fetched), as_version=4)
    source = nbformat.read(str(REPO_ROOT / "source" / ASSIGNMENT / NOTEBOOK), 4)
    reference = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
    }
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cheat and gid == "softmax":
            cell.source = "def softmax(Z):\n    return Z\n"
        elif not cheat and gid in reference:
            cell.source = reference[gid]
    if cheat:
        added = nbformat.v4.new_code_cell(CHEAT)
        if nb.nbformat_minor < 5:  # cell ids came with nbformat 4.5
            del added["id"]
        nb.cells.insert(3, added)
    return nb


def _gradebook(course: Path) -> dict:
    """``{student: (raw score, late penalty, seconds late, flagged, extension)}``."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(ASSIGNMENT)
        out["duedate"] = assignment.duedate
        for sub in assignment.submissions:
            out[sub.student.id] = (
                sum(g.score for nb in sub.notebooks for g in nb.grades),
                float(sub.late_submission_penalty or 0.0),
                sub.total_seconds_late,
                any(nb.flagged for nb in sub.notebooks),
                sub.extension,
            )
    return out


def _outcomes(course: Path) -> dict:
    records = json.loads((course / "grading_outcomes.json").read_text())
    return {r["student"]: r for r in records}


def _stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def _set_up(tmp: Path) -> dict:
    paths = {"course": tmp / "course", "exchange": tmp / "exchange"}
    paths["instructor"] = tmp / "instructor-home"
    for folder in (paths["exchange"], paths["instructor"]):
        folder.mkdir(parents=True)
    paths["exchange"].chmod(0o777)
    shutil.copytree(
        REPO_ROOT / "source" / ASSIGNMENT, paths["course"] / "source" / ASSIGNMENT
    )
    (paths["course"] / "nbgrader_config.py").write_text(
        (REPO_ROOT / "nbgrader_config.py").read_text() + "\n# This class\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(paths['exchange'])!r}\n"
        'c.LateSubmissionPlugin.penalty_method = "zero"\n'
    )
    for student in STUDENTS:
        home = tmp / f"{student}-home"
        (home / "work").mkdir(parents=True)
        (home / "work" / "nbgrader_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.Exchange.root = {str(paths['exchange'])!r}\n"
            f"c.Exchange.cache = {str(home / 'cache')!r}\n"
        )
        paths[student] = home
    return paths


def _submit(t: Transcript, paths: dict, student: str) -> None:
    home = paths[student]
    work = home / "work"
    t.run(work, home, "nbgrader", "fetch_assignment", ASSIGNMENT)
    fetched = work / ASSIGNMENT / NOTEBOOK
    nbformat.write(_answered(fetched, cheat=student == "cy"), str(fetched))
    t.run(work, home, "nbgrader", "submit", ASSIGNMENT, f"--student={student}")


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    tmp = tmp_path_factory.mktemp("class")
    paths = _set_up(tmp)
    course, me = paths["course"], paths["instructor"]
    t = Transcript(tmp)
    seen: dict = {"paths": paths}

    t.note("instructor: students, then generate and release the assignment")
    for sid, (first, last, email, lms) in STUDENTS.items():
        t.run(course, me, "nbgrader", "db", "student", "add", sid,
              f"--first-name={first}", f"--last-name={last}", f"--email={email}",
              f"--lms-user-id={lms}")  # fmt: skip
    t.run(course, me, "nbgrader", "generate_assignment", ASSIGNMENT)
    t.run(course, me, "nbgrader", "release_assignment", ASSIGNMENT)

    t.note("students: fetch, answer, submit (ada and cy on time, bob late)")
    _submit(t, paths, "ada")
    _submit(t, paths, "cy")
    time.sleep(1.5)
    due = datetime.now(timezone.utc)
    seen["due"] = due
    time.sleep(1.5)
    _submit(t, paths, "bob")
    stamp = due.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    t.note(f"instructor: the due date was {stamp}; collect and autograde")
    t.run(course, me, "nbgrader", "db", "assignment", "add", ASSIGNMENT,
          f"--duedate={stamp}")  # fmt: skip
    t.run(course, me, "nbgrader", "collect", ASSIGNMENT)
    seen["autograde_said"] = t.run(course, me, "nbgrader", "autograde", ASSIGNMENT)
    seen["stock"] = _gradebook(course)

    t.note("the project's grader on the same class, then again with its seed")
    t.run(course, me, "python", "-m", "autograder", "grade", "--no-progress")
    seen["grade"], seen["outcomes"] = _gradebook(course), _outcomes(course)
    seed = seen["outcomes"]["ada"]["run_seed"]
    seen["seed_said"] = t.run(
        course, me, "python", "-m", "autograder", "grade", "--no-progress",
        f"--seed={seed}",
    )  # fmt: skip
    seen["again"] = _outcomes(course)

    t.note("feedback through the exchange, then the Canvas export")
    t.run(course, me, "python", "-m", "autograder", "feedback")
    t.run(course, me, "nbgrader", "release_feedback", ASSIGNMENT)
    for student in STUDENTS:
        home = paths[student]
        t.run(home / "work", home, "nbgrader", "fetch_feedback", ASSIGNMENT)
    seen["canvas"] = t.run(
        course, me, "python", "-m", "autograder", "export", "--format", "canvas"
    )
    seen["long"] = t.run(course, me, "python", "-m", "autograder", "export")

    t.note("bob gets a 1-hour extension; his regrade drops the penalty")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.grant_extension(ASSIGNMENT, "bob", hours=1)
    t.run(course, me, "python", "-m", "autograder", "grade", "--no-progress",
          "--student=bob")  # fmt: skip
    seen["extended"] = _gradebook(course)
    seen["long_after"] = t.run(course, me, "python", "-m", "autograder", "export")

    keep = os.environ.get("CLASS_WALKTHROUGH_TRANSCRIPT")
    if keep:
        Path(keep).write_text(t.markdown(), encoding="utf-8")
    return seen


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text[text.index("Student,") :])))


@pytest.mark.parametrize("entry", ["stock", "grade"])
def test_scores_penalty_and_flag_by_each_entry_point(walked, entry):
    book = walked[entry]
    # on time, correct: full autograded marks, no penalty, not flagged
    assert book["ada"][:4] == (AUTOGRADED_POINTS, 0.0, 0, False)
    # correct but late: raw marks kept, the "zero" policy takes them all
    raw, penalty, late, flagged, _ = book["bob"]
    assert (raw, penalty, flagged) == (AUTOGRADED_POINTS, AUTOGRADED_POINTS, False)
    assert 1.0 < late < 60.0
    # the cheater: no unearned point, and a human is asked to look
    assert book["cy"][:4] == (0.0, 0.0, 0, True)


def test_stock_autograde_reports_no_error_and_the_late_penalty(walked):
    said = walked["autograde_said"]
    assert "| ERROR]" not in said
    assert "Late submission penalty: 100.0" in said


def test_grade_keeps_the_due_date_the_instructor_set(walked):
    due = walked["grade"]["duedate"]
    assert due == walked["due"].replace(tzinfo=None)
    assert walked["stock"]["duedate"] == due


def test_outcomes_record_lateness_flags_and_the_seed(walked):
    records = walked["outcomes"]
    assert records["bob"]["late_penalty"] == AUTOGRADED_POINTS
    assert records["ada"]["late_penalty"] is None
    assert records["cy"]["flags"]["disagreement"] == ["test_softmax"]
    assert (
        "the verified score 0/10 counts"
        in records["cy"]["cells"]["test_softmax"]["message"]
    )
    seeds = {r["run_seed"] for r in records.values()}
    assert len(seeds) == 1 and isinstance(seeds.pop(), int)


def test_the_same_seed_gives_the_same_outcomes(walked):
    first, again = walked["outcomes"], walked["again"]
    seed = first["ada"]["run_seed"]
    assert (
        f"verified run seeds (given by --seed): {{'{ASSIGNMENT}': {seed}}}"
        in (walked["seed_said"])
    )
    for student in STUDENTS:
        assert again[student]["run_seed"] == seed
        assert _stable(again[student]) == _stable(first[student])


def test_each_student_fetches_feedback_without_hidden_tests(walked):
    for student in STUDENTS:
        work = walked["paths"][student] / "work" / ASSIGNMENT / "feedback"
        (page,) = work.glob("*/*.html")
        text = page.read_text(encoding="utf-8")
        assert "BEGIN HIDDEN TESTS" not in text and "autograder.hidden" not in text
    cy = next((walked["paths"]["cy"] / "work" / ASSIGNMENT / "feedback").glob("*/*"))
    assert "the verified score 0/10 counts" in cy.read_text(encoding="utf-8")


def test_canvas_export_counts_the_penalty_and_no_cheated_point(walked):
    rows = {r["SIS Login ID"] or r["Student"]: r for r in _rows(walked["canvas"])}
    assert rows["Points Possible"][ASSIGNMENT] == "105"
    assert rows["ada"]["Student"] == "Lovelace, Ada" and rows["ada"]["ID"] == "101"
    assert rows["ada"][ASSIGNMENT] == "100"
    assert rows["bob"][ASSIGNMENT] == "0"
    assert rows["cy"][ASSIGNMENT] == "0"


def test_long_export_has_timestamp_seconds_late_and_penalty(walked):
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(walked["long"]))}
    assert float(rows["bob"]["seconds_late"]) > 1.0
    assert rows["bob"]["late_penalty"] == "100"
    assert rows["bob"]["timestamp"] > rows["ada"]["timestamp"] != ""
    assert rows["ada"]["seconds_late"] == "0" and rows["ada"]["late_penalty"] == ""
    assert rows["cy"]["flags"] == "disagreement test_softmax"


def test_an_extension_survives_the_regrade_and_lifts_the_penalty(walked):
    raw, penalty, late, _, extension = walked["extended"]["bob"]
    assert extension == timedelta(hours=1)
    assert (raw, penalty, late) == (AUTOGRADED_POINTS, 0.0, 0)
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(walked["long_after"]))}
    assert rows["bob"]["late_penalty"] == "" and rows["bob"]["seconds_late"] == "0"
