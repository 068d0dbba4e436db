"""Set the notebook's own scores beside the verified ones; the verified count.

A disagreement (the student's kernel passed a visible check that the grader's
run of it fails, or the other way round) is a sign of tampering and is flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .verdicts import CellVerdict
from .visible import FAILED, NOT_CHECKED, PASSED

__all__ = ["Reconciled", "reconcile"]


# --- nbgrader vs verified ---------------------------------------------------------


class Reconciled(NamedTuple):
    """The score that counts for one cell and how it was decided."""

    score: float | None
    max_points: float
    nbgrader: float | None
    verified: float | None
    disagree: bool
    note: str


def reconcile(
    nbgrader_scores: Mapping[str, float | None],
    verification: Mapping[str, CellVerdict],
) -> dict[str, Reconciled]:
    """Set nbgrader's in-notebook scores against the verified ones.

    The verified score counts wherever there is one. Inside the sandbox the
    notebook's own run can only decide the visible check (its hidden tests are a
    stand-in), so a disagreement is a cell whose in-notebook result differs from
    the trusted run of the *same* visible check: the student's kernel passed a
    check the grader's run of it fails, or the other way round. A check that
    skipped its function (``"not checked"``) passes on both sides.

    Args:
        nbgrader_scores: ``{grade_id: points}`` from the gradebook (None or a
            missing key: nbgrader did not score it, e.g. the kernel died; never
            a disagreement, the outcome says why).
        verification: the result of :func:`verify_submission`.
    """
    out = {}
    for grade_id in sorted(set(nbgrader_scores) | set(verification)):
        nb = nbgrader_scores.get(grade_id)
        verdict = verification.get(grade_id)
        if verdict is None or verdict.points is None:
            full = verdict.max_points if verdict else float("nan")
            note = verdict.message if verdict else "not verified"
            out[grade_id] = Reconciled(nb, full, nb, None, False, note)
            continue
        disagree = False
        if nb is not None and verdict.visible in (PASSED, FAILED, NOT_CHECKED):
            notebook_passed = float(nb) >= verdict.max_points - 1e-9
            disagree = notebook_passed != (verdict.visible != FAILED)
        note = verdict.message
        if disagree:
            shown = f"{nb:g}/{verdict.max_points:g}"
            note = (
                f"the notebook's own run gave {shown}, the grader's run of the same "
                f"visible check {verdict.visible}; the verified score "
                f"{verdict.points:g}/{verdict.max_points:g} counts. {verdict.message}"
            )
        out[grade_id] = Reconciled(
            verdict.points, verdict.max_points, nb, verdict.points, disagree, note
        )
    return out
