"""Run a source notebook's cells in-process, the way a kernel would, for fast tests.

The real nbgrader runs are in ``test_nbgrader_grading.py``; these helpers let the
assignment tests check every visible check and hidden test, and every typical
mistake, in milliseconds.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from autograder.source import source_notebook_path


def notebook(assignment: str):
    """The source notebook of an assignment."""
    return nbformat.read(str(source_notebook_path(assignment)), as_version=4)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_solution(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("solution")) and not meta.get("grade")


def apply_edits(source: str, replace) -> str:
    """Apply ``[[old, new], ...]``; each ``old`` must occur exactly once."""
    for old, new in replace:
        assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times"
        source = source.replace(old, new)
    return source


def points(assignment: str) -> dict[str, float]:
    """``{grade_id: points}`` of the autograded test cells (code cells; the
    written answer, a markdown cell, is graded by a person)."""
    return {
        grade_id(cell): cell.metadata["nbgrader"]["points"]
        for cell in notebook(assignment).cells
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"
    }


@contextlib.contextmanager
def _importable(folder: Path):
    """Make the modules beside a notebook importable, as the kernel's cwd does."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def notebook_namespace(assignment: str, *, cell=None, replace=()) -> dict:
    """Run the setup and solution cells like a kernel would, one cell changed."""
    namespace = {"__name__": "__main__"}
    with _importable(source_notebook_path(assignment).parent):
        for nb_cell in notebook(assignment).cells:
            if nb_cell.cell_type != "code":
                continue
            tags = nb_cell.metadata.get("tags", [])
            if not ("setup" in tags or is_solution(nb_cell)):
                continue
            source = nb_cell.source
            if cell is not None and grade_id(nb_cell) == cell:
                source = apply_edits(source, replace)
            code = compile(source, f"{assignment}:{grade_id(nb_cell)}", "exec")
            exec(code, namespace)  # noqa: S102 - our own source notebook
    return namespace


def run_test_cells(namespace: dict, graded: Sequence[str], grader) -> dict[str, str]:
    """Run every test cell's visible check and hidden test; return the failures.

    Args:
        namespace: from :func:`notebook_namespace`.
        graded: the graded function names, in notebook order.
        grader: the assignment's hidden-test ``Grader``.

    Returns:
        ``{"test_<name>": printed output + error}`` for every failing cell.
    """
    failures = {}
    for name in graded:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                namespace["tc"].check(name, namespace[name])
                grader.grade(name, namespace)
        except Exception as exc:  # noqa: BLE001 - any error fails the test cell
            failures[f"test_{name}"] = f"{out.getvalue()}{type(exc).__name__}: {exc}"
    return failures


def demo_outputs(assignment: str) -> list[tuple[int, str]]:
    """Run every demo cell (tag ``expected-output``) in-process, in order.

    The setup and solution cells run first (:func:`notebook_namespace`), then each
    demo cell in notebook order, with its printed text captured.

    Returns:
        ``[(index of the demo cell, what it printed), ...]``.
    """
    namespace = notebook_namespace(assignment)
    printed = []
    with _importable(source_notebook_path(assignment).parent):
        for index, cell in enumerate(notebook(assignment).cells):
            if "expected-output" not in cell.metadata.get("tags", []):
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(
                    compile(cell.source, f"{assignment}:demo{index}", "exec"), namespace
                )  # noqa: S102
            printed.append((index, out.getvalue()))
    return printed
