"""``export``: the long table, the wide table and the Canvas and Moodle layouts.

The class is a real nbgrader gradebook written with nbgrader's API (no kernels),
plus the ``grading_outcomes.json`` records that ``grade`` writes beside it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from autograder import cli, export
from autograder.cli import main
from autograder.course import course_config
from autograder.errors import UsageError
from autograder.grading.outcomes import OUTCOMES_FILE
from autograder.grading.template import new_gradebook

# nbgrader's add_submission warns about its own session handling.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

DUE = datetime(2026, 1, 10, 12, 0, 0)

#: Structured flags that disagree with the record's prose notes: export must
#: report the structured ones.
BOB_A1 = {
    "student": "bob",
    "assignment": "a1",
    "outcome": "graded",
    "reason": "",
    "score": 5.0,
    "max_score": 15.0,
    "scores": {"test_f": [0.0, 10.0], "test_g": [5.0, 5.0]},
    "notes": ["test_prose: DISAGREEMENT between the notebook and the check"],
    "flags": {
        "disagreement": ["test_g"],
        "unsandboxed": True,
        "refused": False,
        "not_checked": ["test_f"],
    },
    "cells": {},
}
#: A record written before ``grade`` stored flags: its notes are all there is.
ADA_A2_OLD = {
    "student": "ada",
    "assignment": "a2",
    "outcome": "graded",
    "reason": "",
    "score": 7.0,
    "max_score": 10.0,
    "scores": {"test_f": [7.0, 10.0]},
    "notes": [
        "test_f: DISAGREEMENT: the notebook says 10, the check says 7",
        "UNSANDBOXED: bubblewrap could not start",
    ],
}
ADA_A1 = {
    "student": "ada",
    "assignment": "a1",
    "outcome": "graded",
    "reason": "",
    "score": 15.0,
    "max_score": 15.0,
    "scores": {"test_f": [10.0, 10.0], "test_g": [5.0, 5.0]},
    "notes": [],
    "flags": {
        "disagreement": [],
        "unsandboxed": False,
        "refused": False,
        "not_checked": [],
    },
    "cells": {},
    "timestamp": "2026-01-09T08:30:00",
    "seconds_late": 0.0,
    "late_penalty": None,
}


def _submit(gb, assignment, student, scores, *, timestamp, penalty=0.0):
    sub = gb.add_submission(assignment, student, timestamp=timestamp)
    for nb in sub.notebooks:
        nb.late_submission_penalty = penalty
        for grade in nb.grades:
            grade.auto_score = scores[grade.name]
    gb.db.commit()


@pytest.fixture
def course(tmp_path) -> Path:
    """Three students, two assignments sharing a grade id, one late submission."""
    from nbgrader.api import Gradebook

    new_gradebook(tmp_path / "gradebook.db")
    course_id = course_config(tmp_path).CourseDirectory.get("course_id", "") or ""
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", course_id) as gb:
        for name, cells in (
            ("a1", {"test_f": 10, "test_g": 5}),
            ("a2", {"test_f": 10}),
        ):
            gb.add_assignment(name, duedate=DUE)
            gb.add_notebook(name, name)
            for gid, points in cells.items():
                gb.add_grade_cell(gid, name, name, max_score=points, cell_type="code")
        gb.add_student(
            "ada",
            first_name="Ada",
            last_name="Lovelace",
            email="ada@uni.example",
            lms_user_id="101",
        )
        gb.add_student("bob")
        gb.add_student("cy", first_name="Cy", last_name="Young, Jr.", email="cy@x.org")
        _submit(
            gb,
            "a1",
            "ada",
            {"test_f": 10.0, "test_g": 5.0},
            timestamp=datetime(2026, 1, 9, 8, 30),
        )
        # An hour late, with a 2-point penalty: 7 raw, 5 after the penalty.
        _submit(
            gb,
            "a2",
            "ada",
            {"test_f": 7.0},
            timestamp=datetime(2026, 1, 10, 13, 0),
            penalty=2.0,
        )
        _submit(
            gb,
            "a1",
            "bob",
            {"test_f": 0.0, "test_g": 5.0},
            timestamp=datetime(2026, 1, 10, 11, 0),
        )
    records = [ADA_A1, BOB_A1, ADA_A2_OLD]
    (tmp_path / OUTCOMES_FILE).write_text(json.dumps(records), encoding="utf-8")
    return tmp_path


def _csv(course: Path, fmt: str, capsys) -> list[list[str]]:
    capsys.readouterr()
    assert main(["export", "--course", str(course), "--format", fmt]) == 0
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def _by_student(table: list[list[str]], key: str) -> dict[str, dict[str, str]]:
    header, *rows = table
    return {row[header.index(key)]: dict(zip(header, row, strict=True)) for row in rows}


# ---------------------------------------------------------------------- long


def test_long_rows_carry_lateness_and_a_column_per_graded_cell(course, capsys):
    table = _csv(course, "long", capsys)
    assert table[0] == [
        "student",
        "assignment",
        "outcome",
        "a1:test_f",
        "test_g",
        "a2:test_f",
        "total",
        "max",
        "timestamp",
        "seconds_late",
        "late_penalty",
        "flags",
    ]
    rows = {(r[0], r[1]): dict(zip(table[0], r, strict=True)) for r in table[1:]}
    assert len(rows) == 6, "every student gets a row for every assignment"
    late = rows[("ada", "a2")]
    assert (late["a2:test_f"], late["total"], late["max"]) == ("7", "7", "10")
    assert late["a1:test_f"] == "" and late["test_g"] == ""
    # the old record has no lateness fields: the gradebook's values are used
    assert late["timestamp"] == "2026-01-10T13:00:00"
    assert late["seconds_late"] == "3600" and late["late_penalty"] == "2"
    on_time = rows[("ada", "a1")]
    assert on_time["timestamp"] == "2026-01-09T08:30:00"
    assert on_time["seconds_late"] == "0" and on_time["late_penalty"] == ""
    missing = rows[("bob", "a2")]
    assert missing["outcome"] == "no submission" and missing["total"] == "0"
    assert missing["timestamp"] == missing["seconds_late"] == ""


def test_lateness_comes_from_the_gradebook_not_a_stale_record(course, capsys):
    """A record written before the due date or the penalty changed (or before a
    stock ``nbgrader autograde`` regraded) does not contradict the gradebook,
    whose penalty the final scores of the other formats subtract."""
    records = json.loads((course / OUTCOMES_FILE).read_text())
    records[0].update(timestamp="2026-01-09T09:00:00+00:00", seconds_late=12.5)
    records[0]["late_penalty"] = 1.0
    records[2]["late_penalty"] = None
    (course / OUTCOMES_FILE).write_text(json.dumps(records))
    rows = {(r[0], r[1]): r for r in _csv(course, "long", capsys)[1:]}
    assert rows[("ada", "a1")][8:11] == ["2026-01-09T08:30:00", "0", ""]
    assert rows[("ada", "a2")][-4:-1] == ["2026-01-10T13:00:00", "3600", "2"]
    wide = _by_student(_csv(course, "wide", capsys), "student")
    assert wide["ada"]["a2"] == "5"


def test_long_flags_come_from_structured_flags_not_from_the_notes(course, capsys):
    table = _csv(course, "long", capsys)
    flags = {(r[0], r[1]): r[-1] for r in table[1:]}
    # not_checked is for the feedback, not a flag for the instructor
    assert flags[("bob", "a1")] == "disagreement test_g; unsandboxed"
    assert "test_prose" not in flags[("bob", "a1")]
    assert flags[("ada", "a1")] == ""
    # a record without "flags" (older grade runs) still shows its problems
    assert flags[("ada", "a2")] == "disagreement test_f; unsandboxed"


def test_record_flags_reads_every_structured_flag():
    record = {
        "notes": ["UNSANDBOXED: prose that must not count"],
        "flags": {
            "disagreement": ["g1", "g2"],
            "unsandboxed": False,
            "refused": True,
            "not_checked": ["g3"],
        },
    }
    assert export.record_flags(record) == [
        "disagreement g1",
        "disagreement g2",
        "refused",
    ]
    assert export.record_flags(None) == []
    assert export.record_flags({"notes": ["UNSANDBOXED: x"]}) == ["unsandboxed"]


# ---------------------------------------------------------------------- wide


def test_wide_has_one_row_per_student_with_scores_after_penalty(course, capsys):
    table = _csv(course, "wide", capsys)
    assert table[0] == [
        "student",
        "first_name",
        "last_name",
        "email",
        "lms_user_id",
        "a1",
        "a2",
        "total",
        "max",
        "flags",
    ]
    rows = _by_student(table, "student")
    assert list(rows) == ["ada", "bob", "cy"]
    ada = rows["ada"]
    assert (ada["email"], ada["lms_user_id"]) == ("ada@uni.example", "101")
    assert (ada["a1"], ada["a2"], ada["total"], ada["max"]) == ("15", "5", "20", "25")
    assert (rows["bob"]["a1"], rows["bob"]["a2"], rows["bob"]["total"]) == (
        "5",
        "0",
        "5",
    )
    assert rows["bob"]["flags"].startswith("a1: disagreement test_g; a1: unsandboxed")


# -------------------------------------------------------------------- canvas


def test_canvas_layout_identity_columns_then_points_possible_row(course, capsys):
    table = _csv(course, "canvas", capsys)
    # Canvas gradebook import: Student, ID, SIS User ID, SIS Login ID, Section,
    # then one column per assignment (Instructure's "How do I import grades in
    # the Gradebook?", cited in autograder/export.py).
    assert table[0] == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "a1",
        "a2",
    ]
    assert table[1] == ["Points Possible", "", "", "", "", "15", "10"]
    rows = _by_student(table[:1] + table[2:], "SIS Login ID")
    assert rows["ada"] == {
        "Student": "Lovelace, Ada",
        "ID": "101",
        "SIS User ID": "",
        "SIS Login ID": "ada",
        "Section": "",
        "a1": "15",
        "a2": "5",
    }
    assert rows["bob"]["Student"] == "bob" and rows["bob"]["a2"] == "0"
    assert rows["cy"]["Student"] == "Young, Jr., Cy"


def test_canvas_quotes_names_that_contain_commas(course):
    text = export.export_csv(course, format="canvas")
    assert '\n"Young, Jr., Cy",,,cy,,0,0\n' in text


# -------------------------------------------------------------------- moodle


def test_moodle_layout_identity_columns_then_one_per_assignment(course, capsys):
    table = _csv(course, "moodle", capsys)
    # Moodle's CSV grade import reads its own export layout; map "Email
    # address" to useremail (docs.moodle.org Grade_import, cited in export.py).
    assert table[0] == ["First name", "Last name", "ID number", "Email address"] + [
        "a1",
        "a2",
    ]
    rows = _by_student(table, "ID number")
    assert list(rows) == ["ada", "bob", "cy"]
    assert rows["ada"] == {
        "First name": "Ada",
        "Last name": "Lovelace",
        "ID number": "ada",
        "Email address": "ada@uni.example",
        "a1": "15",
        "a2": "5",
    }
    assert rows["bob"]["Email address"] == "" and rows["bob"]["a1"] == "5"


# ------------------------------------------------------------------- options


def test_only_the_named_assignments_are_exported(course):
    columns, rows = export.export_rows(course, ["a2"], format="moodle")
    assert columns == [*export.MOODLE_ID_COLUMNS, "a2"]
    assert [r["a2"] for r in rows] == ["5", "0", "0"]


def test_output_file_holds_the_same_text(course, tmp_path, capsys):
    out = tmp_path / "canvas.csv"
    args = ["export", "--course", str(course), "--format", "canvas", "-o", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert out.read_text() == export.export_csv(course, format="canvas")


def test_unknown_format_is_refused(course, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["export", "--course", str(course), "--format", "excel"])
    assert exited.value.code == 2
    assert "invalid choice: 'excel'" in capsys.readouterr().err
    with pytest.raises(UsageError, match="unknown export format 'excel'"):
        export.export_rows(course, format="excel")


def test_the_cli_offers_exactly_the_export_formats():
    assert cli.EXPORT_FORMATS == export.FORMATS


def test_a_course_without_a_gradebook_exports_a_header_only(tmp_path):
    text = export.export_csv(tmp_path, format="canvas")
    assert text == "Student,ID,SIS User ID,SIS Login ID,Section\nPoints Possible,,,,\n"
