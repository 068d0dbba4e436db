"""One sandboxed process tree: start it, watch it, kill it, clean up after it.

:class:`Launch` turns a command into the ``(argv, env)`` that runs it in the
sandbox (the command line itself comes from :mod:`.command`), leases an
unprivileged user id when the grader runs as root, records ``start`` and
``killed`` events, drains the process's stderr into a bounded tail, and runs a
watchdog that enforces the notebook's wall-clock limit and the size of a
kernel's socket folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import AutograderError
from .availability import bwrap_path, resolve_sandboxed
from .command import (
    LIMITS_SCRIPT,
    SANDBOX_LIMITS_SCRIPT,
    bwrap_argv,
    inner_env,
    limit_args,
)
from .config import SandboxConfig, record_event
from .support import matplotlib_fontlists, support_dir

__all__ = ["Launch"]

log = logging.getLogger(__name__)


class _UidLease:
    """An unprivileged user id reserved (by a file lock) for one sandbox."""

    def __init__(self, base: int, span: int = 4096):
        folder = Path(tempfile.gettempdir()) / "autograder-sandbox-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        for uid in range(base, base + span):
            fd = os.open(folder / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise AutograderError(f"no free sandbox user id in {base}..{base + span}")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Launch:
    """One sandboxed process tree: its command line, folders and limits.

    Args:
        cmd: the command to run (absolute interpreter path first).
        workdir: the submission's folder; the process starts there and sees a
            writable tmpfs holding read-only copies of its files.
        config: sandbox configuration.
        what: label for events (``"kernel"``, ``"runner"``).
        runtime: make a private read-write folder (for a kernel's sockets).
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        workdir: str | os.PathLike,
        config: SandboxConfig,
        what: str = "process",
        runtime: bool = False,
    ):
        self.cmd = list(cmd)
        self.workdir = os.path.realpath(workdir)
        self.config = config
        self.what = what
        self.sandboxed: bool | None = None
        base = config.scratch_dir or tempfile.gettempdir()
        Path(base).mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~107 bytes: fall back to /tmp.
        if len(os.path.realpath(base)) > 60:
            base = tempfile.gettempdir()
        self.folder = tempfile.mkdtemp(prefix="sbx-", dir=base)
        self.runtime_dir = os.path.join(self.folder, "rt") if runtime else None
        if self.runtime_dir:
            os.mkdir(self.runtime_dir, 0o700)
        self._lease: _UidLease | None = None
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self.pgid: int | None = None
        self.killed_reason: str | None = None
        self.stderr_tail = b""

    def prepare(self, *, sandboxed: bool | None = None) -> tuple[list[str], dict]:
        """Return ``(argv, env)`` for ``subprocess.Popen``.

        Args:
            sandboxed: force the decision (the probe uses it); by default,
                sandbox if bubblewrap works, else run unsandboxed (or raise
                :class:`SandboxUnavailable` if the sandbox is required).
        """
        if sandboxed is None:
            sandboxed = resolve_sandboxed(self.config)
        self.sandboxed = sandboxed
        python = self.config.python
        limits = limit_args(self.config.limits)
        support = support_dir(self.config.stub_modules)
        if not sandboxed:
            tmp = Path(self.folder, "tmp")
            tmp.mkdir(exist_ok=True)
            shutil.copytree(
                Path(support, "ipython"), tmp / "ipython", dirs_exist_ok=True
            )
            argv = [python, "-I", "-S", str(LIMITS_SCRIPT), "--die-with-parent"]
            env = inner_env(
                self.config, workdir=self.workdir, support=support, tmp=str(tmp)
            )
            return [*argv, *limits, "--", *self.cmd], env
        inner = [python, "-I", "-S", SANDBOX_LIMITS_SCRIPT, *limits]
        as_root = os.geteuid() == 0
        if as_root:
            self._lease = _UidLease(self.config.uid_base)
            inner += [f"--uid={self._lease.uid}", f"--gid={self._lease.uid}"]
            if self.runtime_dir:
                os.chown(self.runtime_dir, self._lease.uid, self._lease.uid)
        inner += ["--", *self.cmd]
        outer = [python, "-I", "-S", str(LIMITS_SCRIPT), "--ignore-sigint"]
        outer += ["--die-with-parent", "--"]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        bwrap = bwrap_argv(
            self.config,
            bwrap=bwrap_path(self.config) or self.config.bwrap,
            workdir=self.workdir,
            inner=inner,
            support=support,
            runtime_dir=self.runtime_dir,
            as_root=as_root,
            fontlists=matplotlib_fontlists(),
        )
        return [*outer, *bwrap], env

    def grant(self, path: str) -> None:
        """Let the sandbox user read a file the grader wrote (a connection file)."""
        if self._lease is not None:
            os.chown(path, self._lease.uid, self._lease.uid)

    # -- lifetime -------------------------------------------------------------

    def started(self, pid: int, *, deadline: float | None = None) -> None:
        """Record the process and start the watchdog."""
        try:
            self.pgid = os.getpgid(pid)
        except OSError:
            self.pgid = pid
        record_event(
            self.config,
            {
                "event": "start",
                "what": self.what,
                "sandboxed": bool(self.sandboxed),
                "workdir": self.workdir,
            },
        )
        if deadline is not None or self.runtime_dir:
            self._watchdog = threading.Thread(
                target=self._watch,
                args=(deadline,),
                daemon=True,
                name="sandbox-watchdog",
            )
            self._watchdog.start()

    def drain(self, stream) -> None:
        """Read a pipe from the sandbox in the background, keeping its tail.

        Student code can write to its stderr without end; the grader's own
        terminal and logs must not fill up with it.
        """
        self.stderr_tail = b""

        def pump():
            with contextlib.suppress(OSError, ValueError):
                while chunk := stream.read(65536):
                    self.stderr_tail = (self.stderr_tail + chunk)[-8192:]

        threading.Thread(target=pump, daemon=True, name="sandbox-stderr").start()

    def _watch(self, deadline: float | None) -> None:
        limit = self.config.limits.runtime_size
        while not self._stop.wait(0.25):
            if deadline is not None and time.monotonic() > deadline:
                seconds = self.config.limits.notebook_timeout
                self.kill(f"notebook time limit ({seconds} s) exceeded")
                return
            if self.runtime_dir and _folder_size(self.runtime_dir, limit) > limit:
                self.kill(f"wrote more than {limit} bytes into its socket folder")
                return

    def signal(self, signum: int) -> None:
        """Send a signal to every process of the sandbox."""
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def kill(self, reason: str) -> None:
        """Kill the whole sandbox and record why."""
        if self.killed_reason is None:
            self.killed_reason = reason
            record_event(
                self.config,
                {
                    "event": "killed",
                    "what": self.what,
                    "reason": reason,
                    "sandboxed": bool(self.sandboxed),
                    "workdir": self.workdir,
                },
            )
            log.warning("sandboxed %s killed: %s", self.what, reason)
        self.signal(signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop the watchdog, release the user id and remove private folders."""
        self._stop.set()
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _folder_size(folder: str, limit: int) -> int:
    total, count = 0, 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            count += 1
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
            if total > limit or count > 1000:
                return limit + 1
    return total
