"""Export the gradebook as CSV, for the instructor or for a learning platform.

``python -m autograder export [ASSIGNMENT...] [--format F] [-o FILE]``:

``long`` (default)
    One row per student and assignment::

        student,assignment,outcome,<grade id>...,total,max,timestamp,
        seconds_late,late_penalty,flags

    A row has a value in the columns of its own assignment's graded cells and
    is empty in the others; a grade id that occurs in more than one assignment
    gets one column per assignment, named ``<assignment>:<grade id>``. ``total``
    is the raw sum of the cell scores (before any late penalty), ``outcome`` is
    what ``grade`` recorded (``no submission`` when there is none).
``wide``
    One row per student: id, name, e-mail, LMS user id, one column per
    assignment (its score after the late penalty), total, max and flags.
``canvas``
    Canvas's gradebook import layout (see :data:`CANVAS_ID_COLUMNS`).
``moodle``
    Moodle's CSV grade import layout (see :data:`MOODLE_ID_COLUMNS`).

Every student of the gradebook gets a row (a missing submission scores 0).
Scores come from nbgrader's ``Gradebook`` API, so manual grades count and the
stock ``nbgrader export`` works on the same gradebook. What an instructor must
look at (disagreements, unsandboxed or refused grading, unchecked cells) comes
from the ``flags`` of each record in ``grading_outcomes.json``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO_ROOT
from .course import course_config
from .errors import SourceNotebookError, UsageError
from .grading.outcomes import load_outcomes
from .source import grade_cells

__all__ = [
    "CANVAS_ID_COLUMNS",
    "FORMATS",
    "MOODLE_ID_COLUMNS",
    "ClassGrades",
    "export_csv",
    "export_rows",
    "format_table",
    "read_class",
    "record_flags",
]

NO_SUBMISSION = "no submission"
FORMATS = ("long", "wide", "canvas", "moodle")

#: The identity columns of a Canvas gradebook CSV, in Canvas's order; assignment
#: columns follow, and the second row holds each assignment's points possible.
#: Canvas matches a row to a student by ``ID`` (the Canvas user id), then ``SIS
#: User ID``, then ``SIS Login ID``.
#: Layout: https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
#: and its summary in https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades
#: (columns A-E: student name "last, first", Student ID, SIS User ID, SIS Login
#: ID, Section; then one column per assignment).
CANVAS_ID_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "Points Possible"

#: The identity columns of Moodle's own grade export, which its CSV import reads
#: back ("the import file format is the same as the corresponding export
#: format"); at import, map "Email address" to "useremail" (or "ID number" to
#: "useridnumber"). One column per grade item follows.
#: Layout: https://docs.moodle.org/405/en/Grade_import
MOODLE_ID_COLUMNS = ("First name", "Last name", "ID number", "Email address")


# --------------------------------------------------------------------------
# What the gradebook holds
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    """A student as the gradebook knows them (empty strings where unknown)."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""


@dataclass
class Submission:
    """The stored grades of one submission."""

    scores: dict[str, float | None]
    timestamp: str | None = None
    seconds_late: float = 0.0
    late_penalty: float = 0.0

    @property
    def total(self) -> float:
        return sum(float(v or 0) for v in self.scores.values())


@dataclass
class ClassGrades:
    """Students, assignments, their graded cells and every stored submission."""

    students: list[Student] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)
    #: assignment -> grade ids in notebook order
    grade_ids: dict[str, list[str]] = field(default_factory=dict)
    #: assignment -> grade id -> max score
    maxima: dict[str, dict[str, float]] = field(default_factory=dict)
    #: (student, assignment) -> submission; absent: no submission
    submissions: dict[tuple[str, str], Submission] = field(default_factory=dict)

    def max_score(self, assignment: str) -> float:
        return sum(self.maxima[assignment].values())

    def final_score(self, student: str, assignment: str) -> float:
        """The score after the late penalty, never below 0 (as nbgrader's)."""
        sub = self.submissions.get((student, assignment))
        return max(0.0, sub.total - sub.late_penalty) if sub else 0.0


def _cell_order(course_root: Path, assignment: str) -> list[str]:
    """Grade ids of an assignment in notebook order (from ``source/``)."""
    order = []
    for path in sorted((course_root / "source" / assignment).glob("*.ipynb")):
        try:
            order += [cell.grade_id for cell in grade_cells(path)]
        except SourceNotebookError:  # an unreadable source only loses the column order
            continue
    return order


def read_class(
    course_root: Path = REPO_ROOT, assignments: Sequence[str] | None = None
) -> ClassGrades:
    """Read students, graded cells and submissions from ``gradebook.db``."""
    from nbgrader.api import Gradebook, MissingEntry

    course_root = Path(course_root).resolve()
    grades = ClassGrades()
    db = course_root / "gradebook.db"
    if not db.is_file():
        return grades
    course_id = course_config(course_root).CourseDirectory.get("course_id", "") or ""
    with Gradebook(f"sqlite:///{db}", course_id) as gb:
        grades.students = [
            Student(
                s.id,
                s.first_name or "",
                s.last_name or "",
                s.email or "",
                s.lms_user_id or "",
            )
            for s in sorted(gb.students, key=lambda s: s.id)
        ]
        names = sorted(a.name for a in gb.assignments)
        grades.assignments = [a for a in names if not assignments or a in assignments]
        for name in grades.assignments:
            cells = [
                c for nb in gb.find_assignment(name).notebooks for c in nb.grade_cells
            ]
            in_db = [c.name for c in cells]
            order = [g for g in _cell_order(course_root, name) if g in in_db]
            grades.grade_ids[name] = order + [g for g in in_db if g not in order]
            grades.maxima[name] = {c.name: float(c.max_score) for c in cells}
            for student in grades.students:
                try:
                    sub = gb.find_submission(name, student.id)
                except MissingEntry:
                    continue
                grades.submissions[(student.id, name)] = Submission(
                    scores={g.name: g.score for nb in sub.notebooks for g in nb.grades},
                    timestamp=sub.timestamp.isoformat() if sub.timestamp else None,
                    seconds_late=float(sub.total_seconds_late or 0.0),
                    late_penalty=float(sub.late_submission_penalty or 0.0),
                )
    return grades


# --------------------------------------------------------------------------
# Flags: read from the structured record
# --------------------------------------------------------------------------


def _flags_from_notes(notes: Sequence[str]) -> list[str]:
    """Flags of records written before ``grade`` stored them as data."""
    flags = []
    for note in notes:
        if "DISAGREEMENT" in note:
            flags.append("disagreement " + note.split(":", 1)[0])
        elif note.startswith("UNSANDBOXED"):
            flags.append("unsandboxed")
    return flags


def record_flags(record: dict | None) -> list[str]:
    """What an instructor must look at in one ``grading_outcomes.json`` record.

    Reads the record's ``flags`` object (``disagreement``: grade ids;
    ``unsandboxed`` and ``refused``: booleans). Only a
    record without ``flags`` (written by an older ``grade``) has its notes read.
    """
    if not record:
        return []
    structured = record.get("flags")
    if structured is None:
        return list(dict.fromkeys(_flags_from_notes(record.get("notes", []))))
    flags = [f"disagreement {gid}" for gid in structured.get("disagreement", [])]
    if structured.get("unsandboxed"):
        flags.append("unsandboxed")
    if structured.get("refused"):
        flags.append("refused")
    # ``not_checked`` is information for the feedback (the hidden tests decided
    # those cells), not something an instructor must look at.
    return flags


# --------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------


def _fmt(value) -> str:
    return "" if value is None else f"{float(value):g}"


def _long(grades: ClassGrades, outcomes: dict) -> tuple[list[str], list[dict]]:
    seen: dict[str, int] = {}
    for name in grades.assignments:
        for gid in grades.grade_ids[name]:
            seen[gid] = seen.get(gid, 0) + 1
    column = {
        (name, gid): gid if seen[gid] == 1 else f"{name}:{gid}"
        for name in grades.assignments
        for gid in grades.grade_ids[name]
    }
    columns = ["student", "assignment", "outcome", *column.values()]
    columns += ["total", "max", "timestamp", "seconds_late", "late_penalty", "flags"]
    rows = []
    for name in grades.assignments:
        for student in grades.students:
            sub = grades.submissions.get((student.id, name))
            record = outcomes.get((student.id, name))
            if sub is None:
                outcome = NO_SUBMISSION
            else:
                outcome = record["outcome"] if record else "graded"
            row = {"student": student.id, "assignment": name, "outcome": outcome}
            for gid in grades.grade_ids[name]:
                row[column[(name, gid)]] = _fmt(sub.scores.get(gid, 0.0) if sub else 0)
            row["total"] = _fmt(sub.total if sub else 0)
            row["max"] = _fmt(grades.max_score(name))
            row.update(_lateness(sub))
            row["flags"] = "; ".join(record_flags(record))
            rows.append(row)
    return columns, rows


def _lateness(sub: Submission | None) -> dict[str, str]:
    """Timestamp, seconds late and penalty, from the gradebook.

    The gradebook is the one home of lateness: the due date and extensions an
    instructor changes there, the penalty any entry point stored there (``grade``
    or stock ``nbgrader autograde``), and the final scores of the other formats
    use the same values.
    """
    if sub is None:
        return {"timestamp": "", "seconds_late": "", "late_penalty": ""}
    return {
        "timestamp": sub.timestamp or "",
        "seconds_late": _fmt(sub.seconds_late),
        "late_penalty": _fmt(sub.late_penalty or None),
    }


def _wide(grades: ClassGrades, outcomes: dict) -> tuple[list[str], list[dict]]:
    columns = ["student", "first_name", "last_name", "email", "lms_user_id"]
    columns += [*grades.assignments, "total", "max", "flags"]
    maximum = sum(grades.max_score(a) for a in grades.assignments)
    rows = []
    for student in grades.students:
        row = {
            "student": student.id,
            "first_name": student.first_name,
            "last_name": student.last_name,
            "email": student.email,
            "lms_user_id": student.lms_user_id,
        }
        flags = []
        for name in grades.assignments:
            row[name] = _fmt(grades.final_score(student.id, name))
            flags += [
                f"{name}: {f}" for f in record_flags(outcomes.get((student.id, name)))
            ]
        row["total"] = _fmt(
            sum(grades.final_score(student.id, a) for a in grades.assignments)
        )
        row["max"] = _fmt(maximum)
        row["flags"] = "; ".join(flags)
        rows.append(row)
    return columns, rows


def _canvas(grades: ClassGrades, outcomes: dict) -> tuple[list[str], list[dict]]:
    columns = [*CANVAS_ID_COLUMNS, *grades.assignments]
    points = {c: "" for c in CANVAS_ID_COLUMNS}
    points["Student"] = CANVAS_POINTS_ROW
    points.update({a: _fmt(grades.max_score(a)) for a in grades.assignments})
    rows = [points]
    for student in grades.students:
        name = ", ".join(p for p in (student.last_name, student.first_name) if p)
        row = {
            "Student": name or student.id,
            "ID": student.lms_user_id,
            "SIS User ID": "",
            "SIS Login ID": student.id,
            "Section": "",
        }
        row.update(
            {a: _fmt(grades.final_score(student.id, a)) for a in grades.assignments}
        )
        rows.append(row)
    return columns, rows


def _moodle(grades: ClassGrades, outcomes: dict) -> tuple[list[str], list[dict]]:
    columns = [*MOODLE_ID_COLUMNS, *grades.assignments]
    rows = []
    for student in grades.students:
        row = {
            "First name": student.first_name,
            "Last name": student.last_name,
            "ID number": student.id,
            "Email address": student.email,
        }
        row.update(
            {a: _fmt(grades.final_score(student.id, a)) for a in grades.assignments}
        )
        rows.append(row)
    return columns, rows


_TABLES = {"long": _long, "wide": _wide, "canvas": _canvas, "moodle": _moodle}


def export_rows(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    format: str = "long",
) -> tuple[list[str], list[dict]]:
    """Read the gradebook; return ``(columns, rows)`` of the export table.

    Raises:
        UsageError: for a format not in :data:`FORMATS`.
    """
    if format not in _TABLES:
        raise UsageError(f"unknown export format {format!r}; expected one of {FORMATS}")
    grades = read_class(course_root, assignments)
    return _TABLES[format](grades, load_outcomes(Path(course_root)))


def export_csv(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    output: Path | str | None = None,
    format: str = "long",
) -> str:
    """Return the CSV text; with ``output``, also write it there (atomically)."""
    columns, rows = export_rows(course_root, assignments, format=format)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()
    if output is not None:
        path = Path(output)
        staged = path.with_name(f".{path.name}.new")
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, path)
    return text


def format_table(columns: list[str], rows: list[dict]) -> str:
    """The export table as aligned plain text (for ``demo``)."""
    cells = [columns] + [[row.get(c, "") for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
