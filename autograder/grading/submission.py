"""Grade one submission: a pure function of (task, scratch folder).

:func:`grade_submission` writes only inside its scratch folder, in order:

1. **intake** (:mod:`.intake`): refuse links and odd files, copy the rest;
2. **inspection** (:mod:`.inspection`): which notebooks can be graded;
3. **the notebook run**: nbgrader's ``autograde`` in a scratch course built
   from the assignment's template (:mod:`.template`), its kernel sandboxed
   (:mod:`autograder.sandbox`) or, with ``--no-sandbox``, forked
   (:mod:`.fastkernels`);
4. **the verified run** (:mod:`autograder.verify`): every graded function
   judged outside the student's process, then set beside the notebook's own
   run (:func:`autograder.verify.reconcile.reconcile`). It starts, in its own
   sandbox, as soon as nbgrader launches the notebook's kernel (the folder the
   student's code sees is ready then) and runs beside the notebook;
5. **the outcome** (:mod:`.outcomes`), with its reason.

Per-cell limit: nbgrader interrupts a cell that runs longer than
``Execute.timeout`` (the course's configuration, or ``--cell-timeout``); the
other cells still run and are scored, so such a submission keeps the points of
the functions it got right. Its outcome is ``timed out`` and the reason names the
cell. The per-notebook wall-clock limit (``--notebook-timeout``) stops the whole
task (:mod:`.pool`): the worker and its kernel are killed and the submission
scores zero.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nbformat

from .. import defaults
from ..course import course_config, default_cell_timeout
from . import progress
from .environ import scoped_environ
from .inspection import Inspection, inspect_submission
from .intake import IGNORED, Refusal, take_in
from .outcomes import (
    ENVIRONMENT_ERRORS,
    ERROR,
    GRADED,
    KERNEL_DIED,
    REFUSED,
    TIMED_OUT,
    CellReport,
    Flags,
    GradeResult,
    zero_scores,
)
from .template import TemplateInfo, prepare_template

__all__ = ["GradeTask", "grade_submission", "locked_cell_errors"]


@dataclass(frozen=True, kw_only=True)
class GradeTask:
    """One submission to grade.

    Args:
        assignment: assignment id (a folder of ``<course_root>/source``).
        student: student id.
        submission_dir: the folder holding the submitted files (only read).
        course_root: the course whose ``source/`` and configuration apply.
        cell_timeout: seconds one cell may run before it is interrupted.
        notebook_timeout: seconds one notebook may take in total.
        template_dir: a folder made by :func:`prepare_template`; without it the
            task generates its own (slower, but then fully self-contained).
        fork_kernels: start kernels by forking the worker (fast) instead of
            ``python -m ipykernel_launcher`` (stock). Ignored when sandboxed.
        sandbox: run the student's code under bubblewrap with resource limits
            (:mod:`autograder.sandbox`) and decide each function's score outside
            the student's process (:mod:`autograder.verify`).
        require_sandbox: with ``sandbox``, fail instead of grading unsandboxed
            where bubblewrap cannot run.
        run_seed: mixed into the hidden inputs of the verified run (one per
            grading run, see :func:`autograder.verify.seeds.choose_run_seed`); None
            keeps the hidden tests' literal seeds.
        sandbox_limits: ``(name, value)`` pairs overriding the defaults of
            :class:`autograder.sandbox.config.SandboxLimits` (memory, processes …).
    """

    assignment: str
    student: str
    submission_dir: Path
    course_root: Path
    cell_timeout: int | None = None
    notebook_timeout: float = defaults.NOTEBOOK_TIMEOUT
    template_dir: Path | None = None
    fork_kernels: bool = defaults.FORK_KERNELS
    sandbox: bool = defaults.SANDBOX
    require_sandbox: bool = defaults.REQUIRE_SANDBOX
    run_seed: int | None = None
    sandbox_limits: tuple[tuple[str, int], ...] = ()


def _build_scratch_course(
    task: GradeTask, template: Path, root: Path, submission: Path, nbs
) -> Path:
    source = template / "source" / task.assignment
    shutil.copytree(
        source,
        root / "source" / task.assignment,
        ignore=shutil.ignore_patterns("*.ipynb", *IGNORED),
    )
    shutil.copyfile(template / "gradebook.db", root / "gradebook.db")
    dest = root / "submitted" / task.student / task.assignment
    # ``submission`` is the intake's copy: real files only, no link.
    shutil.copytree(
        submission,
        dest,
        ignore=shutil.ignore_patterns("*.ipynb", *IGNORED),
        symlinks=True,
    )
    for name, nb in nbs.items():
        nbformat.write(nb, str(dest / name))
    return root


def _read_gradebook(root: Path, info: TemplateInfo, task: GradeTask):
    from nbgrader.api import Gradebook

    scores, comments, late = {}, {}, {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", info.course_id) as gb:
        submission = gb.find_submission(task.assignment, task.student)
        timestamp = submission.timestamp.isoformat() if submission.timestamp else None
        for notebook in submission.notebooks:
            if notebook.late_submission_penalty:
                late[notebook.name] = float(notebook.late_submission_penalty)
            for grade in notebook.grades:
                value = grade.score if grade.auto_score is not None else None
                scores[grade.name] = (
                    None if value is None else float(value),
                    float(grade.max_score),
                )
            for comment in notebook.comments:
                comments[comment.name] = comment.auto_comment
    ordered = {gid: scores[gid] for gid in info.max_scores if gid in scores}
    ordered.update({k: v for k, v in scores.items() if k not in ordered})
    return ordered, comments, timestamp, late


def _timed_out_cells(autograded: Path, names: Iterable[str]) -> list[str]:
    labels = []
    for name in names:
        path = autograded / name
        if not path.is_file():
            continue
        nb = nbformat.read(str(path), as_version=4)
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in (
                    "CellTimeoutError",
                ):
                    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                    labels.append(f"cell {index} ({gid})" if gid else f"cell {index}")
                    break
    return labels


def locked_cell_errors(autograded: Path, names: Iterable[str]) -> list[str]:
    """Errors raised by locked, non-graded cells (the course's own code) of the
    autograded notebooks, as ``"<cell>: <exception>: <message>"``."""
    found = []
    for name in names:
        path = autograded / name
        if not path.is_file():
            continue
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("locked") or meta.get("grade") or meta.get("solution"):
                continue
            for output in cell.get("outputs", []):
                if (
                    output.get("output_type") == "error"
                    and output.get("ename") in ENVIRONMENT_ERRORS
                ):
                    label = meta.get("grade_id") or "locked"
                    found.append(
                        f"{label} cell: {output['ename']}: {output.get('evalue', '')}"
                    )
    return found


def _combine(problems: list[tuple[str, str]]) -> tuple[str, str]:
    outcome = problems[0][0]
    return outcome, "; ".join(reason for _, reason in problems)


def _usage() -> dict[str, float]:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"worker": round(own, 1), "kernel": round(kids, 1)}


def _verified_scores(task: GradeTask, limits, scratch: Path, submission, autograded):
    """Run the verified scoring of the assignment's notebook (see ``verify``)."""
    name = f"{task.assignment}.ipynb"
    workdir = autograded if autograded.is_dir() else scratch / "verify-empty"
    workdir.mkdir(parents=True, exist_ok=True)
    progress.mark(progress.VERIFY_START)
    try:
        return _verify(task, limits, scratch, submission, name, workdir)
    finally:
        progress.mark(progress.VERIFY_END)


def _verify(task: GradeTask, limits, scratch: Path, submission, name, workdir):
    from ..sandbox.config import SandboxConfig
    from ..verify.submission import verify_submission

    return verify_submission(
        Path(submission) / name,
        task.assignment,
        sandbox_config=SandboxConfig(
            limits=limits,
            scratch_dir=str(scratch / "verify"),
            require_sandbox=task.require_sandbox,
        ),
        source_root=task.course_root,
        workdir=workdir,
        run_seed=task.run_seed,
    )


class _VerifiedRun:
    """The verified run of one submission, beside the notebook's run.

    :meth:`start` runs it in a thread (it mostly waits on the sandboxed runner,
    as nbgrader mostly waits on the sandboxed kernel): two sandboxes of the
    same submission at once, never sharing a process. :meth:`result` waits for
    it, or runs it now if it was never started (nbgrader started no kernel).
    """

    def __init__(self, *args):
        self._args = args
        self._thread: threading.Thread | None = None
        self._result = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="verified-run", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            self._result = _verified_scores(*self._args)
        except BaseException as exc:  # noqa: BLE001 - raised again in result()
            self._error = exc

    def result(self):
        if self._thread is None:
            return _verified_scores(*self._args)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _reconciled(scores: dict, verification) -> tuple[dict, dict, Flags]:
    """Scores where the verified run counts, per-cell reports and flags.

    Args:
        scores: ``{grade_id: (score, max)}`` from the notebook run (score None
            where it gave none, e.g. the kernel died).
        verification: the result of
            :func:`autograder.verify.submission.verify_submission`.
    """
    from ..verify.reconcile import reconcile

    nbgrader = {gid: s for gid, (s, _) in scores.items()}
    final = reconcile(nbgrader, verification)
    merged = dict(scores)
    cells: dict[str, CellReport] = {}
    flags = Flags(unsandboxed=getattr(verification, "sandboxed", None) is False)
    for gid, decided in final.items():
        full = scores[gid][1] if gid in scores else decided.max_points
        if gid in scores or decided.verified is not None:
            merged[gid] = (decided.score, full)
        verdict = verification.get(gid)
        if decided.verified is None:
            continue  # decided in the notebook: its own output says why
        cells[gid] = CellReport(
            decided.score,
            full,
            visible=getattr(verdict, "visible", "not run"),
            hidden=getattr(verdict, "hidden", "not verified"),
            message=decided.note,
            not_checked_because=getattr(verdict, "broken_dependency", None),
        )
        if decided.disagree:
            flags.disagreement.append(gid)
        if cells[gid].visible == "not checked":
            flags.not_checked.append(gid)
    return merged, cells, flags


@dataclass
class _Run:
    """The state of one submission's grading, shared by its steps."""

    task: GradeTask
    scratch: Path
    started: float
    info: TemplateInfo
    inspection: Inspection = field(default_factory=lambda: Inspection())
    flags: Flags = field(default_factory=Flags)

    @property
    def zero(self) -> dict:
        return zero_scores(self.info.max_scores)

    def result(self, outcome, reason, scores=None, **kw) -> GradeResult:
        ended = time.monotonic()
        scores = self.zero if scores is None else scores
        kw.setdefault("cells", {})
        return GradeResult(
            self.task.assignment,
            self.task.student,
            outcome,
            reason,
            dict(scores),
            duration=ended - self.started,
            notes=list(self.inspection.notes),
            peak_rss_mb=_usage(),
            timing=progress.timing(self.started, ended),
            flags=self.flags,
            run_seed=self.task.run_seed,
            **kw,
        )


def _nbgrader_config(task: GradeTask, root: Path, scratch: Path, n_notebooks: int):
    """nbgrader's configuration for one task, and the sandbox limits (or None)."""
    config = course_config(task.course_root)
    config.CourseDirectory.root = str(root)
    if task.cell_timeout is not None:
        config.Execute.timeout = int(task.cell_timeout)
    config.Execute.on_cell_start = partial(
        progress.record_progress, str(scratch / "progress.json")
    )
    config.Execute.on_notebook_start = progress.record_kernel_ready
    # Outputs are complete once the last cell has run: no graceful shutdown poll.
    config.Execute.shutdown_kernel = "immediate"
    limits = None
    if task.sandbox:
        from ..sandbox.config import SandboxLimits
        from ..sandbox.kernel import sandbox_config_for

        limits = SandboxLimits.from_dict(
            {
                **dict(task.sandbox_limits),
                "cell_timeout": int(task.cell_timeout or config.Execute.timeout),
                "notebook_timeout": int(task.notebook_timeout),
            }
        )
        config.merge(
            sandbox_config_for(
                scratch / "sandbox", limits, require_sandbox=task.require_sandbox
            )
        )
    else:
        # Trusted code: nbgrader's own pipeline, whatever the course plugs in.
        from ..nbgrader_plugin import stock_autograde_config

        config.merge(stock_autograde_config())
        if task.fork_kernels:
            from .fastkernels import prefork_kernels

            prefork_kernels(config, n_notebooks)
    return config, limits


def _run_nbgrader(task: GradeTask, config, scratch: Path) -> tuple[dict, str]:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from ..source import COURSE_ROOT_ENV

    try:
        with (
            scoped_environ(
                JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                **{COURSE_ROOT_ENV: str(Path(task.course_root).resolve())},
            ),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
            outcome = api.autograde(task.assignment, task.student)
        progress.mark(progress.NOTEBOOK_DONE)
    finally:
        from .fastkernels import discard_preforked

        discard_preforked()
    log = outcome.get("log", "") + "\n" + outcome.get("error", "")
    (scratch / "nbgrader.log").write_text(log)
    return outcome, log


def _failed_run(run: _Run, log: str, verified) -> GradeResult:
    """The outcome of a notebook run nbgrader reported as failed."""
    progress_file = run.scratch / "progress.json"
    running = progress.where(progress_file)
    if "Kernel didn't respond" in log and not progress_file.exists():
        # Never got as far as the first cell: the kernel could not start
        # (e.g. a memory limit below what Python and numpy need).
        return run.result(
            KERNEL_DIED,
            "the kernel did not start (a sandbox limit too low for Python and "
            "numpy, or a crash at start-up); nothing could be graded",
        )
    if "Kernel died" in log or "DeadKernelError" in log:
        if verified is not None:
            unscored = {gid: (None, full) for gid, (_, full) in run.zero.items()}
            scores, cells, flags = _reconciled(unscored, verified)
            run.flags = flags
            return run.result(
                KERNEL_DIED,
                f"the kernel died {running}; the scores are the "
                "verified ones (each function run on its own in the sandbox)",
                scores,
                cells=cells,
            )
        return run.result(
            KERNEL_DIED,
            f"the kernel died {running} (os._exit, a crash or out of "
            "memory); nothing could be graded",
        )
    if "kernel became unresponsive" in log or "UnresponsiveKernel" in log:
        return run.result(
            TIMED_OUT,
            f"cell limit ({run.task.cell_timeout} s) hit {running} and the "
            "kernel did not respond to the interrupt",
        )
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return run.result(ERROR, "nbgrader failed: " + " | ".join(lines[-3:]))


def _environment_errors(verified, autograded: Path, names) -> list[str]:
    errors = list(getattr(verified, "locked_errors", []) or [])
    return errors + locked_cell_errors(autograded, names)


def grade_submission(task: GradeTask, scratch_dir: Path) -> GradeResult:
    """Grade one submission with nbgrader; write only inside ``scratch_dir``.

    Steps: intake (refuse links and odd files, copy the rest), inspection (which
    notebooks can be graded), the notebook run (nbgrader, sandboxed), the
    verified run, and the outcome.

    Returns:
        The outcome, its reason, the score and report of every graded cell, the
        flags and the folder of autograded notebooks (inside ``scratch_dir``).
    """
    started = time.monotonic()
    progress.reset()
    if task.cell_timeout is None:  # the course's limit, as stock nbgrader's
        task = dataclasses.replace(
            task, cell_timeout=default_cell_timeout(task.course_root)
        )
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    template = task.template_dir or prepare_template(
        task.course_root, task.assignment, scratch / "template"
    )
    run = _Run(task, scratch, started, TemplateInfo.load(template))
    submission = scratch / "submission"
    try:
        take_in(Path(task.submission_dir), submission)
    except Refusal as refusal:
        run.flags.refused = True
        return run.result(REFUSED, str(refusal))
    except OSError as exc:
        return run.result(ERROR, f"could not copy the submission: {exc}")

    run.inspection = inspect_submission(submission, run.info.notebooks)
    if not run.inspection.graded:
        return run.result(*_combine(run.inspection.problems))

    graded = run.inspection.graded
    root = _build_scratch_course(task, template, scratch / "course", submission, graded)
    config, limits = _nbgrader_config(task, root, scratch, len(graded))
    autograded = root / "autograded" / task.student / task.assignment
    verified_run = None
    if task.sandbox and f"{task.assignment}.ipynb" in graded:
        verified_run = _VerifiedRun(task, limits, scratch, submission, autograded)
        # nbgrader has filled the folder by the time it starts a kernel.
        progress.when(progress.KERNEL_LAUNCH, verified_run.start)
    outcome, log = _run_nbgrader(task, config, scratch)
    verified = verified_run.result() if verified_run is not None else None
    broken = _environment_errors(verified, autograded, graded)
    if broken:
        return run.result(
            ERROR,
            "the course's own code failed, not the student's: "
            + "; ".join(broken[:3])
            + " — fix the grading environment (see the pre-flight) and re-grade",
        )
    if not outcome["success"]:
        return _failed_run(run, log, verified)

    scores, comments, timestamp, late = _read_gradebook(root, run.info, task)
    if verified is not None:
        scores, cells, run.flags = _reconciled(scores, verified)
    else:
        cells = {}  # decided in the notebook: its own output says why
        run.flags.unsandboxed = not task.sandbox
    run.inspection.notes.extend(
        f"{gid}: {cells[gid].message}" for gid in run.flags.disagreement
    )
    extra = {
        "comments": comments,
        "timestamp": timestamp,
        "autograded_dir": autograded,
        "late_penalties": late,
        "cells": cells,
    }
    timeouts = _timed_out_cells(autograded, graded)
    if timeouts:
        reason = (
            f"cell limit ({task.cell_timeout} s) hit in {', '.join(timeouts)}: "
            "interrupted, the other cells were graded"
        )
        if run.inspection.problems:
            reason += "; " + _combine(run.inspection.problems)[1]
        return run.result(TIMED_OUT, reason, scores, **extra)
    if run.inspection.problems:
        outcome_name, reason = _combine(run.inspection.problems)
        return run.result(
            outcome_name, reason + "; the other notebooks were graded", scores, **extra
        )
    return run.result(GRADED, "; ".join(run.inspection.notes), scores, **extra)
