"""Templates: ``generate_assignment`` once per assignment, copied into every task.

nbgrader needs a gradebook that knows the assignment's graded cells before it
can autograde a submission. Generating it costs seconds, so it runs once per
assignment in a scratch course; each task copies ``gradebook.db`` and reads the
graded structure (notebooks, grade ids and points in notebook order) from
``template.json``. The gradebook is created without nbgrader's ``alembic``
subprocess (2-4 s of CPU).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..course import Course, course_config
from ..defaults import TEMPLATE_TIMEOUT
from ..errors import SourceNotebookError
from ..source import grade_cells

__all__ = [
    "TEMPLATE_TIMEOUT",
    "TemplateInfo",
    "course_duedate",
    "new_gradebook",
    "prepare_template",
]


@dataclass(frozen=True)
class TemplateInfo:
    """The graded structure of an assignment, read from its template."""

    assignment: str
    course_id: str
    notebooks: tuple[str, ...]  # file names, e.g. "mini.ipynb"
    max_scores: dict[str, float]  # grade id -> points, in notebook order

    @classmethod
    def load(cls, template_dir: Path) -> TemplateInfo:
        data = json.loads((Path(template_dir) / "template.json").read_text())
        return cls(
            data["assignment"],
            data["course_id"],
            tuple(data["notebooks"]),
            dict(data["max_scores"]),
        )


def _alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema.

    nbgrader asks ``alembic heads`` in a subprocess whenever it creates a
    gradebook (2-4 s of CPU); its migration scripts name their revisions, and the
    head is the one no other script builds on.
    """
    import re

    from nbgrader.api import get_alembic_version
    from nbgrader.dbutil import ALEMBIC_DIR

    revisions, parents = set(), set()
    pattern = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?(\w+)", re.M)
    for script in Path(ALEMBIC_DIR, "versions").glob("*.py"):
        for kind, value in pattern.findall(script.read_text(encoding="utf-8")):
            if value != "None":
                (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else get_alembic_version()


def new_gradebook(path: Path) -> Path:
    """Create an empty nbgrader gradebook at ``path`` without calling alembic."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(bind=engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (_alembic_head(),))
        db.commit()
    return Path(path)


def course_duedate(course_root: Path, assignment: str) -> datetime | None:
    """The due date the course's ``gradebook.db`` holds for ``assignment``.

    Set by the instructor (``nbgrader db assignment add ... --duedate``, the
    formgrader); None when the course has no gradebook, no such assignment or
    no due date. The gradebook is opened read-only.
    """
    path = Path(course_root) / "gradebook.db"
    if not path.is_file():
        return None
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        try:
            row = db.execute(
                "SELECT duedate FROM assignment WHERE name = ?", (assignment,)
            ).fetchone()
        except sqlite3.DatabaseError:  # not a gradebook (yet): no due date
            return None
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def prepare_template(course_root: Path, assignment: str, dest: Path) -> Path:
    """Run ``generate_assignment`` once in a scratch course at ``dest``.

    The result (``dest/gradebook.db`` plus ``dest/template.json``) is what every
    task of this assignment copies instead of generating it again.

    Raises:
        SourceNotebookError: if nbgrader cannot generate the assignment, or two
            graded cells of the assignment share a grade id.
    """
    from nbgrader.api import Gradebook

    course_root = Path(course_root).resolve()
    config = course_config(course_root)
    course = Course(dest, [assignment], source_root=course_root, config=config)
    new_gradebook(course.root / "gradebook.db")
    course.generate(assignment)
    source = course.root / "source" / assignment
    notebooks = sorted(p.name for p in source.glob("*.ipynb"))
    order: list[str] = []
    for name in notebooks:
        for cell in grade_cells(source / name):
            if cell.grade_id in order:
                raise SourceNotebookError(
                    f"{assignment}: grade id {cell.grade_id!r} is used twice"
                )
            order.append(cell.grade_id)
    course_id = config.CourseDirectory.get("course_id", "") or ""
    duedate = course_duedate(course_root, assignment)
    with Gradebook(course.db_url, course_id) as gb:
        if duedate is not None:
            gb.update_or_create_assignment(assignment, duedate=duedate)
        cells = {
            cell.name: float(cell.max_score)
            for nb in gb.find_assignment(assignment).notebooks
            for cell in nb.grade_cells
        }
    max_scores = {gid: cells[gid] for gid in order if gid in cells}
    max_scores.update({k: v for k, v in cells.items() if k not in max_scores})
    info = {
        "assignment": assignment,
        "course_id": course_id,
        "notebooks": notebooks,
        "max_scores": max_scores,
    }
    (course.root / "template.json").write_text(json.dumps(info, indent=1))
    return course.root
