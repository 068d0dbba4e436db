"""Feedback travels through nbgrader's exchange, and never quotes a hidden test.

One class of the fixture course (``tests/files/course_fixture``), run the way a
hub runs it, with a real exchange folder in tmp: the instructor generates and
releases ``mini``; a student fetches it, answers it (``square`` keeps the sign,
so the visible check passes and a hidden test fails with a traceback) and
submits with ``nbgrader submit``; the instructor collects, grades with
``python -m autograder grade``, writes feedback with ``python -m autograder
feedback`` and releases it with stock ``nbgrader release_feedback``; the
student fetches it with ``nbgrader fetch_feedback``. The fetched file must be
our report, byte for byte, without a hidden-test line.

nbgrader's own ``generate_feedback`` with the course configuration must not
quote hidden tests either; the same command with nbgrader's ``ClearHiddenTests``
alone does (the control: it shows the scenario really produces a traceback
that quotes one).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import user_env
from fixture_course import ASSIGNMENT, FIXTURE, NOTEBOOK, cell, source_nb

from autograder import REPO_ROOT
from autograder.cli import main
from autograder.feedback_exchange import KEY_FILES, read_submission_keys

pytestmark = pytest.mark.slow

COURSE_ID = "nn-exchange-test"
#: Lines of the fixture's hidden tests of ``square`` (the one that fails first).
HIDDEN_LINES = (
    "assert square(-4) == 16",
    "assert square(0.5) == 0.25",
    "BEGIN HIDDEN TESTS",
)
SIGNED_SQUARE = "    return abs(x) * x\n"
LIMITS = ["--cell-timeout", "60", "--notebook-timeout", "240"]
STOCK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


def _nbgrader(cwd: Path, home: Path, *args: str) -> str:
    """Run the nbgrader command line as a user whose home is ``home``."""
    bindir = str(Path(sys.executable).parent)
    env = user_env(home)
    done = subprocess.run(
        [str(Path(bindir) / "nbgrader"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr}"
    return done.stdout + done.stderr


def _visible_text(page: str) -> str:
    """The text of an HTML page as a reader sees it (tags dropped, unescaped)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _quoted_hidden_lines(page: str) -> list[str]:
    text = _visible_text(page)
    return [line for line in HIDDEN_LINES if line in text]


def _answer(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Fill the fetched release's solution cells: right, except ``square``."""
    solved = source_nb()
    for target in release.cells:
        meta = target.metadata.get("nbgrader", {})
        if meta.get("solution") and target.cell_type == "code":
            target.source = cell(solved, meta["grade_id"]).source
    square = cell(release, "square")
    square.source = re.sub(r"    return x \* x\n", SIGNED_SQUARE, square.source)
    assert SIGNED_SQUARE in square.source
    return release


@pytest.fixture(scope="module")
def exchange_class(tmp_path_factory):
    """Release, fetch, submit, collect, grade, feedback, release and fetch it."""
    tmp = tmp_path_factory.mktemp("exchange")
    exchange, course = tmp / "exchange", tmp / "course"
    instructor, student = tmp / "instructor-home", tmp / "student-home"
    work = student / "work"
    for folder in (exchange, instructor, work):
        folder.mkdir(parents=True)
    exchange.chmod(0o777)
    shutil.copytree(FIXTURE / "source", course / "source")
    (course / "nbgrader_config.py").write_text(
        (REPO_ROOT / "nbgrader_config.py").read_text()
        + f"\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
    )
    (work / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        f"c.Exchange.cache = {str(student / 'cache')!r}\n"
    )

    _nbgrader(course, instructor, "generate_assignment", ASSIGNMENT)
    _nbgrader(course, instructor, "release_assignment", ASSIGNMENT)
    _nbgrader(work, student, "fetch_assignment", ASSIGNMENT)
    fetched = work / ASSIGNMENT / NOTEBOOK
    nbformat.write(_answer(nbformat.read(str(fetched), 4)), str(fetched))
    _nbgrader(work, student, "submit", ASSIGNMENT)
    _nbgrader(course, instructor, "collect", ASSIGNMENT)
    (submitted,) = (course / "submitted").iterdir()
    student_id = submitted.name

    args = ["--course", str(course)]
    assert main(["grade", *args, "--no-progress", *LIMITS]) == 0
    assert main(["feedback", *args]) == 0
    _nbgrader(course, instructor, "release_feedback", ASSIGNMENT)
    _nbgrader(work, student, "fetch_feedback", ASSIGNMENT)
    return {
        "course": course,
        "student": student,
        "instructor": instructor,
        "work": work,
        "exchange": exchange,
        "student_id": student_id,
    }


def test_collect_brings_the_exchange_keys_and_grade_keeps_them(exchange_class):
    course, sid = exchange_class["course"], exchange_class["student_id"]
    collected = read_submission_keys(course / "submitted" / sid / ASSIGNMENT)
    graded = read_submission_keys(course / "autograded" / sid / ASSIGNMENT)
    beside = read_submission_keys(course / "feedback" / sid / ASSIGNMENT)
    assert collected == graded == beside
    (record,) = json.loads((course / "grading_outcomes.json").read_text())
    assert record["outcome"] == "graded"
    assert record["scores"]["test_square"] == [0.0, 10.0]
    assert record["score"] == 20, record["scores"]


def test_the_student_fetches_our_report_byte_for_byte(exchange_class):
    course, sid = exchange_class["course"], exchange_class["student_id"]
    ours = course / "feedback" / sid / ASSIGNMENT / f"{ASSIGNMENT}.html"
    fetched = list((exchange_class["work"] / ASSIGNMENT / "feedback").glob("*/*"))
    assert [p.name for p in fetched] == [f"{ASSIGNMENT}.html"]
    (timestamp_dir,) = {p.parent.name for p in fetched}
    keys = read_submission_keys(course / "feedback" / sid / ASSIGNMENT)
    assert timestamp_dir == keys["timestamp.txt"].strip()
    page = fetched[0].read_text(encoding="utf-8")
    assert page == ours.read_text(encoding="utf-8")
    assert 'class="autograder-feedback"' in page
    assert "20 / 30" in _visible_text(page)
    assert "hidden check: square(-4) should be 16" in _visible_text(page)
    assert _quoted_hidden_lines(page) == []


def test_the_exchange_holds_only_the_report_under_the_secret_name(exchange_class):
    released = exchange_class["exchange"] / COURSE_ID / "feedback"
    assert [p.suffix for p in released.iterdir()] == [".html"]
    for name in KEY_FILES:  # the keys never leave the course for the exchange
        assert not list(released.rglob(name))


def test_stock_generate_feedback_with_the_course_config_hides_hidden_lines(
    exchange_class,
):
    course, sid = exchange_class["course"], exchange_class["student_id"]
    home = exchange_class["instructor"]
    common = ["generate_feedback", ASSIGNMENT, "--force"]
    _nbgrader(course, home, *common, "--CourseDirectory.feedback_directory=stock")
    stock = (course / "stock" / sid / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "AssertionError" in stock
    assert _quoted_hidden_lines(stock) == []

    # Control: nbgrader's ClearHiddenTests alone quotes the failing hidden line.
    plain = [f"--GenerateFeedback.preprocessors={p}" for p in STOCK_PREPROCESSORS]
    _nbgrader(
        course, home, *common, "--CourseDirectory.feedback_directory=plain", *plain
    )
    bare = (course / "plain" / sid / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "assert square(-4) == 16" in _quoted_hidden_lines(bare)


def test_feedback_without_exchange_keys_says_it_cannot_be_released(
    exchange_class, tmp_path, capsys
):
    course = exchange_class["course"]
    copy = tmp_path / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns("feedback"))
    sid = exchange_class["student_id"]
    for step in ("submitted", "autograded"):
        (copy / step / sid / ASSIGNMENT / "submission_secret.txt").unlink()
    capsys.readouterr()
    assert main(["feedback", "--course", str(copy)]) == 0
    said = capsys.readouterr().out
    assert "release_feedback cannot release them" in said and sid in said
    assert not (copy / "feedback" / sid / ASSIGNMENT / "timestamp.txt").exists()
