"""Merge results into the course gradebook: a single writer, an atomic replace.

Workers never touch ``<course>/gradebook.db``. This process (the only writer)
copies it, stores every definite result in the copy with nbgrader's
``Gradebook`` API (keeping manual grades and comments), and renames the finished
copy over the original: a run that crashes leaves the previous grades intact,
and readers see the old or the new gradebook, never a half-written one.
Autograded notebooks are installed the same way, one rename per submission.

Late penalties are decided here, on the final (verified) scores, by the late
submission plugin the course configures for nbgrader (``AssignLatePenalties.
plugin_class``, ``LateSubmissionPlugin.penalty_method``), against the due date
the course's gradebook holds (with the student's extension, kept on regrade):
nbgrader's own penalty step ran on the notebook's in-kernel scores.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..course import course_config
from .outcomes import GradeResult

__all__ = ["install_autograded", "late_plugin", "merge_results"]


def _sync_assignment(dst, src, assignment: str) -> None:
    """Copy an assignment's definition (notebooks, cells) between gradebooks."""
    from nbgrader.api import MissingEntry

    original = src.find_assignment(assignment)
    try:
        dst.find_assignment(assignment)
    except MissingEntry:
        dst.update_or_create_assignment(assignment, duedate=original.duedate)
    # An existing assignment keeps the due date the instructor gave it.
    for nb in original.notebooks:
        dst.update_or_create_notebook(nb.name, assignment)
        # Grade cells and task cells carry the same fields.
        for cells, create in (
            (nb.grade_cells, dst.update_or_create_grade_cell),
            (nb.task_cells, dst.update_or_create_task_cell),
        ):
            for cell in cells:
                create(
                    cell.name,
                    nb.name,
                    assignment,
                    max_score=cell.max_score,
                    cell_type=cell.cell_type,
                )
        for cell in nb.solution_cells:
            dst.update_or_create_solution_cell(cell.name, nb.name, assignment)
        for cell in nb.source_cells:
            dst.update_or_create_source_cell(
                cell.name,
                nb.name,
                assignment,
                cell_type=cell.cell_type,
                locked=cell.locked,
                source=cell.source,
                checksum=cell.checksum,
            )


def _late_penalty(plugin, student: str, score: float, seconds_late: float):
    """The course plugin's penalty for one notebook, kept within [0, score] as
    nbgrader's ``AssignLatePenalties`` keeps it; None when not late."""
    if seconds_late <= 0:
        return None
    penalty = plugin.late_submission_penalty(student, score, seconds_late)
    return None if penalty is None else min(max(0.0, float(penalty)), score)


def late_plugin(config):
    """The late submission plugin the course configures for nbgrader."""
    from nbgrader.preprocessors import AssignLatePenalties

    step = AssignLatePenalties(config=config)
    step.init_plugin()
    return step.plugin_inst


def _store(gb, result: GradeResult, plugin) -> None:
    from nbgrader.api import MissingEntry

    gb.update_or_create_student(result.student)
    manual = {}
    extension = None
    try:
        old = gb.find_submission(result.assignment, result.student)
    except MissingEntry:
        pass
    else:
        extension = old.extension
        for nb in old.notebooks:
            for grade in nb.grades:
                if grade.manual_score is not None or grade.extra_credit:
                    manual[("g", grade.name)] = (grade.manual_score, grade.extra_credit)
            for comment in nb.comments:
                if comment.manual_comment:
                    manual[("c", comment.name)] = comment.manual_comment
        gb.remove_submission(result.assignment, result.student)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    submission = gb.add_submission(
        result.assignment, result.student, extension=extension, **kwargs
    )
    penalties = {}
    for nb in submission.notebooks:
        # The formgrader shows nbgrader's own flag: a disagreement (tampering)
        # or a refused submission needs a human.
        nb.flagged = bool(result.flags.disagreement or result.flags.refused)
        for grade in nb.grades:
            score = result.scores.get(grade.name, (0.0, 0.0))[0]
            grade.auto_score = score
            grade.manual_score, grade.extra_credit = manual.get(
                ("g", grade.name), (None, None)
            )
            grade.needs_manual_grade = score is None or grade.manual_score is not None
        for comment in nb.comments:
            comment.auto_comment = result.comments.get(comment.name)
            comment.manual_comment = manual.get(("c", comment.name))
        gb.db.flush()
        gb.db.expire(nb, ["score"])  # a sum in SQL: read it after the flush
        penalty = _late_penalty(
            plugin, result.student, nb.score, submission.total_seconds_late
        )
        nb.late_submission_penalty = penalty
        if penalty:
            penalties[nb.name] = penalty
    gb.db.commit()
    result.late_penalties = penalties  # what the outcome records: what is stored


def merge_results(
    course_root: Path,
    results: Sequence[GradeResult],
    templates: dict[str, Path],
    workdir: Path,
) -> list[str]:
    """Write ``results`` into ``<course_root>/gradebook.db`` atomically.

    Returns:
        One line per submission whose grades could not be stored (the others
        are stored regardless). Each stored result's ``late_penalties`` is set
        to the penalties stored (see the module docstring).

    The merge works on a copy in ``workdir``; the finished copy is moved next to
    the gradebook and renamed over it, so readers see the old or the new
    gradebook, never a half-written one.
    """
    from nbgrader.api import Gradebook

    course_root = Path(course_root)
    target = course_root / "gradebook.db"
    work = Path(workdir) / "gradebook.db"
    if target.exists():
        shutil.copyfile(target, work)
    else:
        shutil.copyfile(next(iter(templates.values())) / "gradebook.db", work)
    config = course_config(course_root)
    course_id = config.CourseDirectory.get("course_id", "") or ""
    url = f"sqlite:///{work}"
    failures: list[str] = []
    plugin = late_plugin(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(url, course_id) as gb:
            for assignment, template in templates.items():
                with Gradebook(
                    f"sqlite:///{template / 'gradebook.db'}", course_id
                ) as src:
                    _sync_assignment(gb, src, assignment)
            for result in results:
                if not result.definite:  # a pipeline failure keeps the old grades
                    continue
                try:
                    _store(gb, result, plugin)
                except Exception as exc:  # noqa: BLE001 - one student, not the class
                    gb.db.rollback()
                    failures.append(
                        f"{result.student}/{result.assignment}: the gradebook "
                        f"refused the grades ({type(exc).__name__}: {exc})"
                    )
    staged = course_root / f".gradebook.db.{os.getpid()}.new"
    shutil.copyfile(work, staged)
    with open(staged, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(staged, target)
    return failures


def install_autograded(course_root: Path, result: GradeResult) -> None:
    """Replace ``autograded/<student>/<assignment>/`` with this run's output."""
    dest = Path(course_root) / "autograded" / result.student / result.assignment
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.parent / f".{result.assignment}.new"
    old = dest.parent / f".{result.assignment}.old"
    for path in (staged, old):
        if path.exists():
            shutil.rmtree(path)
    if result.autograded_dir is not None and Path(result.autograded_dir).is_dir():
        shutil.copytree(result.autograded_dir, staged)
    else:
        staged.mkdir()
    if dest.exists():
        os.replace(dest, old)
    os.replace(staged, dest)
    if old.exists():
        shutil.rmtree(old)
