"""A pool of forked workers with wall-clock limits.

:func:`run_tasks` runs each :class:`Job` (a function call; the worker is forked,
so the function and its arguments are inherited, not pickled) in its own
process, ``workers`` at a time. A job over its limit is killed with its kernels
and sandboxes; a worker that dies costs its job only. Every worker dies with
the grader (Linux's parent-death signal), so a grader killed with SIGKILL
leaves nothing running.

The pool knows nothing about grading: :mod:`.run` hands it jobs whose function
is :func:`~autograder.grading.submission.grade_submission`. Another scheduler
(a cluster, Dask) can replace it by running the same ``(task, scratch)`` calls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Job",
    "close_worker_channel",
    "die_with_parent",
    "reset_event_loops",
    "run_tasks",
]

#: The worker's result pipe; a kernel forked from the worker must close it.
_WORKER_CONN = None


def close_worker_channel() -> None:
    """Close the worker's result pipe in a process forked from the worker."""
    if _WORKER_CONN is not None:
        _WORKER_CONN.close()


def reset_event_loops() -> None:
    """Forget event loops inherited through fork (their selectors are shared)."""
    import asyncio

    asyncio.set_event_loop_policy(None)
    with contextlib.suppress(Exception):
        import jupyter_core.utils as jcu

        jcu._loop.set(None)
        jcu._runner_map.clear()


@dataclass
class Job:
    """One call to run in a worker: ``fn(*args)``, its log and its limits.

    ``on_timeout()`` gives the result of a job killed at ``limit`` seconds,
    ``on_crash(message)`` that of a job whose worker died or raised.
    """

    key: object
    fn: Callable
    args: tuple
    log: Path
    limit: float | None
    on_timeout: Callable[[], object]
    on_crash: Callable[[str], object]


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` (the grader) dies.

    Linux's parent-death signal; the worker's own children (kernels, runners)
    get theirs from bubblewrap (``--die-with-parent``) and from this function
    in :mod:`autograder.sandbox.files.limits`. Without it, a grader killed with SIGKILL
    would leave its workers grading on their own.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # psutil missing or the process is gone
        return []


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker, its kernels and their process groups."""
    for child in [*_descendants(pid), pid]:
        with contextlib.suppress(OSError):
            if os.getpgid(child) == child and child != os.getpgrp():
                os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)


def _child_main(conn, fn, args, log_path: str, parent: int) -> None:
    """Run in a forked worker: own process group, output to a log, result back."""
    global _WORKER_CONN
    _WORKER_CONN = conn
    die_with_parent(parent)
    os.setpgid(0, 0)  # Ctrl-C reaches the parent only; killpg reaches this task
    reset_event_loops()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    try:
        payload = ("ok", fn(*args))
    except BaseException:
        payload = ("error", traceback.format_exc())
    for pid in _descendants(os.getpid()):  # a kernel left behind must not linger
        _kill_tree(pid)
    conn.send(payload)
    conn.close()


def run_tasks(
    jobs: Iterable[Job], workers: int, *, on_done: Callable | None = None
) -> dict:
    """Run each job in its own forked process, ``workers`` at a time.

    Returns:
        ``{job.key: result}``; a job over its limit is killed (with its
        kernels) and gets ``job.on_timeout()``, a job whose process dies gets
        ``job.on_crash(message)``.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    pending = deque(jobs)
    running: dict = {}  # result pipe -> (process, pipe, job, start time)
    results: dict = {}

    def finish(item, value):
        proc, conn, job, _ = item
        proc.join(5)
        if proc.is_alive():
            _kill_tree(proc.pid)
            proc.join()
        conn.close()
        results[job.key] = value
        if on_done is not None:
            on_done(job, value)

    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                job = pending.popleft()
                recv, proc = _start(ctx, job)
                running[recv] = (proc, recv, job, time.monotonic())
            handles = [*running, *(item[0].sentinel for item in running.values())]
            ready = set(wait(handles, _time_to_next_limit(running)))
            for conn in list(running):
                item = running[conn]
                proc, _, job, started = item
                if conn in ready or proc.sentinel in ready:
                    del running[conn]
                    finish(item, _received(conn, proc, job, conn in ready))
                elif job.limit is not None and time.monotonic() - started > job.limit:
                    del running[conn]
                    _kill_tree(proc.pid)
                    finish(item, job.on_timeout())
    finally:
        for proc, conn, _, _ in running.values():
            _kill_tree(proc.pid)
            proc.join()
            conn.close()
    return results


def _start(ctx, job: Job):
    """Fork the worker of ``job``; return its result pipe and process."""
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child_main,
        args=(send, job.fn, job.args, str(job.log), os.getpid()),
    )
    proc.start()
    send.close()
    return recv, proc


def _time_to_next_limit(running: dict) -> float | None:
    """Seconds until the first running job reaches its limit (None: no limit)."""
    now = time.monotonic()
    deadlines = [
        started + job.limit - now
        for _, _, job, started in running.values()
        if job.limit is not None
    ]
    return max(0.0, min(deadlines)) if deadlines else None


def _received(conn, proc, job: Job, readable: bool):
    """The result a finished worker sent, or ``job.on_crash`` if it sent none."""
    try:
        if not readable and not conn.poll(1):
            raise EOFError
        status, payload = conn.recv()
    except (EOFError, OSError):
        proc.join(5)
        return job.on_crash(f"worker died (exit code {proc.exitcode})")
    if status == "ok":
        return payload
    return job.on_crash(payload.strip().splitlines()[-1])
