"""The ``grade`` command: grade every submission of a course, then merge.

``python -m autograder grade [ASSIGNMENT...] [--workers N]`` grades every
``submitted/<student>/<assignment>/`` of a course with the real nbgrader
(``NbGraderAPI.autograde``), in these steps:

1. **discover** the submissions (:mod:`.discover`; ``submitted/`` is only read);
2. **prepare** one template per assignment (:mod:`.template`);
3. **pre-flight**: grade each assignment's reference and blank release first
   (:mod:`.preflight`), and grade nothing if they do not score full and zero;
4. **grade** each submission with
   :func:`~autograder.grading.submission.grade_submission`, a pure function of
   (task, scratch folder), in a pool of forked workers with wall-clock limits
   (:mod:`.pool`);
5. **merge** the results into ``<course>/gradebook.db`` from this process only
   (:mod:`.gradebook`), install the autograded notebooks and record every
   outcome with its reason in ``grading_outcomes.json`` (:mod:`.outcomes`).

``error`` means the pipeline itself failed on a submission; it is the only
outcome that is not definite, and the command then exits non-zero.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import REPO_ROOT
from ..course import course_config
from ..defaults import NOTEBOOK_TIMEOUT, TEMPLATE_TIMEOUT
from ..errors import AutograderError, PreflightFailed, UsageError
from .discover import discover_submissions
from .fastkernels import warm_up
from .gradebook import install_autograded, merge_results
from .outcomes import ERROR, OUTCOMES, TIMED_OUT, GradeResult, write_outcomes
from .pool import Job, run_tasks
from .preflight import Settings, run_preflight
from .progress import where
from .submission import GradeTask, grade_submission
from .template import TemplateInfo, prepare_template

__all__ = [
    "GradeRun",
    "default_cell_timeout",
    "default_workers",
    "grade_course",
    "grade_folders",
    "grade_job",
]


@dataclass
class GradeRun:
    """The results of one ``grade`` run, in (assignment, student) order."""

    results: list[GradeResult]
    wall_time: float
    phases: dict[str, float] = field(default_factory=dict)
    #: submissions whose grades or autograded copy could not be stored.
    failures: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failures and all(r.definite for r in self.results)

    def table(self) -> str:
        """A plain-text summary table: student, assignment, outcome, score, reason."""
        rows = [("student", "assignment", "outcome", "score", "reason")]
        for r in self.results:
            rows.append(
                (
                    r.student,
                    r.assignment,
                    r.outcome,
                    f"{r.score:g}/{r.max_score:g}",
                    r.reason or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
        return "\n".join(lines)


def _scratch_base() -> Path:
    """Scratch space: memory-backed when there is plenty of it."""
    chosen = os.environ.get("AUTOGRADER_SCRATCH")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
        if os.access(shm, os.W_OK) and stats.f_bavail * stats.f_frsize > 2 << 30:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    class _Bar(tqdm):
        monitor_interval = 0  # no monitor thread: workers are forked

    return _Bar(
        total=total,
        desc="grading",
        unit="submission",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def default_workers() -> int:
    """One more worker than CPUs: a task's worker and kernel take turns, and
    both wait on each other and on files now and then."""
    return (os.cpu_count() or 1) + 1


def default_cell_timeout(course_root: Path) -> int | None:
    """``Execute.timeout`` from the course configuration (nbgrader's default 30)."""
    config = course_config(course_root)
    return config.Execute.get("timeout", 30)


def grade_course(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    students: Sequence[str] | None = None,
    workers: int | None = None,
    cell_timeout: int | None = None,
    notebook_timeout: float | None = None,
    fork_kernels: bool = True,
    sandbox: bool = False,
    require_sandbox: bool = False,
    sandbox_limits: Mapping[str, int] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> GradeRun:
    """Grade every submission of ``assignments`` (default: all) in a course.

    Args:
        course_root: folder with ``source/`` and ``submitted/``.
        assignments: assignment ids; default every one with a source notebook.
        students: restrict to these student ids.
        workers: submissions graded at once (default: one more than the CPUs).
        cell_timeout: per-cell limit in seconds (default: the course's
            ``Execute.timeout``).
        notebook_timeout: wall-clock limit per notebook in seconds.
        fork_kernels: fork kernels from the worker (see the module docstring).
        sandbox: grade under bubblewrap with verified scores (see GradeTask).
        require_sandbox: fail where bubblewrap cannot run.
        sandbox_limits: overrides of the sandbox's resource limits, by name.
        progress: show a progress bar on stderr.
        log: where the summary goes.

    Returns:
        The run; ``run.complete`` is False if any submission ended in ``error``.
    """
    started = time.monotonic()
    for name, value in (
        ("workers", workers),
        ("cell timeout", cell_timeout),
        ("notebook timeout", notebook_timeout),
    ):
        if value is not None and value <= 0:
            raise UsageError(f"the {name} must be positive, got {value}")
    limits = tuple(sorted((sandbox_limits or {}).items()))
    if limits:
        from ..sandbox.config import SandboxLimits

        try:
            SandboxLimits.from_dict(dict(limits))
        except ValueError as error:
            raise UsageError(str(error)) from None
    course_root = Path(course_root).resolve()
    found = discover_submissions(course_root, assignments, students)
    if not found:
        log(f"nothing to grade: no submissions under {course_root / 'submitted'}")
        return GradeRun([], time.monotonic() - started)
    workers = workers or default_workers()
    if cell_timeout is None:
        cell_timeout = default_cell_timeout(course_root)
    notebook_timeout = notebook_timeout or NOTEBOOK_TIMEOUT
    phases: dict[str, float] = {}
    clock = [time.monotonic()]

    def lap(name: str) -> None:
        now = time.monotonic()
        phases[name] = round(now - clock[0], 3)
        clock[0] = now

    warm_up()
    lap("imports")
    run_dir = Path(tempfile.mkdtemp(prefix="autograder-run-", dir=_scratch_base()))
    try:
        templates = _prepare_templates(
            course_root, sorted({a for a, _, _ in found}), run_dir, workers
        )
        lap("templates")
        run_seeds = {}
        if sandbox:
            from ..sandbox.availability import sandbox_status
            from ..sandbox.config import SandboxConfig

            available, why = sandbox_status(SandboxConfig())
            if not available:
                if require_sandbox:
                    raise UsageError(f"--require-sandbox: {why}")
                log(f"WARNING: UNSANDBOXED GRADING: {why}")
            from ..verify.seeds import choose_run_seed

            for assignment in sorted({a for a, _, _ in found}):
                try:
                    run_seeds[assignment] = choose_run_seed(
                        assignment, source_root=course_root
                    )
                except Exception as exc:  # noqa: BLE001 - the reference is broken
                    # Part of the pre-flight: the trusted process's own reference
                    # must run before any kernel does (else a raw traceback, exit 1).
                    raise PreflightFailed(
                        f"pre-flight of {assignment} failed, so nothing was graded "
                        "(every score would be wrong):\n  reference solution, in "
                        f"the grader: {type(exc).__name__}: {exc}"
                    ) from exc
            log(f"verified run seeds: {run_seeds}")
        n_notebooks = {
            a: len(TemplateInfo.load(t).notebooks) for a, t in templates.items()
        }

        def make_task(assignment: str, student: str, folder: Path) -> GradeTask:
            return GradeTask(
                assignment=assignment,
                student=student,
                submission_dir=folder,
                course_root=course_root,
                cell_timeout=cell_timeout,
                notebook_timeout=notebook_timeout,
                template_dir=templates[assignment],
                fork_kernels=fork_kernels,
                sandbox=sandbox,
                require_sandbox=require_sandbox,
                run_seed=run_seeds.get(assignment),
                sandbox_limits=limits,
            )

        settings = Settings(
            sandbox=sandbox,
            require_sandbox=require_sandbox,
            fork_kernels=fork_kernels,
            cell_timeout=cell_timeout,
            notebook_timeout=notebook_timeout,
            sandbox_limits=limits,
        )
        for assignment in sorted(templates):
            ran = run_preflight(
                course_root,
                assignment,
                templates[assignment],
                settings,
                workdir=run_dir / "preflight" / assignment,
                grade=partial(
                    grade_folders,
                    make_task,
                    assignment,
                    run_dir,
                    n_notebooks,
                    workers,
                ),
                log=log,
            )
            if not ran:
                log(f"pre-flight {assignment}: passed before (cached)")
        lap("preflight")
        tasks = [
            (index, make_task(assignment, student, folder))
            for index, (assignment, student, folder) in enumerate(found)
        ]
        bar = _progress_bar(len(tasks), progress)
        with bar:
            jobs = [
                grade_job(index, task, run_dir, n_notebooks[task.assignment])
                for index, task in tasks
            ]
            done = run_tasks(jobs, workers, on_done=lambda *_: bar.update(1))
        results = [done[index] for index, _ in tasks]
        lap("grading")
        failures = merge_results(course_root, results, templates, run_dir)
        write_outcomes(course_root, results)
        lap("merge")
        for result in results:
            if not result.definite:
                continue
            try:
                install_autograded(course_root, result)
            except OSError as exc:
                failures.append(
                    f"{result.student}/{result.assignment}: grades stored, but the "
                    f"autograded notebook could not be installed ({exc})"
                )
        lap("install")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    run = GradeRun(results, time.monotonic() - started, phases, failures)
    log(run.table())
    for line in failures:
        log(f"FAILED: {line}")
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    log(f"{len(results)} submission(s) in {run.wall_time:.1f} s: {summary}")
    log("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    return run


def grade_folders(
    make_task, assignment, run_dir, n_notebooks, workers, folders
) -> dict[str, GradeResult]:
    """Grade ``{student: folder}`` of one assignment in the worker pool."""
    base = 100_000 + len(list(run_dir.glob("task-*")))
    jobs, keys = [], {}
    for offset, (student, folder) in enumerate(sorted(folders.items())):
        task = make_task(assignment, student, folder)
        jobs.append(grade_job(base + offset, task, run_dir, n_notebooks[assignment]))
        keys[base + offset] = student
    done = run_tasks(jobs, workers)
    return {keys[k]: v for k, v in done.items()}


def _prepare_templates(course_root, assignments, run_dir, workers) -> dict[str, Path]:
    def crash(assignment, message):
        raise AutograderError(
            f"could not prepare assignment {assignment} with generate_assignment: "
            f"{message}"
        )

    jobs = []
    for assignment in assignments:
        dest = run_dir / "templates" / assignment
        dest.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(
            Job(
                assignment,
                prepare_template,
                (course_root, assignment, dest),
                run_dir / f"template-{assignment}.log",
                TEMPLATE_TIMEOUT,
                partial(crash, assignment, f"over {TEMPLATE_TIMEOUT:.0f} s"),
                partial(crash, assignment),
            )
        )
    return {k: Path(v) for k, v in run_tasks(jobs, workers).items()}


def grade_job(index: int, task: GradeTask, run_dir: Path, n_notebooks: int) -> Job:
    scratch = run_dir / f"task-{index:05d}"
    scratch.mkdir()
    limit = task.notebook_timeout * max(1, n_notebooks)

    def zero(outcome: str, reason: str) -> GradeResult:
        info = TemplateInfo.load(task.template_dir)
        return GradeResult(
            task.assignment,
            task.student,
            outcome,
            reason,
            {gid: (0.0, pts) for gid, pts in info.max_scores.items()},
            duration=limit,
        )

    def on_timeout():
        running = where(scratch / "progress.json")
        return zero(
            TIMED_OUT,
            f"notebook limit ({task.notebook_timeout:g} s) reached {running}; "
            "the grading process was stopped",
        )

    def on_crash(message: str):
        try:
            lines = (scratch / "worker.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        tail = " | ".join(line for line in lines[-3:] if line.strip())
        return zero(
            ERROR, f"grading failed: {message}" + (f" ({tail})" if tail else "")
        )

    return Job(
        index,
        grade_submission,
        (task, scratch),
        scratch / "worker.log",
        limit,
        on_timeout,
        on_crash,
    )
