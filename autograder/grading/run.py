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

from .. import REPO_ROOT, defaults
from ..course import default_cell_timeout
from ..defaults import TEMPLATE_TIMEOUT
from ..errors import AutograderError, PreflightFailed, UsageError
from .discover import discover_submissions
from .fastkernels import warm_up
from .gradebook import install_autograded, merge_results
from .outcomes import ERROR, OUTCOMES, TIMED_OUT, GradeResult, write_outcomes
from .pool import Job, run_tasks
from .preflight import Settings, cached_template, run_preflight
from .progress import where
from .submission import GradeTask, grade_submission
from .template import TemplateInfo

__all__ = [
    "GradeRun",
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
                    f"{r.score:g}/{r.max_score:g}" + _late(r),
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


def _late(result: GradeResult) -> str:
    penalty = sum(result.late_penalties.values())
    return f" (late: -{penalty:g})" if penalty else ""


def scratch_base() -> Path:
    """Scratch space: memory-backed when there is plenty of it
    (``AUTOGRADER_SCRATCH`` chooses)."""
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
    """Submissions graded at once (:func:`autograder.defaults.workers`)."""
    return defaults.workers()


def grade_course(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    students: Sequence[str] | None = None,
    workers: int | None = None,
    cell_timeout: int | None = None,
    notebook_timeout: float | None = None,
    fork_kernels: bool = defaults.FORK_KERNELS,
    sandbox: bool = defaults.SANDBOX,
    require_sandbox: bool = defaults.REQUIRE_SANDBOX,
    sandbox_limits: Mapping[str, int] | None = None,
    progress: bool = True,
    cluster: str | int | None = None,
    seed: int | None = None,
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
        cluster: None grades in the local pool; a scheduler address
            (``tcp://host:8786``) or a number of local worker processes grades
            on a Dask cluster (:mod:`autograder.grading.cluster`).
        seed: the run seed of the hidden tests' inputs, for every assignment
            (default: a fresh one per assignment). An earlier run's seed, read
            from ``run_seed`` in ``grading_outcomes.json``, reproduces its inputs.
        log: where the summary goes.

    Returns:
        The run; ``run.complete`` is False if any submission ended in ``error``.
    """
    started = time.monotonic()
    limits = _checked_limits(workers, cell_timeout, notebook_timeout, sandbox_limits)
    if seed is not None and not sandbox:
        raise UsageError("--seed sets the verified run's inputs: it needs --sandbox")
    course_root = Path(course_root).resolve()
    found = discover_submissions(course_root, assignments, students)
    if not found:
        log(f"nothing to grade: no submissions under {course_root / 'submitted'}")
        return GradeRun([], time.monotonic() - started)
    if cell_timeout is None:
        cell_timeout = default_cell_timeout(course_root)
    settings = Settings(
        sandbox=sandbox,
        require_sandbox=require_sandbox,
        fork_kernels=fork_kernels,
        cell_timeout=cell_timeout,
        notebook_timeout=notebook_timeout or defaults.NOTEBOOK_TIMEOUT,
        sandbox_limits=limits,
    )
    laps = _Laps()
    warm_up(kernels=not sandbox)
    laps.lap("imports")
    run_dir = Path(tempfile.mkdtemp(prefix="autograder-run-", dir=scratch_base()))
    try:
        results, failures = _grade_in(
            run_dir,
            course_root,
            found,
            settings,
            workers=workers or default_workers(),
            progress=progress,
            log=log,
            laps=laps,
            cluster=cluster,
            seed=seed,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    run = GradeRun(results, time.monotonic() - started, laps.phases, failures)
    _log_summary(run, log)
    return run


class _Laps:
    """Wall time of each phase of a run, for the summary and ``bench``."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._last, 3)
        self._last = now


def _checked_limits(workers, cell_timeout, notebook_timeout, sandbox_limits) -> tuple:
    """Validate the arguments of :func:`grade_course`; the limits as pairs.

    Raises:
        UsageError: for a non-positive number, an unknown or invalid sandbox
            limit, or a timeout given as a sandbox limit (grading sets those
            from ``cell_timeout`` and ``notebook_timeout``).
    """
    for name, value in (
        ("workers", workers),
        ("cell timeout", cell_timeout),
        ("notebook timeout", notebook_timeout),
    ):
        if value is not None and value <= 0:
            raise UsageError(f"the {name} must be positive, got {value}")
    limits = tuple(sorted((sandbox_limits or {}).items()))
    clash = [name for name, _ in limits if name in defaults.TIMEOUT_LIMITS]
    if clash:
        option = "--" + clash[0].replace("_", "-")
        raise UsageError(
            f"the sandbox limit {clash[0]} is set by {option}, not by --limit"
        )
    if limits:
        from ..sandbox.config import SandboxLimits

        try:
            SandboxLimits.from_dict(dict(limits))
        except ValueError as error:
            raise UsageError(str(error)) from None
    return limits


def _grade_in(
    run_dir: Path,
    course_root: Path,
    found: list[tuple[str, str, Path]],
    settings: Settings,
    *,
    workers: int,
    progress: bool,
    log: Callable[[str], None],
    laps: _Laps,
    cluster: str | int | None = None,
    seed: int | None = None,
) -> tuple[list[GradeResult], list[str]]:
    """Templates, pre-flight, grading, merge and install, in ``run_dir``."""
    assignments = sorted({a for a, _, _ in found})
    templates = _prepare_templates(course_root, assignments, run_dir, workers)
    laps.lap("templates")
    run_seeds = {}
    if settings.sandbox:
        run_seeds = _run_seeds(course_root, assignments, settings, log, seed)
    make_task = partial(build_task, course_root, settings, templates, run_seeds)
    n_notebooks = {a: len(TemplateInfo.load(t).notebooks) for a, t in templates.items()}
    for assignment in sorted(templates):
        ran = run_preflight(
            course_root,
            assignment,
            templates[assignment],
            settings,
            workdir=run_dir / "preflight" / assignment,
            grade=partial(
                grade_folders, make_task, assignment, run_dir, n_notebooks, workers
            ),
            log=log,
        )
        if not ran:
            log(f"pre-flight {assignment}: passed before (cached)")
    laps.lap("preflight")
    tasks = [
        (index, make_task(assignment, student, folder))
        for index, (assignment, student, folder) in enumerate(found)
    ]
    if cluster is not None:
        return _grade_on_dask(
            cluster, course_root, tasks, templates, settings, run_dir, progress, laps
        )
    with _progress_bar(len(tasks), progress) as bar:
        jobs = [
            grade_job(index, task, run_dir, n_notebooks[task.assignment])
            for index, task in tasks
        ]
        done = run_tasks(jobs, workers, on_done=lambda *_: bar.update(1))
    results = [done[index] for index, _ in tasks]
    laps.lap("grading")
    failures = merge_results(course_root, results, templates, run_dir)
    write_outcomes(course_root, results)
    laps.lap("merge")
    failures += _install_all(course_root, results)
    laps.lap("install")
    return results, failures


def _grade_on_dask(
    cluster, course_root, tasks, templates, settings, run_dir, progress, laps
) -> tuple[list[GradeResult], list[str]]:
    """Grade on a Dask cluster; its ledger merges and installs as results come."""
    from .cluster import grade_on_cluster, local_cluster
    from .ledger import settings_key

    keys = {
        a: settings_key(course_root, a, template, settings)
        for a, template in templates.items()
    }

    def grade(client):
        return grade_on_cluster(
            client,
            course_root,
            tasks,
            templates,
            run_dir,
            keys=keys,
            progress=progress,
        )

    if isinstance(cluster, int):
        with local_cluster(cluster) as client:
            done = grade(client)
    else:
        from distributed import Client

        with Client(cluster) as client:
            done = grade(client)
    laps.lap("grading")
    return [done.results[index] for index, _ in tasks], list(done.failures)


def _run_seeds(
    course_root, assignments, settings: Settings, log, seed: int | None = None
) -> dict[str, int]:
    """One verified run seed per assignment (the sandbox's part of pre-flight):
    ``seed`` if given (the reference must pass on it), else a fresh one."""
    from ..sandbox.availability import sandbox_status
    from ..sandbox.config import SandboxConfig
    from ..verify.seeds import choose_run_seed

    available, why = sandbox_status(SandboxConfig())
    if not available:
        if settings.require_sandbox:
            raise UsageError(f"--require-sandbox: {why}")
        log(f"WARNING: UNSANDBOXED GRADING: {why}")
    run_seeds = {}
    for assignment in assignments:
        try:
            if seed is None:
                run_seeds[assignment] = choose_run_seed(
                    assignment, source_root=course_root
                )
            else:
                _check_seed(assignment, seed, course_root)
                run_seeds[assignment] = seed
        except PreflightFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the reference is broken
            # Part of the pre-flight: the trusted process's own reference must
            # run before any kernel does (else a raw traceback, exit 1).
            raise PreflightFailed(
                f"pre-flight of {assignment} failed, so nothing was graded "
                "(every score would be wrong):\n  reference solution, in "
                f"the grader: {type(exc).__name__}: {exc}"
            ) from exc
    given = " (given by --seed)" if seed is not None else ""
    log(f"verified run seeds{given}: {run_seeds}")
    return run_seeds


def _check_seed(assignment: str, seed: int, course_root: Path) -> None:
    """Refuse a given seed on which the reference fails a hidden test."""
    from ..verify.seeds import reference_failures

    failures = reference_failures(assignment, seed, source_root=course_root)
    if failures:
        raise PreflightFailed(
            f"pre-flight of {assignment} failed, so nothing was graded: the "
            f"reference solution fails the hidden tests with --seed {seed} "
            f"({'; '.join(failures[:3])}); grade without --seed for a fresh one"
        )


def build_task(
    course_root: Path,
    settings: Settings,
    templates: Mapping[str, Path],
    run_seeds: Mapping[str, int],
    assignment: str,
    student: str,
    folder: Path,
) -> GradeTask:
    """The task that grades one submission folder with a run's settings."""
    return GradeTask(
        assignment=assignment,
        student=student,
        submission_dir=folder,
        course_root=course_root,
        cell_timeout=settings.cell_timeout,
        notebook_timeout=settings.notebook_timeout,
        template_dir=templates[assignment],
        fork_kernels=settings.fork_kernels,
        sandbox=settings.sandbox,
        require_sandbox=settings.require_sandbox,
        run_seed=run_seeds.get(assignment),
        sandbox_limits=settings.sandbox_limits,
    )


def _install_all(course_root: Path, results: Sequence[GradeResult]) -> list[str]:
    """Install every definite result's autograded notebooks; the failures."""
    failures = []
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
    return failures


def _log_summary(run: GradeRun, log: Callable[[str], None]) -> None:
    log(run.table())
    for line in run.failures:
        log(f"FAILED: {line}")
    counts = {o: sum(r.outcome == o for r in run.results) for o in OUTCOMES}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    log(f"{len(run.results)} submission(s) in {run.wall_time:.1f} s: {summary}")
    log("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items()))


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
                cached_template,
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
        return GradeResult.nothing(
            task.assignment,
            task.student,
            outcome,
            reason,
            info.max_scores,
            duration=limit,
            run_seed=task.run_seed,
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
