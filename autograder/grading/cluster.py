"""Grade on a Dask cluster: the same ``grade_submission``, on other machines.

The client (the ``grade`` command) and the workers share no filesystem, so a
task carries bytes:

- the submission, already through the intake *on the client*
  (:func:`autograder.grading.intake.take_in`): a refused submission never leaves
  the client, and the digest of the intake copy identifies what was graded;
- the assignment's bundle, sent once per assignment and cached per worker: the
  template (``gradebook.db``, ``template.json``, ``release/``, its ``source/``)
  and the course's ``source/<assignment>/`` and ``nbgrader_config.py`` (the
  reference the verified run reads; the hidden tests come from the installed
  ``autograder`` package).

A worker unpacks them into its own scratch, builds a :class:`GradeTask` pointing
there and grades it in a fresh process forked by the worker's zygote
(:mod:`autograder.grading.zygote`: an interpreter that imported the grading path
once and never grades), which runs it through the same
:func:`autograder.grading.pool.run_tasks` as the local pool: a forked process
with the notebook's wall-clock limit, killed with its kernels when over. Nothing
of one student's grading lives on in the long-lived worker process or the
zygote. The worker returns
data (outcome, reason, scores, cells, flags, notes, timing, the autograded
notebooks' bytes, its address), and the client rebuilds
:class:`~autograder.grading.ledger.RecordedResult` objects under its run
directory and merges them as the single writer (:class:`~.ledger.Ledger`).

Faults: a worker lost mid-task has its task rerun elsewhere by the scheduler;
results are keyed by task index and each is merged once. A task whose workers
keep dying is given up by the scheduler after ``allowed-failures`` (Dask's
``KilledWorker``) and becomes ``kernel died`` with a reason saying how often.

Dask is imported only by the functions that talk to a cluster.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .intake import Refusal, take_in
from .ledger import Ledger, RecordedResult, recorded, submission_digest
from .outcomes import ERROR, KERNEL_DIED, REFUSED, CellReport, Flags
from .zygote import Zygote, ZygoteLost

__all__ = [
    "ClusterRun",
    "TEST_KILL_ENV",
    "assignment_bundle",
    "grade_on_cluster",
    "grade_packed",
    "local_cluster",
    "pack_tree",
    "unpack",
]

#: Test-only hook: a worker whose environment names a student in this variable
#: SIGKILLs itself when it starts grading that student (nothing a notebook can
#: do inside the sandbox reaches the worker: separate PID namespace, limits).
TEST_KILL_ENV = "AUTOGRADER_TEST_KILL_WORKER_FOR"
#: Seconds a worker waits for its grading process beyond the notebook limit.
CHILD_GRACE = 120.0

#: What a worker's zygote does once: what the local pool's parent does before
#: it forks (:func:`~autograder.grading.fastkernels.warm_up`), and the grading
#: path's own modules.
ZYGOTE_PRELOAD = (
    "autograder.grading.fastkernels:warm_up",
    "autograder.grading.run",
    "autograder.grading.submission",
    "autograder.verify.submission",
    "autograder.sandbox.kernel",
)
#: One zygote per worker process, started by its first task.
_ZYGOTE = Zygote(f"{__name__}:_child", ZYGOTE_PRELOAD)

_SETTINGS = (
    "cell_timeout",
    "notebook_timeout",
    "fork_kernels",
    "sandbox",
    "require_sandbox",
    "run_seed",
    "sandbox_limits",
)


# --------------------------------------------------------------------------
# Bytes
# --------------------------------------------------------------------------


def pack_tree(members: Mapping[str, Path]) -> bytes:
    """A tar of ``{name in the archive: folder or file}`` (links followed:
    only trusted course material and intake copies, which hold no link)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for name, path in sorted(members.items()):
            path = Path(path)
            if path.exists():
                tar.add(str(path), arcname=name)
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> Path:
    """Extract a :func:`pack_tree` archive into ``dest`` (regular files and
    folders only, nothing outside ``dest``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(
                dest.resolve()
            ):
                raise ValueError(f"refusing archive member {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.11.4; members checked above
            tar.extractall(dest)  # noqa: S202
    return dest


def assignment_bundle(course_root: Path, assignment: str, template_dir: Path) -> bytes:
    """What a worker needs besides the submission, for one assignment."""
    course_root = Path(course_root)
    members = {
        "template/gradebook.db": Path(template_dir) / "gradebook.db",
        "template/template.json": Path(template_dir) / "template.json",
        "template/release": Path(template_dir) / "release",
        "template/source": Path(template_dir) / "source",
        f"course/source/{assignment}": course_root / "source" / assignment,
        "course/nbgrader_config.py": course_root / "nbgrader_config.py",
    }
    return pack_tree(members)


# --------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------

_SANDBOX_STATUS: dict[str, tuple[bool, str]] = {}


def _worker_scratch() -> tuple[Path, str]:
    try:
        from distributed import get_worker

        worker = get_worker()
        return Path(worker.local_directory) / "autograder", worker.address
    except (ImportError, ValueError):  # not on a Dask worker (tests, tools)
        return Path(tempfile.gettempdir()) / f"autograder-{os.getpid()}", "local"


def _cached_bundle(scratch: Path, bundle: bytes) -> Path:
    """Unpack an assignment bundle once per worker (keyed by its digest)."""
    import hashlib

    digest = hashlib.sha256(bundle).hexdigest()[:24]
    done = scratch / "bundles" / digest
    if not done.is_dir():
        staging = scratch / "bundles" / f".{digest}.{uuid.uuid4().hex}"
        unpack(bundle, staging)
        try:
            os.replace(staging, done)
        except OSError:  # another thread of this worker got there first
            shutil.rmtree(staging, ignore_errors=True)
    return done


def grade_packed(spec: dict, bundle: bytes, submission: bytes) -> dict:
    """Grade one packed submission on this worker; return the result as data.

    ``spec``: index, assignment, student, n_notebooks and the GradeTask
    settings. Runs :func:`autograder.grading.submission.grade_submission` in a fresh
    interpreter; the long-lived worker process only unpacks and reads back.
    """
    started = time.monotonic()
    base, address = _worker_scratch()
    if os.environ.get(TEST_KILL_ENV) == spec["student"]:
        os.kill(os.getpid(), signal.SIGKILL)
    if spec["settings"]["sandbox"] and spec["settings"]["require_sandbox"]:
        if "status" not in _SANDBOX_STATUS:
            from ..sandbox.availability import sandbox_status
            from ..sandbox.config import SandboxConfig

            _SANDBOX_STATUS["status"] = sandbox_status(SandboxConfig())
        available, why = _SANDBOX_STATUS["status"]
        if not available:
            return {
                "outcome": ERROR,
                "reason": f"worker {address} cannot sandbox (--require-sandbox): "
                f"{why}; it graded nothing",
                "worker": address,
            }
    bundle_dir = _cached_bundle(base, bundle)
    scratch = base / f"task-{spec['index']:06d}-{uuid.uuid4().hex[:8]}"
    try:
        folder = scratch / "submitted" / spec["student"] / spec["assignment"]
        unpack(submission, folder)
        from .submission import GradeTask

        task = GradeTask(
            assignment=spec["assignment"],
            student=spec["student"],
            submission_dir=folder,
            course_root=bundle_dir / "course",
            template_dir=bundle_dir / "template",
            **spec["settings"],
        )
        job = scratch / "job.pkl"
        job.write_bytes(pickle.dumps((task, spec["n_notebooks"])))
        limit = task.notebook_timeout * max(1, spec["n_notebooks"]) + CHILD_GRACE
        try:
            code = _ZYGOTE.run(scratch, limit)
        except ZygoteLost as exc:
            code = f"none: {exc}"
        out = scratch / "result.pkl"
        if not out.is_file():
            log = scratch / "child.log"
            tail = log.read_text(errors="replace").splitlines() if log.is_file() else []
            return {
                "outcome": ERROR,
                "reason": f"the grading process on {address} died (exit code "
                f"{code}): " + " | ".join(tail[-3:]),
                "worker": address,
            }
        data = pickle.loads(out.read_bytes())
        data["worker"] = address
        data["worker_seconds"] = round(time.monotonic() - started, 3)
        return data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _start_zygote(warm: bool = False) -> None:
    """Start this worker's zygote now (``client.run``), not with its first task;
    with ``warm``, return when it is warm."""
    _ZYGOTE.start(wait=warm)


def _result_data(result) -> dict:
    """A GradeResult as plain data, with the autograded notebooks' bytes."""
    autograded = None
    if result.autograded_dir is not None and Path(result.autograded_dir).is_dir():
        root = Path(result.autograded_dir)
        autograded = {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
    data = {
        key: value
        for key, value in vars(result).items()
        if key not in ("autograded_dir", "flags", "cells")
    }
    data["flags"] = result.flags.to_dict()
    data["cells"] = {k: asdict(v) for k, v in result.cells.items()}
    data["autograded"] = autograded
    return data


def _child(scratch: Path) -> None:
    """The fresh process of one submission (forked by the worker's zygote):
    grade it as the local pool does (a forked process with the notebook limit),
    write the result."""
    from .fastkernels import warm_up
    from .pool import run_tasks
    from .run import grade_job

    task, n_notebooks = pickle.loads((scratch / "job.pkl").read_bytes())
    if task.fork_kernels and not task.sandbox:
        warm_up()
    run_dir = scratch / "run"
    run_dir.mkdir()
    job = grade_job(0, task, run_dir, n_notebooks)
    result = run_tasks([job], 1)[0]
    staged = scratch / "result.pkl.new"
    staged.write_bytes(pickle.dumps(_result_data(result)))
    os.replace(staged, scratch / "result.pkl")


# --------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------


@dataclass
class ClusterRun:
    """What :func:`grade_on_cluster` did.

    ``results``: every task's result by index (fresh ones and those kept from
    an earlier run); ``skipped``: indices kept from an earlier run (already in
    the gradebook); ``failures``: what the merges could not store.
    """

    results: dict[int, RecordedResult]
    skipped: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    merges: int = 0
    wall_time: float = 0.0

    def workers(self) -> dict[str, int]:
        """How many submissions each worker graded (``client``: refused on the
        client, ``earlier run``: skipped)."""
        counts: dict[str, int] = {}
        for index, result in self.results.items():
            where = "earlier run" if index in self.skipped else result.worker
            counts[where] = counts.get(where, 0) + 1
        return counts


def _rebuild(task, data: dict, run_dir: Path, index: int, digest, key):
    autograded_dir = None
    if data.get("autograded") is not None:
        autograded_dir = run_dir / f"remote-{index:06d}" / "autograded"
        for name, content in data["autograded"].items():
            path = autograded_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    scores = {k: tuple(v) for k, v in data.get("scores", {}).items()}
    return RecordedResult(
        task.assignment,
        task.student,
        data["outcome"],
        data["reason"],
        scores,
        autograded_dir=autograded_dir,
        duration=data.get("duration", 0.0),
        notes=list(data.get("notes", [])),
        comments=dict(data.get("comments", {})),
        timestamp=data.get("timestamp"),
        peak_rss_mb=dict(data.get("peak_rss_mb", {})),
        timing=dict(data.get("timing", {})),
        late_penalties=dict(data.get("late_penalties", {})),
        flags=Flags.from_dict(data.get("flags")),
        cells={k: CellReport(**v) for k, v in data.get("cells", {}).items()},
        run_seed=data.get("run_seed", task.run_seed),
        worker=data.get("worker", "?"),
        submission_digest=digest,
        settings_key=key,
    )


def _zero(task, outcome: str, reason: str, **kw) -> RecordedResult:
    from .template import TemplateInfo

    info = TemplateInfo.load(task.template_dir)
    return RecordedResult.nothing(
        task.assignment,
        task.student,
        outcome,
        reason,
        info.max_scores,
        run_seed=task.run_seed,
        **kw,
    )


def _record_from(task, record: dict) -> RecordedResult:
    return RecordedResult(
        task.assignment,
        task.student,
        record["outcome"],
        record["reason"],
        {k: tuple(v) for k, v in record.get("scores", {}).items()},
        notes=list(record.get("notes", [])),
        flags=Flags.from_dict(record.get("flags")),
        cells={k: CellReport(**v) for k, v in record.get("cells", {}).items()},
        run_seed=record.get("run_seed"),
        worker=record.get("worker", "?"),
        submission_digest=record.get("submission_digest"),
        settings_key=record.get("settings_key"),
    )


def _failed(exc: BaseException) -> dict:
    return {
        "outcome": ERROR,
        "reason": f"grading failed on the cluster: {type(exc).__name__}: {exc}",
        "worker": "?",
    }


def _blob(data: bytes) -> bytes:
    return data


def grade_on_cluster(
    client,
    course_root: Path,
    tasks: Sequence[tuple[int, object]],
    templates: Mapping[str, Path],
    run_dir: Path,
    *,
    keys: Mapping[str, str] | None = None,
    resume: bool = True,
    merge_every: int = 25,
    merge_seconds: float = 30.0,
    progress: bool = True,
    on_result: Callable[[int, RecordedResult], None] | None = None,
    preflight: bool = True,
) -> ClusterRun:
    """Grade ``tasks`` on the cluster behind ``client``; merge as they finish.

    Args:
        client: a ``distributed.Client``.
        course_root: the course graded (gradebook, outcomes, autograded/).
        tasks: ``(index, GradeTask)`` as ``grade_course`` builds them
            (``submission_dir`` under ``submitted/``; ``template_dir`` set).
        templates: ``{assignment: template_dir}``.
        run_dir: the client's scratch for this run (intake copies, rebuilt
            autograded notebooks, the merge's working copy).
        keys: ``{assignment: settings key}`` (:func:`.ledger.settings_key`);
            with ``resume``, a submission whose recorded result has the same
            digest and key is not graded again.
        merge_every, merge_seconds: incremental merge cadence (:class:`Ledger`).
        progress: a tqdm bar (done/total, ETA) on stderr.
        on_result: called with each fresh result as it arrives.
        preflight: first grade each assignment's reference and blank on every
            worker (:meth:`_ClusterGrading.preflight`).

    Raises:
        PreflightFailed: a worker scores the reference or the blank wrongly;
            nothing was graded.
    """
    started = time.monotonic()
    grading = _ClusterGrading(
        client,
        Path(course_root),
        Path(run_dir),
        Ledger(
            Path(course_root),
            templates,
            Path(run_dir) / "merge",
            every=merge_every,
            seconds=merge_seconds,
        ),
        on_result,
    )
    # Each worker's zygote imports the grading path while the client takes in.
    with contextlib.suppress(Exception):
        client.run(_start_zygote)
    grading.send_bundles(templates)
    try:
        if preflight:
            grading.preflight(templates, tasks)
        for index, task in tasks:
            # Sent as soon as taken in: the workers grade while the client packs.
            if grading.take_in(
                index, task, keys.get(task.assignment) if keys else None, resume
            ):
                grading.submit(index)
        grading.run(len(tasks), progress)
    finally:
        grading.close()
    run = grading.run_record
    run.wall_time = time.monotonic() - started
    return run


class _ClusterGrading:
    """The client's side of one cluster run: intake, submission, results."""

    def __init__(self, client, course_root, run_dir, ledger, on_result):
        self.client = client
        self.course_root = course_root
        self.run_dir = run_dir
        self.ledger = ledger
        self.on_result = on_result
        self.run_record = ClusterRun({})
        self.token = uuid.uuid4().hex[:8]
        self.bundles: dict = {}
        self.payloads: dict[int, tuple] = {}
        self.futures: dict = {}
        self.by_task: dict = {}
        self.bar = None

    def send_bundles(self, templates: Mapping[str, Path]) -> None:
        for assignment, template in templates.items():
            self.bundles[assignment] = self.client.submit(
                _blob,
                assignment_bundle(self.course_root, assignment, template),
                key=f"autograder-bundle-{assignment}-{self.token}",
                pure=False,
            )

    def take_in(self, index: int, task, key: str | None, resume: bool) -> bool:
        """Intake on the client; a refusal or a recorded result never leaves.

        Returns whether the submission is ready to be sent to the cluster.
        """
        from .template import TemplateInfo

        results = self.run_record.results
        copy = self.run_dir / "intake" / f"{index:06d}" / task.student / task.assignment
        try:
            take_in(Path(task.submission_dir), copy)
        except Refusal as refusal:
            results[index] = _zero(task, REFUSED, str(refusal), worker="client")
            self.ledger.add(results[index])
            return False
        except OSError as exc:
            results[index] = _zero(
                task, ERROR, f"could not copy the submission: {exc}", worker="client"
            )
            return False
        digest = submission_digest(copy)
        if resume and key is not None:
            old = recorded(self.course_root, task.student, task.assignment, digest, key)
            if old is not None:
                results[index] = _record_from(task, old)
                self.run_record.skipped.add(index)
                return False
        spec = {
            "index": index,
            "assignment": task.assignment,
            "student": task.student,
            "n_notebooks": len(TemplateInfo.load(task.template_dir).notebooks),
            "settings": {name: getattr(task, name) for name in _SETTINGS},
        }
        bundle = self.bundles[task.assignment]
        self.payloads[index] = (spec, bundle, pack_tree({".": copy}))
        self.by_task[index] = (task, digest, key)
        return True

    def preflight(self, templates: Mapping[str, Path], tasks) -> None:
        """Grade each assignment's reference and blank on every worker.

        The client's pre-flight proved the course; this proves each worker's
        environment (its packages, its sandbox) grades it the same: a worker
        that scores the reference below full or the blank above zero would
        hand out wrong grades, so nothing is graded. Workers that join later
        are not checked.
        """
        import dataclasses

        from ..errors import PreflightFailed
        from .preflight import BLANK, REFERENCE, problems

        workers = sorted(self.client.scheduler_info()["workers"])
        pending: dict[tuple[str, str, str], tuple] = {}
        for assignment, template in sorted(templates.items()):
            like = next((t for _, t in tasks if t.assignment == assignment), None)
            if like is None:
                continue
            for student, origin in (
                (REFERENCE, self.course_root / "source" / assignment),
                (BLANK, Path(template) / "release" / assignment),
            ):
                task = dataclasses.replace(like, student=student, submission_dir=origin)
                spec = {
                    "index": len(pending),
                    "assignment": assignment,
                    "student": student,
                    "n_notebooks": len(list(origin.glob("*.ipynb"))),
                    "settings": {name: getattr(task, name) for name in _SETTINGS},
                }
                packed = pack_tree({".": origin})
                for address in workers:
                    future = self.client.submit(
                        grade_packed,
                        spec,
                        self.bundles[assignment],
                        packed,
                        workers=[address],
                        allow_other_workers=False,
                        pure=False,
                        key=f"autograder-preflight-{self.token}-{uuid.uuid4().hex[:8]}",
                    )
                    pending[(address, assignment, student)] = (future, task)
        found = []
        for address in workers:
            for assignment in sorted(templates):
                if (address, assignment, REFERENCE) not in pending:
                    continue
                results = {}
                for student in (REFERENCE, BLANK):
                    future, task = pending[(address, assignment, student)]
                    try:
                        data = future.result()
                    except Exception as exc:  # noqa: BLE001 - reported below
                        data = _failed(exc)
                    results[student] = self._preflight_result(task, data)
                found += [
                    f"worker {address}, {assignment}: {problem}"
                    for problem in problems(results[REFERENCE], results[BLANK])
                ]
        if found:
            raise PreflightFailed(
                "pre-flight on the cluster's workers failed, so nothing was graded "
                "(these workers would grade wrongly: give them the client's "
                "environment, same packages and bubblewrap):\n  " + "\n  ".join(found)
            )

    def _preflight_result(self, task, data: dict) -> RecordedResult:
        if "scores" not in data:
            return _zero(task, data["outcome"], data["reason"])
        return _rebuild(
            task,
            data,
            self.run_dir / "preflight-workers",
            uuid.uuid4().int % 10**6,
            None,
            None,
        )

    def finish(self, index: int, data: dict) -> None:
        task, digest, key = self.by_task[index]
        if "scores" not in data:
            result = _zero(
                task,
                data["outcome"],
                data["reason"],
                worker=data["worker"],
                submission_digest=digest,
                settings_key=key,
            )
        else:
            result = _rebuild(task, data, self.run_dir, index, digest, key)
        self.run_record.results[index] = result
        self.ledger.add(result)
        if self.on_result is not None:
            self.on_result(index, result)
        self.bar.update(1)

    def submit(self, index: int):
        future = self.client.submit(
            grade_packed,
            *self.payloads[index],
            key=f"autograder-grade-{self.token}-{index:06d}-{uuid.uuid4().hex[:6]}",
            pure=False,
        )
        self.futures[future] = index
        return future

    def run(self, total: int, progress: bool) -> None:
        """Grade every payload; then, one at a time, the suspects of crashes.

        A worker that dies takes every task assigned to it with it, so a task
        that exhausts Dask's allowed failures may be a bystander of the one
        that kills workers: such suspects are graded again one at a time, alone
        on the cluster, and only a task that still kills its workers there is
        given up.
        """
        from distributed import as_completed
        from distributed.scheduler import KilledWorker
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            initial=total - len(self.payloads),
            desc="grading (dask)",
            unit="submission",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        )
        suspects: dict[int, int] = {}
        with self.bar:
            for future in as_completed(list(self.futures)):
                index = self.futures.pop(future)
                try:
                    data = future.result()
                except KilledWorker as exc:
                    suspects[index] = exc.allowed_failures + 1
                    continue
                except Exception as exc:  # noqa: BLE001 - one student, not the class
                    data = _failed(exc)
                future.release()
                self.finish(index, data)
            for index, lost in sorted(suspects.items()):
                self.finish(index, self._alone(index, lost, KilledWorker))

    def _alone(self, index: int, lost: int, killed) -> dict:
        future = self.submit(index)
        try:
            data = future.result()
        except killed as exc:
            total = lost + exc.allowed_failures + 1
            data = {
                "outcome": KERNEL_DIED,
                "reason": f"the worker grading it was lost {total} times "
                f"(the last {exc.last_worker.address}; {lost} in the class "
                "run, the rest graded alone): the submission crashes or "
                "exhausts the machine it runs on; nothing could be graded",
                "worker": exc.last_worker.address,
            }
        except Exception as exc:  # noqa: BLE001 - one student, not the class
            data = _failed(exc)
        self.futures.pop(future)
        future.release()
        return data

    def close(self) -> None:
        self.ledger.flush()
        for future in [*self.futures, *self.bundles.values()]:
            with contextlib.suppress(Exception):
                future.cancel()
        self.run_record.failures = self.ledger.failures
        self.run_record.merges = self.ledger.merges


@contextlib.contextmanager
def local_cluster(n_workers: int, **kwargs):
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes and
    a client to it (``grade --dask-local N``)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            **kwargs,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def summary_by_worker(run: ClusterRun) -> str:
    """One line: how many submissions each worker graded."""
    return "graded on: " + ", ".join(
        f"{where} {n}" for where, n in sorted(run.workers().items())
    )
