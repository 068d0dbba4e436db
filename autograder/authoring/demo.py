"""A demo class, graded end to end: ``python -m autograder demo``.

Builds a course in ``demo/`` (git-ignored) from ``source/``, then runs the whole
pipeline on it: ``release`` (nbgrader ``generate_assignment``), ``grade``,
``feedback`` and ``export``. The class has, for every assignment:

- ``reference``: the source notebook itself (full marks);
- ``blank``: the untouched release (zero);
- ``mistake-<name>``: one student per typical mistake of
  ``tests/files/mistakes/<assignment>.json`` (the total minus the broken cells).

The folder also gets an ``nbgrader_config.py``, so the stock ``nbgrader`` commands
(``nbgrader export``, ``nbgrader formgrader`` …) work inside it too.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from .. import REPO_ROOT, defaults
from ..course import Course, course_config, list_assignments
from ..errors import SourceNotebookError, UsageError
from ..export import export_csv, export_rows, format_table
from ..feedback import generate_feedback
from ..grading.run import grade_course
from ..grading.template import new_gradebook

__all__ = ["apply_mistake", "build_demo", "load_mistakes"]

MARKER = ".autograder-demo"
MISTAKES_DIR = REPO_ROOT / "tests" / "files" / "mistakes"
CONFIG = '''"""nbgrader configuration of this demo: the repository's, rooted here."""

import os

c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
'''


def load_mistakes(assignment: str, mistakes_dir: Path = MISTAKES_DIR) -> list[dict]:
    """The typical-mistake scenarios of an assignment (none if no file)."""
    path = Path(mistakes_dir) / f"{assignment}.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def apply_mistake(nb, mistake: dict):
    """Return a copy of a source notebook with one solution cell changed.

    Raises:
        SourceNotebookError: if the cell is not unique or a ``replace`` pair does
            not match exactly once.
    """
    nb = copy.deepcopy(nb)
    cells = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == mistake["cell"]
    ]
    if len(cells) != 1:
        raise SourceNotebookError(
            f"mistake {mistake['name']}: {len(cells)} cells with id {mistake['cell']!r}"
        )
    for old, new in mistake["replace"]:
        count = cells[0].source.count(old)
        if count != 1:
            raise SourceNotebookError(
                f"mistake {mistake['name']}: {old!r} occurs {count} times in cell "
                f"{mistake['cell']!r} (must be exactly once)"
            )
        cells[0].source = cells[0].source.replace(old, new)
    return nb


def _fresh(dest: Path) -> None:
    if dest.exists():
        if not (dest / MARKER).exists():
            raise UsageError(
                f"{dest} exists and is not a demo folder built by this command; "
                "remove it or choose another --dir"
            )
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / MARKER).write_text("built by python -m autograder demo\n")


def _submit(dest: Path, student: str, assignment: str, notebooks: dict) -> None:
    folder = dest / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, str(folder / name))


def build_demo(
    dest: Path | None = None,
    assignments: Sequence[str] | None = None,
    *,
    source_root: Path = REPO_ROOT,
    mistakes_dir: Path = MISTAKES_DIR,
    workers: int | None = None,
    cell_timeout: int | None = None,
    sandbox: bool = defaults.SANDBOX,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Build the demo class and run release, grade, feedback and export on it.

    Returns:
        The demo folder.
    """
    dest = Path(dest or REPO_ROOT / "demo").resolve()
    source_root = Path(source_root).resolve()
    known = list_assignments(source_root)
    wanted = list(assignments) if assignments else known
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise UsageError(f"unknown assignment(s) {unknown}; known: {', '.join(known)}")
    _fresh(dest)
    (dest / "nbgrader_config.py").write_text(
        CONFIG.format(config=str(REPO_ROOT / "nbgrader_config.py"))
    )
    new_gradebook(dest / "gradebook.db")
    course = Course(dest, wanted, source_root=source_root, config=course_config(dest))

    log(f"== release: nbgrader generate_assignment in {dest}")
    for assignment in wanted:
        release = course.generate(assignment)
        source = dest / "source" / assignment
        names = sorted(p.name for p in source.glob("*.ipynb"))
        originals = {n: nbformat.read(str(source / n), as_version=4) for n in names}
        released = {n: nbformat.read(str(release / n), as_version=4) for n in names}
        _submit(dest, "reference", assignment, originals)
        _submit(dest, "blank", assignment, released)
        mistakes = load_mistakes(assignment, mistakes_dir)
        for mistake in mistakes:
            changed = dict(originals)
            for name, nb in originals.items():
                ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
                if mistake["cell"] in ids:
                    changed[name] = apply_mistake(nb, mistake)
            _submit(dest, f"mistake-{mistake['name']}", assignment, changed)
        log(f"{assignment}: released; 2 + {len(mistakes)} submissions")

    log("== grade")
    grade_course(
        dest,
        wanted,
        workers=workers,
        cell_timeout=cell_timeout,
        sandbox=sandbox,
        progress=progress,
        log=log,
    )
    log("== feedback")
    reports = generate_feedback(dest, wanted, log=log)
    log("== export")
    export_csv(dest, wanted, output=dest / "grades-by-function.csv")
    for assignment in wanted:
        columns, rows = export_rows(dest, [assignment])
        rows = [r for r in rows if r["outcome"] != "no submission"]
        keep = [c for c in columns if c != "assignment"]
        log(f"\n{assignment}:")
        log(format_table(keep, rows))
    log(f"gradebook: {dest / 'gradebook.db'}; CSV: {dest / 'grades-by-function.csv'}")
    log(f"reports ({len(reports)}): {dest / 'feedback'}/<student>/<assignment>/*.html")
    return dest
