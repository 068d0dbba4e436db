"""Source notebooks: the one place reference solutions live, read here.

Hidden tests grade a function against the reference on fresh inputs, and grade a
function that calls earlier exercises with *correct* versions of those exercises
patched in. Rather than keep a second copy of the solutions (which would drift),
this module builds a namespace from the source notebook itself: the imports of
cells tagged ``setup`` and the ``import``/``def``/``class`` statements of every
solution cell (:func:`reference_namespace`). Nothing here is ever part of a
release.

The same notebook tells grading everything else it needs
(:func:`load_source_notebook`): the graded cells and the hidden grader each
calls, their points, the setup and locked cells, each test cell's visible
check, and every reference definition with the names it uses, from which
:func:`reference_code` builds the code of just the functions a hidden test
patches in (and what they call).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from . import REPO_ROOT
from .errors import SourceNotebookError

__all__ = [
    "COURSE_ROOT_ENV",
    "DEFINITIONS",
    "IMPORTS",
    "REFERENCE_MODULE_PREFIX",
    "called_definitions",
    "GradeCell",
    "GradedCell",
    "SourceNotebook",
    "course_root",
    "find_course_root",
    "grade_cells",
    "grade_id_of",
    "graded_cells",
    "load_source_notebook",
    "nbgrader_metadata",
    "reference_calls",
    "reference_code",
    "reference_namespace",
    "source_notebook_path",
]

#: Statements that bring names in: kept from setup and solution cells.
IMPORTS = (ast.Import, ast.ImportFrom)
#: Statements that define a function or class: what "keep only definitions"
#: keeps, here and (with imports) in the reference namespace.
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_KEEP = (*IMPORTS, *DEFINITIONS)

#: Module name of every reference function (``reference:<assignment>``): how a
#: proxy recognises a correct version a hidden test patched in.
REFERENCE_MODULE_PREFIX = "reference:"


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


def _uses(node: ast.AST) -> set[str]:
    """Every plain name a definition's code mentions (what it may call)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def called_definitions(
    uses: dict[str, set[str]], names: Iterable[str], forbidden: set[str] = frozenset()
) -> list[str]:
    """``names`` and every definition they call, directly or through each other.

    The one statement of "which exercise calls which": ``uses`` maps each
    reference definition to the names its code mentions (in notebook order).
    Nothing in ``forbidden`` is followed. Returned in notebook order.
    """
    wanted: set[str] = set()
    todo = [n for n in names if n in uses and n not in forbidden]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo += [u for u in uses[name] if u in uses and u not in forbidden | wanted]
    return [name for name in uses if name in wanted]


@cache
def _load(path: str) -> tuple[dict, dict[str, set[str]]]:
    # Plain JSON, not nbformat: this runs inside every graded kernel, and importing
    # nbformat (schema validation machinery) costs over a second there.
    with open(path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    namespace: dict = {"__name__": f"{REFERENCE_MODULE_PREFIX}{Path(path).stem}"}
    # Modules shipped beside the notebook (e.g. frozen helpers) must be importable,
    # as they are in the student's folder.
    folder = str(Path(path).parent)
    uses: dict[str, set[str]] = {}
    sys.path.insert(0, folder)
    try:
        _execute_definitions(notebook, namespace, path, uses)
    finally:
        sys.path.remove(folder)
    return namespace, uses


def _execute_definitions(
    notebook, namespace: dict, path: str, uses: dict[str, set[str]]
) -> None:
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
        tree = _definitions(source, where)
        if is_solution:
            for node in tree.body:
                if isinstance(node, DEFINITIONS):
                    uses[node.name] = _uses(node)
        code = compile(tree, where, "exec")
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
    return dict(_load(str(source_notebook_path(assignment, root=root)))[0])


def reference_calls(name: str, assignment: str, *, root: Path | None = None) -> list:
    """The reference definitions ``name``'s reference calls (not ``name`` itself).

    What a hidden test patches in, so that a bug in an earlier exercise costs
    only that exercise's points; in notebook order.
    """
    uses = _load(str(source_notebook_path(assignment, root=root)))[1]
    return [n for n in called_definitions(uses, [name]) if n != name]


# --- what grading reads of a source notebook -----------------------------------


@dataclass(frozen=True)
class GradedCell:
    """A test cell whose hidden part calls ``<grader>.grade(function, ...)``."""

    grade_id: str
    function: str
    points: float
    grader: object
    module: str


@dataclass
class SourceNotebook:
    cells: list[GradedCell]
    max_points: dict[str, float]
    locked: dict[str, str]  # grade_id -> source (setup and other locked cells)
    setup_ids: list[str]
    test_ids: set[str]
    solution_ids: set[str]
    prelude: str
    defs: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    root: Path = Path()  # the course root whose source/ this is
    #: grade_id -> the test cell's visible check (hidden block removed).
    visible: dict[str, str] = field(default_factory=dict)
    #: grade_id -> top-level statements of the trusted cells before it.
    before: dict[str, list[str]] = field(default_factory=dict)


def nbgrader_metadata(cell) -> dict:
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def grade_id_of(meta: dict) -> str | None:
    grade_id = meta.get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


@dataclass(frozen=True)
class GradeCell:
    """A cell that carries points: an autograded test or a written answer."""

    grade_id: str
    points: float
    #: True for an answer a person grades (nbgrader's grade + solution cell).
    by_hand: bool


def grade_cells(path: Path) -> list[GradeCell]:
    """Every cell of an nbgrader notebook that carries points, in notebook order.

    Works on a source or a release notebook (both keep the metadata).

    Raises:
        SourceNotebookError: the notebook cannot be read, or a grade id is
            used twice.
    """
    import nbformat  # not at import time: hidden tests import this module in kernels

    try:
        nb = nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as exc:
        raise SourceNotebookError(f"cannot read {path}: {exc}") from exc
    found: list[GradeCell] = []
    for cell in nb.cells:
        meta = nbgrader_metadata(cell)
        grade_id = grade_id_of(meta)
        if not meta.get("grade") or grade_id is None:
            continue
        if any(c.grade_id == grade_id for c in found):
            raise SourceNotebookError(
                f"{path.name}: grade id {grade_id!r} is used twice"
            )
        points = float(meta.get("points", 0) or 0)
        found.append(GradeCell(grade_id, points, bool(meta.get("solution"))))
    return found


def _grader_calls(source: str) -> list[tuple[ast.expr, str]]:
    """Find ``<expr>.grade("name", ...)`` calls whose expr ends in ``GRADER``."""
    tree = ast.parse(source)
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "grade"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            calls.append((node.func.value, node.args[0].value))
    return calls


def _resolve(expr: ast.expr, namespace: dict):
    if isinstance(expr, ast.Name):
        return namespace[expr.id]
    if isinstance(expr, ast.Attribute):
        return getattr(_resolve(expr.value, namespace), expr.attr)
    from .verify.verdicts import VerifyError

    raise VerifyError(f"cannot resolve grader expression {ast.unparse(expr)!r}")


def load_source_notebook(path: Path) -> SourceNotebook:
    """Read everything grading needs from a source notebook.

    Graded cells and their hidden graders, points, the setup and other locked
    cells, the visible checks, the reference's imports (``prelude``) and its
    definitions with the names each one uses (what calls what).
    """
    import nbformat  # not at import time: hidden tests import this module in kernels

    from .verify.visible import strip_hidden_tests, top_level_statements

    nb = nbformat.read(str(path), as_version=4)
    cells, max_points, locked, setup_ids = [], {}, {}, []
    test_ids, solution_ids = set(), set()
    prelude: list[str] = []
    defs: dict[str, tuple[str, set[str]]] = {}
    keep = IMPORTS
    visible: dict[str, str] = {}
    before: dict[str, list[str]] = {}
    trusted: list[str] = []  # setup and plain cells seen so far
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = nbgrader_metadata(cell)
        grade_id = meta.get("grade_id")
        is_setup = "setup" in cell.metadata.get("tags", [])
        where = f"{path.name} cell {index}"
        if not meta.get("grade") and not meta.get("solution"):
            trusted.append(cell.source)
        if meta.get("grade"):
            test_ids.add(grade_id)
            visible[grade_id] = strip_hidden_tests(cell.source)
            before[grade_id] = top_level_statements(trusted)
            max_points[grade_id] = float(meta.get("points", 0))
            namespace: dict = {}
            tree = ast.parse(cell.source)
            imports = [n for n in tree.body if isinstance(n, keep)]
            exec(compile(ast.Module(imports, []), where, "exec"), namespace)  # noqa: S102
            for expr, function in _grader_calls(cell.source):
                grader = _resolve(expr, namespace)
                module = getattr(
                    _resolve(expr.value, namespace)
                    if isinstance(expr, ast.Attribute)
                    else None,
                    "__name__",
                    type(grader).__module__,
                )
                cells.append(
                    GradedCell(grade_id, function, max_points[grade_id], grader, module)
                )
            continue
        if meta.get("locked") and grade_id:
            locked[grade_id] = cell.source
            if is_setup:
                setup_ids.append(grade_id)
        if meta.get("solution"):
            solution_ids.add(grade_id)
        if is_setup or meta.get("solution"):
            tree = ast.parse(cell.source)
            for node in tree.body:
                if isinstance(node, keep):
                    prelude.append(ast.unparse(node))
                elif not is_setup and isinstance(node, DEFINITIONS):
                    defs[node.name] = (ast.unparse(node), _uses(node))
    return SourceNotebook(
        cells,
        max_points,
        locked,
        setup_ids,
        test_ids,
        solution_ids,
        "\n".join(prelude),
        defs,
        path.resolve().parents[2],
        visible,
        before,
    )


def graded_cells(
    assignment: str, *, source_root: Path | None = None
) -> list[GradedCell]:
    """Return the test cells of an assignment that verified scoring covers."""
    return load_source_notebook(
        source_notebook_path(assignment, root=source_root)
    ).cells


def reference_code(
    source: SourceNotebook, names: Iterable[str], forbidden: set[str]
) -> str:
    """The prelude plus the definitions of ``names`` and what they use.

    Nothing in ``forbidden`` (the function being graded and later ones) is
    included, even when a wanted function calls it.
    """
    uses = {name: used for name, (_, used) in source.defs.items()}
    wanted = set(called_definitions(uses, names, forbidden))
    parts = [source.prelude]
    parts += [src for name, (src, _) in source.defs.items() if name in wanted]
    return "\n\n".join(parts)
