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

The worker's side is :mod:`autograder.grading.cluster_worker`: it grades in a
fresh process per submission, exactly as the local pool does, and returns data
(outcome, reason, scores, cells, flags, notes, timing, the autograded
notebooks' bytes, its address). This module is the client's side: intake and
packing, the workers' pre-flight, sending, and rebuilding
:class:`~autograder.grading.ledger.RecordedResult` objects under its run
directory, merged as they arrive by the single writer (:class:`~.ledger.Ledger`).

Faults: a worker lost mid-task has its task rerun elsewhere by the scheduler;
results are keyed by task index and each is merged once. A task whose workers
keep dying is given up by the scheduler after ``allowed-failures`` (Dask's
``KilledWorker``) and becomes ``kernel died`` with a reason saying how often.

Dask is imported only by the functions that talk to a cluster.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..sandbox.command import passed_environ
from .cluster_worker import (
    SETTINGS,
    assignment_bundle,
    grade_packed,
    pack_tree,
    start_zygote,
)
from .intake import Refusal, take_in
from .ledger import Ledger, RecordedResult, recorded, submission_digest
from .outcomes import ERROR, KERNEL_DIED, REFUSED, CellReport, Flags

__all__ = [
    "ClusterRun",
    "grade_on_cluster",
    "local_cluster",
    "summary_by_worker",
]


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
        client.run(start_zygote, environ=passed_environ())
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


def _spec(index: int, task, n_notebooks: int) -> dict:
    """What a worker needs to know of a task besides its bytes: the
    GradeTask's settings and the client's numerics and plotting environment
    (:func:`~autograder.grading.cluster_worker.grading_environ`)."""
    return {
        "index": index,
        "assignment": task.assignment,
        "student": task.student,
        "n_notebooks": n_notebooks,
        "settings": {name: getattr(task, name) for name in SETTINGS},
        "environ": passed_environ(),
    }


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
        spec = _spec(index, task, len(TemplateInfo.load(task.template_dir).notebooks))
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
                spec = _spec(len(pending), task, len(list(origin.glob("*.ipynb"))))
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
        left = self._await_pinned({k: f for k, (f, _) in pending.items()})
        found = []
        for address in workers:
            for assignment in sorted(templates):
                if (address, assignment, REFERENCE) not in pending or address in left:
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

    def _await_pinned(self, futures: dict[tuple, object]) -> set[str]:
        """Wait for tasks pinned to workers; the addresses of workers that left.

        A task pinned to a worker that has left would wait forever: it is
        cancelled, and that worker is not checked (it grades nothing more).
        """
        left: set[str] = set()
        while True:
            waiting = {
                key: future
                for key, future in futures.items()
                if not future.done() and key[0] not in left
            }
            if not waiting:
                return left
            present = set(self.client.scheduler_info()["workers"])
            for (address, *_), future in waiting.items():
                if address not in present:
                    left.add(address)
                    future.cancel()
            time.sleep(0.2)

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
