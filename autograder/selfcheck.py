"""Self-study: grade one notebook file against the hidden tests.

``python -m autograder check path/to/notebook.ipynb`` needs no course directory
of the learner's: the notebook is copied into a temporary course built from this
repository's ``source/``, graded there by
:func:`autograder.grading.submission.grade_submission` (the same code as
``grade``, in a forked worker with the same limits), and a table of the graded
functions is printed. Nothing is written next to the notebook.

The assignment is the one whose id or notebook name is the file's name; failing
that, the one whose graded cells' ids the notebook carries (a renamed copy);
``--assignment`` settles it when neither works.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nbformat

from . import REPO_ROOT, defaults
from .course import default_cell_timeout, list_assignments
from .defaults import NOTEBOOK_TIMEOUT
from .errors import AutograderError, NotebookNotRecognised, UsageError
from .feedback import check_messages
from .grading.fastkernels import warm_up
from .grading.outcomes import GradeResult
from .grading.pool import Job, run_tasks
from .grading.preflight import Settings, cached_template, run_preflight
from .grading.run import build_task, grade_folders
from .grading.template import TemplateInfo
from .source import course_root as source_course_root
from .source import grade_cells, graded_cells

__all__ = ["check_notebook", "hidden_inputs_report", "identify_assignment"]

#: Share of an assignment's grade ids a notebook must carry to be recognised.
MIN_ID_OVERLAP = 0.5
#: Width the table's messages are wrapped to (never cut).
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
            theirs = _grade_ids(course_root / "source" / assignment / name)
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


def _status(cell, score=None, full=None, message: str = "") -> str:
    """A student's words for how one graded function did.

    ``cell`` is the grader's report; a cell the grader did not verify (a test
    cell without a hidden grader) is described by its score and the message
    its own run printed.
    """
    if cell is None:
        passed = score is not None and full is not None and score >= full
        words = "passed" if passed else "failed"
        return f"{words}: {message}" if message else words
    if cell.score is not None and cell.score >= cell.max_score:
        if cell.visible == "not checked":
            return (
                "passed (hidden tests; its visible check was skipped because "
                f"{cell.not_checked_because} fails its own check)"
            )
        if cell.hidden == "not verified":
            return "passed"
        return "passed (visible check and hidden tests)"
    message = cell.message.removeprefix("0: ")
    if cell.visible == "failed":
        return "failed the visible check: " + message.removeprefix(
            "visible check failed: "
        )
    if cell.hidden == "failed":
        return "failed the hidden tests: " + message
    return "failed: " + message


def _table(
    result: GradeResult, messages: dict[str, str], by_hand: set[str] = frozenset()
) -> str:
    rows = [("function", "points", "max", "status")]
    for gid, (score, points) in result.scores.items():
        name = gid[5:] if gid.startswith("test_") else gid
        status = _status(result.cells.get(gid), score, points, messages.get(gid, ""))
        if gid in by_hand:
            score, status = None, "graded by your instructor (a written answer)"
        rows.append(
            (name, "-" if score is None else f"{score:g}", f"{points:g}", status)
        )
    auto = sum((s or 0.0) for g, (s, _) in result.scores.items() if g not in by_hand)
    full = sum(m for g, (_, m) in result.scores.items() if g not in by_hand)
    rows.append(("total", f"{auto:g}", f"{full:g}", "autograded functions"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    indent = sum(widths) + 6
    lines = []
    for r in rows:
        head = "  ".join(
            [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2])]
        )
        wrapped = textwrap.wrap(r[3], width=max(40, MESSAGE_WIDTH - indent)) or [""]
        lines.append(f"{head}  {wrapped[0]}".rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    rule = "-" * min(max(len(line.rstrip()) for line in lines), MESSAGE_WIDTH)
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
    sandbox: bool = defaults.SANDBOX,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> GradeResult:
    """Grade one notebook file; print and return the result.

    The notebook is graded exactly as ``grade`` grades a submission: the same
    intake, pre-flight, sandbox (where bubblewrap works) and verified scoring,
    so the points it prints are the points the instructor's run gives. With
    ``verbose``, it also lists the shapes of the inputs each function's hidden
    tests use (:func:`hidden_inputs_report`).

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
    limit = notebook_timeout or NOTEBOOK_TIMEOUT
    warm_up(kernels=not sandbox)
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        tmp = Path(tmp)
        # The intake wants <student>/<assignment>/ folders, as in submitted/.
        submission = tmp / "you" / assignment
        submission.mkdir(parents=True)
        shutil.copyfile(notebook, submission / name)
        for extra in _helper_files(course_root, assignment):
            shutil.copyfile(extra, submission / extra.name)
        template = tmp / "template"
        run_tasks(
            [
                _job(
                    "template",
                    cached_template,
                    (course_root, assignment, template),
                    tmp,
                )
            ],
            1,
        )
        run_seed = None
        if sandbox:
            from .verify.seeds import choose_run_seed

            run_seed = choose_run_seed(assignment, source_root=course_root)

        settings = Settings(
            sandbox=sandbox,
            require_sandbox=False,
            fork_kernels=True,
            cell_timeout=cell_timeout,
            notebook_timeout=limit,
            sandbox_limits=(),
        )
        make_task = partial(
            build_task,
            course_root,
            settings,
            {assignment: template},
            {} if run_seed is None else {assignment: run_seed},
        )
        n_notebooks = {assignment: len(TemplateInfo.load(template).notebooks)}
        (tmp / "run").mkdir()
        run_preflight(
            course_root,
            assignment,
            template,
            settings,
            workdir=tmp / "preflight",
            grade=partial(
                grade_folders, make_task, assignment, tmp / "run", n_notebooks, 1
            ),
            log=lambda _line: None,
        )
        result = grade_folders(
            make_task, assignment, tmp / "run", n_notebooks, 1, {"you": submission}
        )["you"]
        log(f"{notebook.name}: assignment {assignment}")
        by_hand = _hand_graded(template / "release" / assignment)
        log(_table(result, _notebook_messages(result, name), by_hand))
        log(
            f"outcome: {result.outcome}"
            + (f" ({result.reason})" if result.reason else "")
        )
        log(
            "Each function needs its visible check and its hidden tests to pass; "
            "the hidden tests' code is not shown."
        )
        if verbose:
            log(hidden_inputs_report(course_root, assignment))
    return result


def hidden_inputs_report(course_root: Path, assignment: str) -> str:
    """The shapes of the inputs each function's hidden tests compare on.

    Read from the hidden tests themselves (``Grader.hidden_inputs``): what a
    test gives :meth:`~autograder.hidden.Grader.compare` is recorded as data,
    never read from the test's source text. Only shapes, sizes and settings are
    shown, not the values; some tests also compare gradients with finite
    differences, on inputs like these.
    """
    lines = [""] + textwrap.wrap(
        "Inputs of the hidden tests, by shape (each function is run on these and "
        "compared with the course's solution):",
        width=MESSAGE_WIDTH,
    )
    listed = False
    with source_course_root(course_root):
        for cell in graded_cells(assignment, source_root=course_root):
            describe = getattr(cell.grader, "hidden_inputs", None)
            if not callable(describe):
                continue
            listed = True
            lines.append(f"  {cell.function}")
            for call in describe(cell.function):
                lines += _wrap_call(call, indent=4)
    if not listed:
        lines.append(f"  (the hidden tests of {assignment} do not list their inputs)")
    return "\n".join(lines)


def _wrap_call(text: str, *, indent: int) -> list[str]:
    """Wrap a description of inputs after its commas, never inside a shape."""
    depth, chars = 0, []
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        breakable = char == " " and depth == 0 and text[i - 1] == ","
        chars.append("\0" if char == " " and not breakable else char)
    wrapped = textwrap.wrap(
        "".join(chars),
        width=MESSAGE_WIDTH - indent,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
        break_long_words=False,
    )
    return [line.replace("\0", " ") for line in wrapped]


def _hand_graded(release: Path) -> set[str]:
    """Grade ids of the cells a human grades (written answers)."""
    return {
        cell.grade_id
        for path in release.glob("*.ipynb")
        for cell in grade_cells(path)
        if cell.by_hand
    }


def _notebook_messages(result: GradeResult, name: str) -> dict[str, str]:
    """What each test cell printed in the graded notebook (for cells the
    grader's report does not cover)."""
    if result.autograded_dir is None:
        return {}
    path = Path(result.autograded_dir) / name
    if not path.is_file():
        return {}
    return check_messages(nbformat.read(str(path), as_version=4))


def _helper_files(course_root: Path, assignment: str) -> list[Path]:
    """Files given to students beside the notebook (e.g. frozen helpers)."""
    folder = Path(course_root) / "release" / assignment
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix == ".py"]


def _job(key, fn, args, tmp: Path) -> Job:
    def fail(message="timed out"):
        raise AutograderError(f"could not prepare the assignment: {message}")

    return Job(key, fn, args, tmp / f"{key}.log", 600, fail, fail)
