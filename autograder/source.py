"""Source notebooks: the one place reference solutions live, read here.

Hidden tests grade a function against the reference on fresh inputs, and grade a
function that calls earlier exercises with *correct* versions of those exercises
patched in. Rather than keep a second copy of the solutions (which would drift),
this module builds a namespace from the source notebook itself: the imports of
cells tagged ``setup`` and the ``import``/``def``/``class`` statements of every
solution cell. Nothing here is ever part of a release.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
from functools import cache
from pathlib import Path

from . import REPO_ROOT
from .errors import SourceNotebookError

__all__ = [
    "COURSE_ROOT_ENV",
    "course_root",
    "find_course_root",
    "reference_namespace",
    "source_notebook_path",
]

_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


#: Environment variable naming the course root whose ``source/`` holds the
#: reference (set by the grader for the kernels it starts; any nbgrader run may
#: set it too).
COURSE_ROOT_ENV = "AUTOGRADER_COURSE_ROOT"

_course_roots: list[Path] = []


@contextlib.contextmanager
def course_root(root: str | os.PathLike):
    """Take the reference from ``root``'s ``source/`` while the block runs."""
    _course_roots.append(Path(root).resolve())
    try:
        yield
    finally:
        _course_roots.pop()


def _candidates(assignment: str) -> list[Path]:
    """Course roots to look in, most specific first (see :func:`find_course_root`)."""
    found = []
    if _course_roots:
        found.append(_course_roots[-1])
    if os.environ.get(COURSE_ROOT_ENV):
        found.append(Path(os.environ[COURSE_ROOT_ENV]))
    # nbgrader runs a notebook in <course>/autograded/<student>/<assignment>/ (or
    # the source folder when validating): the course is an ancestor of the cwd.
    with contextlib.suppress(OSError):
        here = Path.cwd().resolve()
        found += [here, *here.parents]
    found.append(REPO_ROOT)
    return found


def find_course_root(assignment: str) -> Path:
    """The course root whose ``source/<assignment>/`` the reference comes from.

    In order: the root given to :func:`course_root`, ``$AUTOGRADER_COURSE_ROOT``,
    the working folder and its parents (where nbgrader runs a notebook), and the
    repository this package was installed from.

    Raises:
        SourceNotebookError: naming every place looked in.
    """
    tried = []
    for root in _candidates(assignment):
        path = root / "source" / assignment / f"{assignment}.ipynb"
        if path.is_file():
            return root
        tried.append(str(path))
    raise SourceNotebookError(
        f"no source notebook for assignment {assignment!r}; looked for "
        f"{tried[0]} and {len(tried) - 1} other place(s) (the course being graded, "
        f"${COURSE_ROOT_ENV}, the working folder's parents, the repository). Grade "
        "from the course directory, or set AUTOGRADER_COURSE_ROOT to it."
    )


def source_notebook_path(assignment: str, *, root: Path | None = None) -> Path:
    """Return the path of ``source/<assignment>/<assignment>.ipynb``.

    Args:
        root: course root; default: :func:`find_course_root`.

    Raises:
        SourceNotebookError: if the notebook does not exist.
    """
    root = Path(root) if root is not None else find_course_root(assignment)
    path = root / "source" / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        raise SourceNotebookError(
            f"no source notebook for assignment {assignment!r}: expected {path}"
        )
    return path


def _definitions(source: str, where: str) -> ast.Module:
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise SourceNotebookError(f"{where} does not parse: {exc}") from exc
    tree.body = [node for node in tree.body if isinstance(node, _KEEP)]
    return tree


@cache
def _load(path: str) -> dict:
    # Plain JSON, not nbformat: this runs inside every graded kernel, and importing
    # nbformat (schema validation machinery) costs over a second there.
    with open(path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    namespace: dict = {"__name__": f"reference:{Path(path).stem}"}
    # Modules shipped beside the notebook (e.g. frozen helpers) must be importable,
    # as they are in the student's folder.
    folder = str(Path(path).parent)
    sys.path.insert(0, folder)
    try:
        _execute_definitions(notebook, namespace, path)
    finally:
        sys.path.remove(folder)
    return namespace


def _execute_definitions(notebook, namespace: dict, path: str) -> None:
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        metadata = cell.get("metadata", {})
        meta = metadata.get("nbgrader", {})
        is_setup = "setup" in metadata.get("tags", [])
        is_solution = meta.get("solution", False) and not meta.get("grade", False)
        if not (is_setup or is_solution):
            continue
        where = f"{path} cell {index}"
        source = cell["source"]
        if isinstance(source, list):
            source = "".join(source)
        code = compile(_definitions(source, where), where, "exec")
        try:
            exec(code, namespace)  # noqa: S102 - our own source notebook
        except Exception as exc:  # noqa: BLE001 - name the cell that failed
            kind = "setup cell" if is_setup else "solution cell"
            raise SourceNotebookError(
                f"{kind} {meta.get('grade_id', index)!r} of {path} does not run "
                f"in the grader: {type(exc).__name__}: {exc}"
            ) from exc


def reference_namespace(assignment: str, *, root: Path | None = None) -> dict:
    """Return the reference implementations of an assignment, by name.

    Args:
        assignment: assignment id, e.g. ``"04_deep_network_step_by_step"``.
        root: course root (default: :func:`find_course_root`).

    Returns:
        A fresh dict ``name -> object`` (functions defined in the solution cells and
        the names imported by setup cells). Functions look up each other in a
        shared private namespace, so patching the returned dict changes nothing.
    """
    return dict(_load(str(source_notebook_path(assignment, root=root))))
