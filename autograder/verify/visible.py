"""The visible check of a test cell, run by the trusted grader.

A graded cell passes when its visible check *and* its hidden test pass, on every
path (the student's own kernel, ``check``, ``grade``). The student's kernel can
fake its own visible check, so the verified path runs it again here, in the
trusted process: the check's code comes from the *source* notebook (the test
cell without its hidden block), the student's functions are proxies whose calls
run in the sandboxed runner, and any other name the check reads (``train_x`` in
assignment 01) is rebuilt from the source notebook's own statements that assign
it (a backward slice over the plain cells before the test cell), calling the
student's functions through the same proxies.

Whether a check skipped its function because a function it calls fails its own
check comes back as data (:func:`dlcourse.testcases.collect_skips`), never from
reading what was printed.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "PASSED",
    "FAILED",
    "NOT_CHECKED",
    "NOT_RUN",
    "VisibleVerdict",
    "run_visible_check",
    "strip_hidden_tests",
    "backward_slice",
]

PASSED = "passed"
FAILED = "failed"
NOT_CHECKED = "not checked"
NOT_RUN = "not run"

_BEGIN = "### BEGIN HIDDEN TESTS"
_END = "### END HIDDEN TESTS"
_BUILTINS = frozenset(dir(builtins))


class VisibleVerdict(NamedTuple):
    """What the trusted run of one visible check found.

    Attributes:
        status: :data:`PASSED`, :data:`FAILED` or :data:`NOT_CHECKED` (skipped
            because the function calls an earlier exercise that fails).
        message: the check's own message on failure (empty when it passed).
        broken_dependency: for :data:`NOT_CHECKED`, the exercise that fails.
    """

    status: str
    message: str = ""
    broken_dependency: str | None = None
    not_implemented: bool = False


def strip_hidden_tests(source: str) -> str:
    """Drop the hidden block of a test cell, as nbgrader's release does."""
    kept, hidden = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker.startswith(_BEGIN):
            hidden = True
        elif marker.startswith(_END):
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _loads(node: ast.AST) -> set[str]:
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _stores(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _free_names(tree: ast.Module) -> set[str]:
    """Names a block reads before (or without) assigning them itself."""
    assigned: set[str] = set()
    free: set[str] = set()
    for stmt in tree.body:
        free |= _loads(stmt) - assigned
        assigned |= _stores(stmt)
    return free - _BUILTINS


def backward_slice(
    needed: Collection[str],
    statements: Sequence[str],
    *,
    exclude: Collection[str] = (),
) -> list[str]:
    """The statements (in order) that assign ``needed`` and what they read.

    Args:
        needed: names to rebuild.
        statements: top-level statements of trusted cells, in notebook order.
        exclude: names never rebuilt (the student's functions: proxies).

    Returns:
        The chosen statements, in their original order. Names no statement
        assigns stay unresolved; running the check then names them.
    """
    wanted = set(needed) - set(exclude) - _BUILTINS
    chosen: list[int] = []
    for index in range(len(statements) - 1, -1, -1):
        if not wanted:
            break
        node = ast.parse(statements[index]).body[0]
        stores = _stores(node)
        if not stores & wanted or stores & set(exclude):
            continue
        chosen.append(index)
        if not isinstance(node, ast.AugAssign):
            wanted -= stores
        wanted |= _loads(node) - set(exclude) - _BUILTINS
    return [statements[i] for i in sorted(chosen)]


def top_level_statements(cells: Sequence[str]) -> list[str]:
    """Split trusted cell sources into top-level statements (IPython magics
    and shell lines are left out)."""
    out = []
    for source in cells:
        lines = [
            line
            for line in source.splitlines()
            if not line.lstrip().startswith(("%", "!"))
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        out += [ast.unparse(node) for node in tree.body]
    return out


def run_visible_check(
    code: str,
    *,
    prelude: str,
    statements: Sequence[str],
    functions: Mapping[str, object],
    student_names: Collection[str],
) -> VisibleVerdict:
    """Run one visible check in this (trusted) process.

    Args:
        code: the test cell's source without its hidden block.
        prelude: import statements of the source notebook (setup and solution
            cells), run first.
        statements: trusted top-level statements before the test cell (setup and
            plain cells of the source notebook), sliced for the names the check
            reads.
        functions: the student's functions by name (proxies).
        student_names: names never rebuilt from the source (the student's).

    Returns:
        The verdict; any exception the check raises is a failure with its
        message (this includes a name the grader could not rebuild).
    """
    from dlcourse.testcases import collect_skips

    namespace: dict = {"__name__": "__main__"}
    tree = ast.parse(code)
    exclude = set(student_names) | set(functions)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(prelude, "<source imports>", "exec"), namespace)  # noqa: S102
            # A name the course's own imports bind (``check``, ``tc``) stays
            # the trusted object, even if the student's code rebound it.
            functions = {k: v for k, v in functions.items() if k not in namespace}
            namespace.update(functions)
            needed = _free_names(tree) - set(namespace)
            for stmt in backward_slice(needed, statements, exclude=exclude):
                exec(compile(stmt, "<source notebook>", "exec"), namespace)  # noqa: S102
                namespace.update(functions)
    except NotImplementedError as exc:  # a function the inputs need is unwritten
        return VisibleVerdict(FAILED, str(exc).strip(), not_implemented=True)
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        return VisibleVerdict(
            FAILED,
            "the grader could not prepare this check's inputs "
            f"({type(exc).__name__}: {exc})",
        )
    with collect_skips() as skipped, contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(compile(tree, "<visible check>", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 - any failure fails the check
            text = str(exc).strip() or type(exc).__name__
            if isinstance(exc, NotImplementedError):
                return VisibleVerdict(FAILED, text, not_implemented=True)
            if not isinstance(exc, AssertionError):
                text = f"{type(exc).__name__}: {text}"
            return VisibleVerdict(FAILED, text)
    if skipped:
        return VisibleVerdict(NOT_CHECKED, "", skipped[0][1])
    return VisibleVerdict(PASSED)
