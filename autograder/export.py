"""Export the gradebook as CSV: one row per student and assignment.

``python -m autograder export [ASSIGNMENT...] [-o FILE]`` writes::

    student,assignment,outcome,<grade id>...,total,max,flags

One file covers every assignment. A row has a value in the columns of its own
assignment's graded cells and is empty in the others; a grade id that occurs in
more than one assignment gets one column per assignment, named
``<assignment>:<grade id>``. Every student of the gradebook gets a row for every
assignment; ``outcome`` is what ``grade`` recorded (``no submission`` when
there is none). Scores are read with nbgrader's ``Gradebook`` API, so manual
grades count, and the stock ``nbgrader export`` works on the same gradebook.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import nbformat

from . import REPO_ROOT
from .course import course_config
from .grading.outcomes import Flags, load_outcomes

__all__ = ["export_csv", "export_rows", "format_table"]

NO_SUBMISSION = "no submission"


def _cell_order(course_root: Path, assignment: str) -> list[str]:
    """Grade ids of an assignment in notebook order (from ``source/``)."""
    order = []
    for path in sorted((course_root / "source" / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception:  # an unreadable source only loses the column order
            continue
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and meta.get("grade_id"):
                order.append(meta["grade_id"])
    return order


def _fmt(value) -> str:
    return "" if value is None else f"{float(value):g}"


def _flags(record: dict | None) -> str:
    """What an instructor must look at, read from the record's ``flags``."""
    if not record:
        return ""
    flags = Flags.from_dict(record.get("flags"))
    shown = [f"disagreement {gid}" for gid in flags.disagreement]
    if flags.unsandboxed:
        shown.append("unsandboxed")
    if flags.refused:
        shown.append("refused")
    return "; ".join(shown)


def export_rows(
    course_root: Path = REPO_ROOT, assignments: Sequence[str] | None = None
) -> tuple[list[str], list[dict]]:
    """Read the gradebook; return ``(columns, rows)`` of the export table."""
    from nbgrader.api import Gradebook, MissingEntry

    course_root = Path(course_root).resolve()
    course_id = course_config(course_root).CourseDirectory.get("course_id", "") or ""
    outcomes = load_outcomes(course_root)
    db = course_root / "gradebook.db"
    if not db.is_file():
        return ["student", "assignment", "outcome", "total", "max"], []
    table = {}
    with Gradebook(f"sqlite:///{db}", course_id) as gb:
        names = sorted(a.name for a in gb.assignments)
        wanted = [a for a in names if not assignments or a in assignments]
        ids = {}
        for name in wanted:
            in_db = [
                cell.name
                for nb in gb.find_assignment(name).notebooks
                for cell in nb.grade_cells
            ]
            order = [g for g in _cell_order(course_root, name) if g in in_db]
            ids[name] = order + [g for g in in_db if g not in order]
            maxima = {
                cell.name: float(cell.max_score)
                for nb in gb.find_assignment(name).notebooks
                for cell in nb.grade_cells
            }
            for student in sorted(s.id for s in gb.students):
                try:
                    submission = gb.find_submission(name, student)
                except MissingEntry:
                    scores = None
                else:
                    grades = [g for nb in submission.notebooks for g in nb.grades]
                    scores = {g.name: g.score for g in grades}
                table[(student, name)] = (scores, maxima)
    seen: dict[str, int] = {}
    for name in wanted:
        for gid in ids[name]:
            seen[gid] = seen.get(gid, 0) + 1
    column = {
        (name, gid): gid if seen[gid] == 1 else f"{name}:{gid}"
        for name in wanted
        for gid in ids[name]
    }
    columns = [
        "student",
        "assignment",
        "outcome",
        *column.values(),
        "total",
        "max",
        "flags",
    ]
    rows = []
    for (student, name), (scores, maxima) in sorted(
        table.items(), key=lambda kv: (kv[0][1], kv[0][0])
    ):
        record = outcomes.get((student, name))
        if scores is None:
            outcome = NO_SUBMISSION
        else:
            outcome = record["outcome"] if record else "graded"
        row = {"student": student, "assignment": name, "outcome": outcome}
        for gid in ids[name]:
            row[column[(name, gid)]] = _fmt((scores or {}).get(gid, 0.0))
        total = sum(float(v or 0) for v in (scores or {}).values())
        row["total"] = _fmt(total)
        row["max"] = _fmt(sum(maxima.values()))
        row["flags"] = _flags(record)
        rows.append(row)
    return columns, rows


def export_csv(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    output: Path | str | None = None,
) -> str:
    """Return the CSV text; with ``output``, also write it there (atomically)."""
    columns, rows = export_rows(course_root, assignments)
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
