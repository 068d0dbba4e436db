"""Verify one submitted notebook: every graded function judged here.

The runner executes the student's cells in the sandbox (:mod:`.client`); for
each graded cell, in notebook order, the visible check runs here on proxies
(:mod:`.visible`), then the hidden test, with fresh inputs (:mod:`.seeds`).
Only the trusted process decides a score.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import nbformat

from ..sandbox.config import SandboxConfig
from ..source import (
    GradedCell,
    SourceNotebook,
    course_root,
    grade_id_of,
    load_source_notebook,
    nbgrader_metadata,
    source_notebook_path,
)
from .client import RemoteFunction, Session
from .seeds import fresh_inputs, run_seed_for
from .verdicts import (
    MAX_NOTEBOOK_BYTES,
    CellVerdict,
    RunnerFailure,
    StudentCodeError,
    Unverifiable,
    Verification,
)
from .visible import FAILED, PASSED, run_visible_check

__all__ = ["verify_submission"]


def _read_student(path: Path, max_bytes: int):
    """Return the notebook node, or raise ValueError saying why it is unreadable."""
    if not path.is_file():
        raise ValueError(f"{path.name} is missing")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name} is empty")
    if size > max_bytes:
        raise ValueError(f"{path.name} is larger than {max_bytes // 2**20} MiB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path.name} is not a JSON notebook: {exc}") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
        raise ValueError(f"{path.name} is not a readable notebook: {exc}") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path.name} has no cells")
    return nb


def _student_cells(nb, source: SourceNotebook) -> list[dict]:
    """The code the runner executes, in the student's notebook order.

    Locked cells come from the source notebook and test cells are left out.
    Solution cells run in full; of any other cell, the runner keeps only the
    ``import``/``def``/``class`` statements (the trusted side never parses
    student code: the runner does, in the sandbox).
    """
    cells, seen_setup = [], set()
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or not isinstance(cell.get("source"), str):
            continue
        meta = nbgrader_metadata(cell)
        grade_id = grade_id_of(meta)
        label = f"cell {index}" + (f" ({grade_id[:80]})" if grade_id else "")
        if grade_id in source.test_ids or meta.get("grade"):
            continue
        if grade_id in source.locked:
            cells.append(
                {"label": label, "source": source.locked[grade_id], "locked": True}
            )
            seen_setup.add(grade_id)
        elif grade_id in source.solution_ids:
            cells.append({"label": label, "source": cell.source})
        else:
            cells.append({"label": label, "source": cell.source, "only": "definitions"})
    missing = [
        {"label": f"setup ({g})", "source": source.locked[g], "locked": True}
        for g in source.setup_ids
        if g not in seen_setup
    ]
    return missing + cells


# --- verification ---------------------------------------------------------------


def verify_submission(
    notebook_path: str | os.PathLike,
    assignment: str,
    *,
    sandbox_config: SandboxConfig | None = None,
    source_root: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
    run_seed: int | None | str = "random",
    max_notebook_bytes: int = MAX_NOTEBOOK_BYTES,
) -> Verification:
    """Verify the graded functions of one submitted notebook.

    Args:
        notebook_path: the student's notebook (as submitted, or autograded).
        assignment: assignment id; the source notebook is
            ``<source_root>/source/<assignment>/<assignment>.ipynb``.
        sandbox_config: how to sandbox the student's code (default: defaults,
            with the system temp folder as scratch).
        source_root: course root holding ``source/`` (default: the repository).
        workdir: the folder the student's code sees, with the assignment's
            helper files (default: the notebook's folder; pass the autograded
            folder, where nbgrader has copied them).
        run_seed: integer mixed into the hidden inputs (see
            :func:`choose_run_seed`); ``"random"`` (default) draws one on which
            the reference passes, once per process and assignment; None keeps
            the literal seeds. The seed used is recorded in the result.
        max_notebook_bytes: larger notebooks are not read (every cell scores 0).

    Returns:
        ``{grade_id: CellVerdict(points, max_points, message)}`` for every test
        cell of the source notebook; ``points`` is None for cells without a
        hidden grader call (nbgrader's score stands there).
    """
    started = time.monotonic()
    notebook_path = Path(notebook_path)
    config = sandbox_config or SandboxConfig()
    source_path = source_notebook_path(assignment, root=source_root)
    source = load_source_notebook(source_path)
    if run_seed == "random":
        run_seed = run_seed_for(assignment, source_root=source_root)
    result = Verification()
    result.run_seed = run_seed
    graded = {c.grade_id for c in source.cells}
    for grade_id, full in source.max_points.items():
        if grade_id not in graded:
            result[grade_id] = CellVerdict(
                None, full, "not verified: this cell calls no hidden grader"
            )
    try:
        nb = _read_student(notebook_path, max_notebook_bytes)
    except ValueError as exc:
        for cell in source.cells:
            result[cell.grade_id] = CellVerdict(0.0, cell.points, f"0: {exc}")
        result.notes.append(str(exc))
        result.seconds = time.monotonic() - started
        return result
    folder = Path(workdir) if workdir is not None else notebook_path.parent
    session = Session(
        source,
        _student_cells(nb, source),
        folder.resolve(),
        config,
        time.monotonic() + config.limits.notebook_timeout,
    )
    order = [c.function for c in source.cells]
    try:
        with course_root(source.root):
            for position, cell in enumerate(source.cells):
                session.forbidden = set(order[position:])
                result[cell.grade_id] = _grade_cell(cell, session, run_seed)
    finally:
        session.close()
    result.sandboxed = session.sandboxed
    if session.sandboxed is False:
        result.notes.append("UNSANDBOXED: the student's code ran without the sandbox")
    result.notes += session.load_errors
    result.locked_errors = list(session.locked_errors)
    if session.restarts:
        result.notes.append(f"the runner was restarted {session.restarts} time(s)")
    result.seconds = time.monotonic() - started
    return result


def _proxies(session: Session, reference: Mapping) -> dict:
    namespace: dict = {}
    for name in session.defined:
        namespace[name] = RemoteFunction(name, session, namespace, reference)
    return namespace


def _grade_cell(cell: GradedCell, session: Session, run_seed) -> CellVerdict:
    """The cell's points: its visible check, then its hidden test, both here."""
    full = cell.points
    try:
        session.ensure_runner()
    except RunnerFailure as exc:
        return CellVerdict(0.0, full, f"0: {exc}")
    grader = cell.grader
    reference = grader.reference
    seen = session.source.visible.get(cell.grade_id)
    visible = PASSED
    broken = None
    if seen is not None and session.seen_visible.get(cell.grade_id) is None:
        try:
            verdict = run_visible_check(
                seen,
                prelude=session.source.prelude,
                statements=session.source.before.get(cell.grade_id, []),
                functions=_proxies(session, reference),
                student_names=set(session.source.defs),
            )
        except RunnerFailure as exc:
            return CellVerdict(0.0, full, f"0: {exc}", FAILED)
        session.seen_visible[cell.grade_id] = verdict
    if seen is not None:
        verdict = session.seen_visible[cell.grade_id]
        visible, broken = verdict.status, verdict.broken_dependency
        if visible == FAILED and verdict.not_implemented:
            message = f"0: {cell.function} is not implemented ({verdict.message})"
            return CellVerdict(0.0, full, message, FAILED)
        if visible == FAILED:
            return CellVerdict(
                0.0, full, f"0: visible check failed: {verdict.message}", FAILED
            )
    namespace = _proxies(session, reference)

    def failed(message: str, hidden: str = FAILED) -> CellVerdict:
        return CellVerdict(0.0, full, message, visible, hidden, broken)

    try:
        with fresh_inputs(run_seed, {cell.module}):
            grader.grade(cell.function, namespace)
    except Unverifiable as exc:
        return CellVerdict(
            None, full, f"not verified: {exc}", visible, "not verified", broken
        )
    except NotImplementedError as exc:
        return failed(f"0: {cell.function} is not implemented ({exc})")
    except RunnerFailure as exc:
        return failed(f"0: {exc}")
    except StudentCodeError as exc:
        return failed(f"0: {cell.function}: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failed check costs the cell
        text = str(exc).strip() or type(exc).__name__
        return failed(f"0: {type(exc).__name__}: {text}")
    return CellVerdict(
        full,
        full,
        "passed the visible check and the hidden tests (verified)",
        visible,
        PASSED,
        broken,
    )
