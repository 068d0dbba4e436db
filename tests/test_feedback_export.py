"""``feedback`` (HTML without hidden tests) and ``export`` (CSV) on a graded class."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import hidden_lines, visible_text
from fixture_course import FIXTURE, LIMITS, SCENARIOS, build_course

from autograder.authoring.demo import CONFIG
from autograder.cli import main
from autograder.feedback import check_messages, strip_hidden_tests

REPO = Path(__file__).resolve().parent.parent
CLASS = {
    k: SCENARIOS[k]
    for k in (
        "reference",
        "blank",
        "mistake-mean-divides-by-n-minus-1",
        "edited-test-cell",
        "invalid-json",
        "infinite-loop",
    )
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("class"), CLASS)
    args = ["--course", str(root)]
    assert main(["grade", *args, "--no-progress", *LIMITS]) == 0
    assert main(["feedback", *args]) == 0
    return root


def report(course: Path, student: str) -> str:
    return (course / "feedback" / student / "mini" / "mini.html").read_text()


@pytest.mark.slow
def test_every_student_gets_a_report(course):
    written = {p.parts[-3] for p in (course / "feedback").glob("*/mini/mini.html")}
    assert written == set(CLASS)


@pytest.mark.slow
def test_no_report_contains_a_hidden_test_line(course):
    lines = hidden_lines(course / "source")
    assert len(lines) >= 5, "the fixture has hidden tests to look for"
    reports = sorted((course / "feedback").rglob("*.html"))
    for path in reports:
        raw, seen = path.read_text(), visible_text(path.read_text())
        for line in lines:
            assert line not in seen and html.escape(line) not in raw, (path, line)


@pytest.mark.slow
def test_report_tables_points_and_what_the_checks_said(course):
    """In words from the grader's per-cell data when it writes them (``cells``),
    else the test cell's own message."""
    student = "mistake-mean-divides-by-n-minus-1"
    text = visible_text(report(course, student))
    record = {
        r["student"]: r
        for r in json.loads((course / "grading_outcomes.json").read_text())
    }[student]
    if "test_mean" in record.get("cells", {}):
        assert re.search(r"mean\s*0 / 10\s*failed the visible check", text)
        assert re.search(r"square\s*10 / 10\s*passed \(visible check and hidden", text)
    else:
        assert re.search(r"mean\s*0 / 10\s*AssertionError: mean\(\[1, 2, 6\]\)", text)
        assert re.search(r"square\s*10 / 10\s*All visible checks passed", text)
    assert re.search(r"total\s*20 / 30", text)
    # then the notebook itself
    assert "def mean(values)" in text


@pytest.mark.slow
def test_report_explains_an_ungraded_submission(course):
    text = visible_text(report(course, "invalid-json"))
    assert "invalid notebook JSON" in text and "not valid JSON" in text
    assert "No notebook could be graded" in text
    timed = visible_text(report(course, "infinite-loop"))
    assert "timed out" in timed and "cell limit" in timed


@pytest.mark.slow
def test_tracebacks_keep_the_students_frames_only(course):
    text = visible_text(report(course, "blank"))
    assert "NotImplementedError" in text
    assert re.search(r"Cell In\[\d+\], line \d+, in square", text)  # the student's cell
    assert "frames of the test cell and of the grader are not shown" in text


def test_strip_hidden_tests_removes_regions_and_quoted_lines():
    test = nbformat.v4.new_code_cell(
        "check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4, 'secret'\n"
        "### END HIDDEN TESTS",
        execution_count=2,
    )
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "test_f", "points": 1}
    leaked = "\x1b[32m----> 3\x1b[39m assert f(2) == 4, 'secret'"
    test.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="secret",
            traceback=[
                "-" * 20,
                "AssertionError    Traceback (most recent call last)",
                f"Cell In[2], line 3\n{leaked}\n",
                "Cell In[1], line 2, in f(x)\n----> 2     return x + x + 1\n",
                f"File {REPO}/autograder/hidden/__init__.py:5, in grade()\n  hidden\n",
                "AssertionError: secret",
            ],
        )
    ]
    solution = nbformat.v4.new_code_cell(
        "def f(x):\n    return x + x + 1", execution_count=1
    )
    nb = nbformat.v4.new_notebook(cells=[solution, test])
    clean = strip_hidden_tests(nb)
    text = "\n".join(clean.cells[1].outputs[0].traceback)
    assert "BEGIN HIDDEN" not in clean.cells[1].source
    assert "f(2) == 4" not in clean.cells[1].source and "f(2) == 4" not in text
    assert "autograder/hidden" not in text
    assert "return x + x + 1" in text  # the student's frame stays
    assert text.endswith("AssertionError: secret")
    assert "f(2) == 4" in nb.cells[1].source  # the input is not modified
    assert check_messages(clean) == {"test_f": "AssertionError: secret"}


@pytest.mark.slow
def test_export_has_one_row_per_student_and_a_column_per_function(course, capsys):
    capsys.readouterr()
    assert main(["export", "--course", str(course)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == [
        "student",
        "assignment",
        "outcome",
        "test_square",
        "test_mean",
        "test_relu",
        "total",
        "max",
        "timestamp",
        "seconds_late",
        "late_penalty",
        "flags",
    ]
    by = {r["student"]: r for r in rows}
    assert set(by) == set(CLASS)
    assert by["reference"]["total"] == "30" and by["reference"]["max"] == "30"
    assert by["edited-test-cell"]["test_mean"] == "0"
    assert by["invalid-json"]["outcome"] == "invalid notebook JSON"
    assert by["infinite-loop"]["outcome"] == "timed out"


@pytest.mark.slow
def test_export_writes_a_file_with_the_same_content(course, tmp_path, capsys):
    out = tmp_path / "grades.csv"
    assert main(["export", "--course", str(course), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["export", "--course", str(course)]) == 0
    assert out.read_text() == capsys.readouterr().out


@pytest.mark.slow
def test_stock_nbgrader_export_still_works_on_the_gradebook(course, tmp_path):
    (course / "nbgrader_config.py").write_text(
        CONFIG.format(config=str(REPO / "nbgrader_config.py"))
    )
    out = tmp_path / "stock.csv"
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", f"--CsvExportPlugin.to={out}"],
        cwd=course,
        capture_output=True,
        text=True,
        check=False,
    )
    (course / "nbgrader_config.py").unlink()
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(CLASS)
    assert float(rows["reference"]["score"]) == 30.0
    assert float(rows["mistake-mean-divides-by-n-minus-1"]["score"]) == 20.0


def test_fixture_release_is_what_nbgrader_generates(tmp_path):
    from autograder.course import Course
    from autograder.grading.template import new_gradebook

    new_gradebook(tmp_path / "gradebook.db")
    generated = Course(tmp_path, ["mini"], source_root=FIXTURE).generate("mini")
    committed = FIXTURE / "release" / "mini" / "mini.ipynb"
    assert (generated / "mini.ipynb").read_text() == committed.read_text()
