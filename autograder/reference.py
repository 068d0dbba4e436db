"""Reference solutions, read from the one place they live: the source notebooks.

Hidden tests grade a function against the reference on fresh inputs, and grade a
function that calls earlier exercises with *correct* versions of those exercises
patched in. Rather than keep a second copy of the solutions (which would drift),
this module builds a namespace from the source notebook itself: the imports of
cells tagged ``setup`` and the ``import``/``def``/``class`` statements of every
solution cell. Nothing here is ever part of a release.
"""

from __future__ import annotations

import ast
import json
import sys
from functools import cache
from pathlib import Path

from . import REPO_ROOT
from .errors import SourceNotebookError

__all__ = ["reference_namespace", "source_notebook_path"]

_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


def source_notebook_path(assignment: str, *, root: Path | None = None) -> Path:
    """Return the path of ``source/<assignment>/<assignment>.ipynb``.

    Raises:
        SourceNotebookError: if the notebook does not exist.
    """
    root = Path(root) if root is not None else REPO_ROOT
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
        exec(code, namespace)  # noqa: S102 - our own source notebook


def reference_namespace(assignment: str, *, root: Path | None = None) -> dict:
    """Return the reference implementations of an assignment, by name.

    Args:
        assignment: assignment id, e.g. ``"04_deep_network_step_by_step"``.
        root: repository root (default: the one this package lives in).

    Returns:
        A fresh dict ``name -> object`` (functions defined in the solution cells and
        the names imported by setup cells). Functions look up each other in a
        shared private namespace, so patching the returned dict changes nothing.
    """
    return dict(_load(str(source_notebook_path(assignment, root=root))))
