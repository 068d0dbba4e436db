"""Discover the submissions to grade; ``submitted/`` is only ever read.

A link (student folder or assignment folder) is listed, not followed: the
intake (:mod:`.intake`) refuses it with a reason, so it shows in the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..course import list_assignments
from ..errors import UsageError

__all__ = ["discover_submissions"]


def discover_submissions(
    course_root: Path, assignments: Sequence[str] | None = None, students=None
) -> list[tuple[str, str, Path]]:
    """List ``(assignment, student, folder)`` for every submission to grade.

    Raises:
        UsageError: for an assignment that has no source notebook.
    """
    course_root = Path(course_root)
    known = list_assignments(course_root) if (course_root / "source").is_dir() else []
    wanted = list(assignments) if assignments else known
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise UsageError(
            f"unknown assignment(s) {unknown} in {course_root / 'source'}; "
            f"known: {', '.join(known) or 'none'}"
        )
    found = []
    submitted = course_root / "submitted"
    for student_dir in sorted(submitted.iterdir()) if submitted.is_dir() else []:
        # A link (student folder or assignment folder) is listed, not followed
        # here: the intake refuses it with a reason, so it shows in the table.
        if student_dir.name.startswith(".") or not (
            student_dir.is_symlink() or student_dir.is_dir()
        ):
            continue
        if students and student_dir.name not in students:
            continue
        for assignment in wanted:
            folder = student_dir / assignment
            if folder.is_symlink() or folder.is_dir():
                found.append((assignment, student_dir.name, folder))
    return sorted(found)
