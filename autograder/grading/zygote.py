"""A warm process that forks a fresh grading process for every submission.

Starting an interpreter and importing nbgrader, numpy and the grading path
costs seconds, more than grading a notebook. The local pool avoids it by forking
its workers from the grader, which has imported everything once. A Dask worker
cannot: its process runs threads (forking it is unsafe) and is usually
daemonic (``multiprocessing`` refuses it children). So each Dask worker starts
one *zygote*: a single-threaded interpreter that imports the grading path once
and then only forks. Every submission still gets a process of its own, forked
from a zygote that never grades, in its own session (so its whole process group
can be killed), writing only in its own scratch folder: nothing of one student's
grading can reach another's.

Protocol (files, as the rest of a task's exchange): the client writes one line
per submission on the zygote's stdin, the absolute path of its scratch folder.
The zygote says ``ready`` on its stdout once it has preloaded, then forks for
each line; the child runs ``target(scratch)`` with stdout and stderr in
``<scratch>/child.log``. The zygote writes the child's pid to ``<scratch>/pid``
at once and its exit code to ``<scratch>/exit`` when it ends (both atomically).
The zygote stops when its stdin closes, which happens however the process that
started it ends; its children die with it (Linux's parent-death signal) and it
kills their process groups.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Zygote", "ZygoteLost"]

#: How often the client looks for a child's exit (seconds).
POLL_SECONDS = 0.02
#: How long a killed child's exit code is waited for (seconds).
KILL_WAIT_SECONDS = 10.0


class ZygoteLost(RuntimeError):
    """The zygote died while a child of it was grading."""


def _write_atomic(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text(text)
    os.replace(staged, path)


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# Inside the zygote
# --------------------------------------------------------------------------


def _run_child(scratch: Path, target, zygote: int) -> None:
    """The forked child: a session of its own, output to its log, then grade."""
    code = 1
    try:
        os.setsid()
        from .pool import die_with_parent

        die_with_parent(zygote)
        log = os.open(scratch / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        target(scratch)
        code = 0
    except BaseException:  # noqa: BLE001 - the log says what went wrong
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(children: dict[int, Path]) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            _write_atomic(
                children[pid] / "exit", str(os.waitstatus_to_exitcode(status))
            )
        del children[pid]


def serve(parent: int, target: str, preload: Sequence[str]) -> None:
    """The zygote's loop: import once, then fork one child per request line.

    It stops, killing its children, when its stdin closes: when the client
    closes it or its process ends, however it ends. (Not the parent-death
    signal: that fires when the *thread* that started the zygote ends, and a
    Dask worker's task threads come and go.) ``parent`` names the client in
    ``ps``.
    """
    del parent
    for name in preload:  # a module, or "module:function" to call once
        if ":" in name:
            _resolve(name)()
        else:
            importlib.import_module(name)
    function = _resolve(target)
    me = os.getpid()
    os.write(sys.stdout.fileno(), b"ready\n")
    children: dict[int, Path] = {}
    pending = b""
    stdin = sys.stdin.fileno()
    try:
        while True:
            ready, _, _ = select.select([stdin], [], [], POLL_SECONDS)
            _reap(children)
            if not ready:
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:  # the client is gone
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                scratch = Path(line.decode())
                pid = os.fork()
                if pid == 0:
                    _run_child(scratch, function, me)
                _write_atomic(scratch / "pid", str(pid))
                children[pid] = scratch
    finally:
        for pid in children:
            _kill_group(pid)


# --------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------


class Zygote:
    """A zygote for the calling process, started on first use.

    Args:
        target: ``"module:function"`` each child runs with its scratch folder.
        preload: what the zygote does once, before it forks: modules to
            import, and ``"module:function"`` entries to call.

    Thread-safe: a Dask worker grades on several threads at once.
    """

    def __init__(self, target: str, preload: Sequence[str] = ()):
        self.target = target
        self.preload = tuple(preload)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ready = False
        #: The zygote's environment (None: the calling process's).
        self.environ: dict[str, str] | None = None

    def use_environ(self, environ: Mapping[str, str]) -> None:
        """Run the zygote with ``environ``: restarted with it (killing the
        children it is running) if it runs with another."""
        environ = dict(environ)
        with self._lock:
            if environ != self.environ:
                self.environ = environ
                self._stop()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._ready = False
            code = (
                "import sys; from autograder.grading.zygote import serve; "
                "serve(int(sys.argv[1]), sys.argv[2], sys.argv[3:])"
            )
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(os.getpid()), self.target]
                + list(self.preload),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                start_new_session=True,
                env=self.environ,
            )
        return self._proc

    def start(self, wait: bool = False) -> None:
        """Start the zygote if it is not running (else it starts on first use).

        With ``wait``, return once it has done its preload and can fork.
        """
        with self._lock:
            proc = self._ensure()
            if wait and not self._ready:
                assert proc.stdout is not None
                self._ready = proc.stdout.readline() == b"ready\n"

    def run(self, scratch: Path, limit: float) -> int | None:
        """Grade in a fresh child; its exit code, or None when over ``limit`` s.

        The child's whole process group is killed when it ends or is stopped.

        Raises:
            ZygoteLost: the zygote died before the child's exit was known.
        """
        scratch = Path(scratch).resolve()
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None
            proc.stdin.write(f"{scratch}\n".encode())
            proc.stdin.flush()
        deadline = time.monotonic() + limit
        timed_out = False
        while not (scratch / "exit").is_file():
            if proc.poll() is not None:
                self._kill(scratch)
                raise ZygoteLost(f"the zygote died (exit code {proc.returncode})")
            if not timed_out and time.monotonic() > deadline:
                timed_out = True
                self._kill(scratch)
                deadline = time.monotonic() + KILL_WAIT_SECONDS
            elif timed_out and time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        self._kill(scratch)  # nothing of this submission outlives the task
        if timed_out:
            return None
        return int((scratch / "exit").read_text())

    @staticmethod
    def _kill(scratch: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            _kill_group(int((scratch / "pid").read_text()))

    def close(self) -> None:
        """Stop the zygote (its running children are killed with it)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._ready = False
