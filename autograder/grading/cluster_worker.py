"""The worker's side of grading on a Dask cluster: bytes in, data out.

A task arrives as bytes (:mod:`autograder.grading.cluster` packs them on the
client): the submission's intake copy and the assignment's bundle (template,
``source/<assignment>/``, ``nbgrader_config.py``; unpacked once per worker and
cached by digest). :func:`grade_packed` unpacks them into the worker's own
scratch, builds a :class:`~autograder.grading.submission.GradeTask` pointing
there and grades it in a fresh process forked by the worker's zygote
(:mod:`autograder.grading.zygote`: an interpreter that did the local pool's
warm-up once and never grades), which runs it through the same
:func:`autograder.grading.pool.run_tasks` as the local pool: a forked process
with the notebook's wall-clock limit, killed with its kernels when over. Nothing
of one student's grading lives on in the worker process or the zygote. What
comes back is data: outcome, reason, scores, cells, flags, notes, timing, the
autograded notebooks' bytes and the worker's address.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from .outcomes import ERROR
from .zygote import Zygote, ZygoteLost

__all__ = [
    "SETTINGS",
    "TEST_KILL_ENV",
    "assignment_bundle",
    "grade_packed",
    "grading_environ",
    "pack_tree",
    "start_zygote",
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

#: The GradeTask fields a task carries to the worker.
SETTINGS = (
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
#: A task's scratch folder: ``<prefix><worker pid>-<index>-<random>``.
TASK_PREFIX = "autograder-task-"
_SWEPT: list[bool] = []


def _worker_scratch() -> tuple[Path, str]:
    """(this worker's folder for assignment bundles, its address)."""
    try:
        from distributed import get_worker

        worker = get_worker()
        return Path(worker.local_directory) / "autograder", worker.address
    except (ImportError, ValueError):  # not on a Dask worker (tests, tools)
        return Path(tempfile.gettempdir()) / f"autograder-{os.getpid()}", "local"


def _task_scratch(index: int) -> Path:
    """A folder for one task, where the local pool keeps its own: in memory
    when there is room (:func:`~autograder.grading.run.scratch_base`), so
    nbgrader's SQLite commits do not wait on a disk. The task removes it; the
    first task of a worker removes those left by workers that were killed."""
    from .run import scratch_base

    base = scratch_base()
    if not _SWEPT:
        _SWEPT.append(True)
        for entry in base.glob(f"{TASK_PREFIX}*"):
            pid = entry.name[len(TASK_PREFIX) :].split("-")[0]
            mine = entry.lstat().st_uid == os.getuid()
            if mine and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
    return base / f"{TASK_PREFIX}{os.getpid()}-{index:06d}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    scratch = _task_scratch(spec["index"])
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
        _ZYGOTE.use_environ(grading_environ(spec["environ"]))
        try:
            code = _ZYGOTE.run(scratch, limit)
        except ZygoteLost as exc:
            code = str(exc)
        out = scratch / "result.pkl"
        if not out.is_file():
            log = scratch / "child.log"
            tail = log.read_text(errors="replace").splitlines() if log.is_file() else []
            reason = f"the grading process on {address} {_ended(code, limit)}"
            if tail:
                reason += ": " + " | ".join(tail[-3:])
            return {
                "outcome": ERROR,
                "reason": reason + "; nothing was scored, grade it again",
                "worker": address,
            }
        data = pickle.loads(out.read_bytes())
        data["worker"] = address
        data["worker_seconds"] = round(time.monotonic() - started, 3)
        return data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ended(code: int | str | None, limit: float) -> str:
    """How a grading process that wrote no result ended, in words."""
    if isinstance(code, str):  # the zygote itself was lost
        return f"was lost ({code})"
    if code is None:
        return f"ran past its limit ({limit:.0f} s) and was stopped"
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"died (exit code {code})"


def grading_environ(client: Mapping[str, str]) -> dict[str, str]:
    """The environment this worker grades in: its own, with the client's
    numerics and plotting settings in place of its own
    (:func:`~autograder.sandbox.command.passed_environ`).

    Dask's nanny gives its workers one BLAS and OpenMP thread and eager malloc
    trimming (``distributed.nanny.pre-spawn-environ``); grading on the
    client's machine has neither, and the kernels and the trusted checks must
    see the same settings wherever a submission is graded.
    """
    from ..sandbox.command import passed_environ

    spawned: set[str] = set()
    with contextlib.suppress(Exception):  # no Dask configuration: nothing to undo
        import dask

        spawned = set(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    own = passed_environ(os.environ)
    kept = {k: v for k, v in os.environ.items() if k not in spawned and k not in own}
    return {**kept, **client}


def start_zygote(warm: bool = False, environ: Mapping[str, str] | None = None) -> None:
    """Start this worker's zygote now (``client.run``), not with its first task;
    with ``warm``, return when it is warm. ``environ``: the client's
    :func:`~autograder.sandbox.command.passed_environ`."""
    if environ is not None:
        _ZYGOTE.use_environ(grading_environ(environ))
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
