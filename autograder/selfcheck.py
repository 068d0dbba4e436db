"""Self-study: grade one notebook file against the hidden tests.

``python -m autograder check path/to/notebook.ipynb`` needs no course directory
of the learner's: the notebook is copied into a temporary course built from this
repository's ``source/``, graded there by :func:`autograder.grade.grade_submission`
(the same code as ``grade``, in a forked worker with the same limits), and a
table of the graded functions is printed. Nothing is written next to the
notebook.

The assignment is the one whose id or notebook name is the file's name; failing
that, the one whose graded cells' ids the notebook carries (a renamed copy);
``--assignment`` settles it when neither works.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nbformat

from . import REPO_ROOT
from .course import list_assignments
from .errors import AutograderError, NotebookNotRecognised, UsageError
from .feedback import check_messages
from .grade import (
    DEFAULT_NOTEBOOK_TIMEOUT,
    ERROR,
    TIMED_OUT,
    GradeResult,
    GradeTask,
    TemplateInfo,
    _Job,
    default_cell_timeout,
    grade_submission,
    prepare_template,
    run_tasks,
    warm_up,
)

__all__ = ["check_notebook", "identify_assignment"]

#: Share of an assignment's grade ids a notebook must carry to be recognised.
MIN_ID_OVERLAP = 0.5
#: Characters of a check's message shown in the table.
MESSAGE_WIDTH = 100


def _grade_ids(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return set()
    cells = data.get("cells", []) if isinstance(data, dict) else []
    ids = set()
    for cell in cells if isinstance(cells, list) else []:
        meta = (
            cell.get("metadata", {}).get("nbgrader", {})
            if isinstance(cell, dict)
            else {}
        )
        if isinstance(meta, dict) and meta.get("grade_id"):
            ids.add(str(meta["grade_id"]))
    return ids


def identify_assignment(
    notebook: Path, course_root: Path = REPO_ROOT
) -> tuple[str, str]:
    """Return ``(assignment, notebook file name)`` that ``notebook`` is a copy of.

    Raises:
        NotebookNotRecognised: naming the known assignments and how to choose.
    """
    notebook = Path(notebook)
    known = list_assignments(course_root)
    names = {
        a: sorted(p.name for p in (course_root / "source" / a).glob("*.ipynb"))
        for a in known
    }
    for assignment, files in names.items():
        if notebook.name in files:
            return assignment, notebook.name
        if notebook.stem == assignment and len(files) == 1:
            return assignment, files[0]
    ids = _grade_ids(notebook)
    scored = []
    for assignment, files in names.items():
        for name in files:
            nb = nbformat.read(str(course_root / "source" / assignment / name), 4)
            theirs = {
                c.metadata["nbgrader"]["grade_id"]
                for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id")
            }
            if theirs:
                scored.append((len(ids & theirs) / len(theirs), assignment, name))
    scored.sort(reverse=True)
    if scored and scored[0][0] >= MIN_ID_OVERLAP:
        if len(scored) == 1 or scored[1][0] < scored[0][0]:
            return scored[0][1], scored[0][2]
    why = (
        "it carries no nbgrader cell ids"
        if not ids
        else "its nbgrader cell ids match no assignment well enough"
    )
    raise NotebookNotRecognised(
        f"cannot tell which assignment {notebook} belongs to: its file name matches "
        f"no assignment notebook and {why}. Known assignments: "
        f"{', '.join(known) or 'none'}. Pass --assignment ID."
    )


def _table(result: GradeResult, messages: dict[str, str]) -> str:
    rows = [("function", "points", "max", "status")]
    for gid, (score, points) in result.scores.items():
        name = gid[5:] if gid.startswith("test_") else gid
        status = "passed" if score == points else "failed"
        message = messages.get(gid, "")
        if len(message) > MESSAGE_WIDTH:
            message = message[: MESSAGE_WIDTH - 1] + "…"
        rows.append(
            (
                name,
                "-" if score is None else f"{score:g}",
                f"{points:g}",
                f"{status}: {message}" if message else status,
            )
        )
    rows.append(("total", f"{result.score:g}", f"{result.max_score:g}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join([r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2])])
        + "  "
        + r[3]
        for r in rows
    ]
    rule = "-" * min(max(len(line.rstrip()) for line in lines), 100)
    lines.insert(1, rule)
    lines.insert(len(lines) - 1, rule)
    return "\n".join(line.rstrip() for line in lines)


def check_notebook(
    notebook: Path,
    *,
    assignment: str | None = None,
    course_root: Path = REPO_ROOT,
    cell_timeout: int | None = None,
    notebook_timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> GradeResult:
    """Grade one notebook file; print and return the result.

    Raises:
        UsageError: if the file does not exist or the assignment is unknown.
        NotebookNotRecognised: if the assignment cannot be told.
    """
    notebook = Path(notebook).expanduser().resolve()
    course_root = Path(course_root).resolve()
    if not notebook.is_file():
        raise UsageError(f"no such notebook: {notebook}")
    if assignment is None:
        assignment, name = identify_assignment(notebook, course_root)
    else:
        known = list_assignments(course_root)
        if assignment not in known:
            raise UsageError(
                f"unknown assignment {assignment!r}; known: {', '.join(known)}"
            )
        files = sorted(
            p.name for p in (course_root / "source" / assignment).glob("*.ipynb")
        )
        name = notebook.name if notebook.name in files else files[0]
    if cell_timeout is None:
        cell_timeout = default_cell_timeout(course_root)
    limit = notebook_timeout or DEFAULT_NOTEBOOK_TIMEOUT
    warm_up()
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        tmp = Path(tmp)
        submission = tmp / "submission"
        submission.mkdir()
        shutil.copyfile(notebook, submission / name)
        template = tmp / "template"
        run_tasks(
            [
                _job(
                    "template",
                    prepare_template,
                    (course_root, assignment, template),
                    tmp,
                )
            ],
            1,
        )
        task = GradeTask(
            assignment, "you", submission, course_root, cell_timeout, limit, template
        )
        info = TemplateInfo.load(template)
        zero = {gid: (0.0, pts) for gid, pts in info.max_scores.items()}

        def fallback(outcome, reason):
            return GradeResult(assignment, "you", outcome, reason, dict(zero))

        job = _Job(
            "check",
            grade_submission,
            (task, tmp / "scratch"),
            tmp / "worker.log",
            limit,
            partial(fallback, TIMED_OUT, f"notebook limit ({limit:g} s) reached"),
            partial(fallback, ERROR),
        )
        result = run_tasks([job], 1)["check"]
        messages = {}
        if result.autograded_dir is not None:
            path = Path(result.autograded_dir) / name
            if path.is_file():
                messages = check_messages(nbformat.read(str(path), as_version=4))
        log(f"{notebook.name}: assignment {assignment}")
        log(_table(result, messages))
        log(
            f"outcome: {result.outcome}"
            + (f" ({result.reason})" if result.reason else "")
        )
        log("Scores of the graded (hidden) tests; their code is not shown.")
    return result


def _job(key, fn, args, tmp: Path) -> _Job:
    def fail(message="timed out"):
        raise AutograderError(f"could not prepare the assignment: {message}")

    return _Job(key, fn, args, tmp / f"{key}.log", 600, fail, fail)
