"""A grader killed with SIGKILL takes its workers, sandboxes and kernels along.

The issue: "If the grader itself is killed, its forked workers keep running (one
ran 13 minutes on its own)." Every worker sets Linux's parent-death signal
(``autograder.grading.pool.die_with_parent``), and every kernel is started under
``sandbox/files/limits.py --die-with-parent`` (and bubblewrap's ``--die-with-parent``).

Here ``python -m autograder grade`` runs as a subprocess on the small fixture
course with two submissions that never finish (a busy loop and a long sleep in
an extra cell). Once the pre-flight has passed and both kernels are running,
every descendant of the grader is recorded, the grader alone is sent SIGKILL
(not its process group), and within 10 s no recorded process may still run.

This process is made a child subreaper for the test, so orphans are reparented
to it rather than to init, and it reaps them itself: "gone" means reaped (or no
such process), independent of whether the machine's init reaps zombies. A zombie
that is not ours to reap counts as gone only when its parent is gone too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from conftest import with_cell, write_submissions

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent.parent / "files" / "course_fixture"
ASSIGNMENT = "mini"
HANGING = {
    "busy-loop": "while True:\n    pass\n",
    "long-sleep": "import time\ntime.sleep(1000)\n",
}
_PR_SET_CHILD_SUBREAPER = 36
GRACE = 10.0


@contextlib.contextmanager
def _subreaper():
    """Make this process the reaper of orphaned descendants while the block runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.fail(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _course(base: Path) -> Path:
    course = base / "course"
    for folder in ("source", "release"):
        shutil.copytree(FIXTURE / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    source = nbformat.read(str(FIXTURE / "source" / ASSIGNMENT / "mini.ipynb"), 4)
    write_submissions(
        course,
        ASSIGNMENT,
        {student: with_cell(source, code) for student, code in HANGING.items()},
    )
    return course


def _kernels(processes: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if "ipykernel_launcher" in process.cmdline():
                found.append(process)
    return found


def _state(process: psutil.Process, recorded: set[int]) -> str:
    """'gone' or what the process still is (reaping it if it is ours)."""
    with contextlib.suppress(ChildProcessError):
        pid, _ = os.waitpid(process.pid, os.WNOHANG)
        if pid == process.pid:
            return "gone"  # reaped here just now
        return "running (our child)"
    try:
        if not process.is_running():  # no such process (or its pid reused)
            return "gone"
        status = process.status()
        if status != psutil.STATUS_ZOMBIE:
            return status
        parent = process.ppid()
    except psutil.NoSuchProcess:
        return "gone"
    # A zombie someone else must reap: gone once its parent is, else its
    # parent (a recorded process still alive) keeps it.
    if parent in recorded and psutil.pid_exists(parent):
        return f"zombie of live {parent}"
    return "gone"


@pytest.mark.parametrize("mode", ["sandboxed", "unsandboxed"])
def test_killing_the_grader_kills_everything_it_started(mode, tmp_path):
    if mode == "sandboxed" and shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    course = _course(tmp_path)
    args = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        "--no-progress",
        "--cell-timeout",
        "600",
        "--notebook-timeout",
        "900",
    ]
    if mode == "unsandboxed":
        args.append("--no-sandbox")
    env = dict(
        os.environ,
        AUTOGRADER_CACHE=str(tmp_path / "cache"),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
    )
    log = tmp_path / "grader.log"
    recorded: list[psutil.Process] = []
    with _subreaper(), open(log, "w") as out:
        grader = subprocess.Popen(
            args, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            # The pre-flight's own workers are done once it says so; then wait
            # for both students' kernels and a tree that has stopped changing.
            deadline = time.monotonic() + 180
            stable_since, last = None, None
            while time.monotonic() < deadline:
                assert grader.poll() is None, log.read_text()
                time.sleep(0.5)
                if f"pre-flight {ASSIGNMENT}:" not in log.read_text():
                    continue
                tree = psutil.Process(grader.pid).children(recursive=True)
                pids = sorted(p.pid for p in tree)
                if len(_kernels(tree)) < len(HANGING) or pids != last:
                    stable_since, last = None, pids
                    continue
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 2:
                    recorded = tree
                    break
            assert recorded, f"no kernels of the students started:\n{log.read_text()}"
            workers = psutil.Process(grader.pid).children()
            assert len(workers) >= len(HANGING), workers

            os.kill(grader.pid, signal.SIGKILL)  # the grader only, not its group
            grader.wait(5)
            pids = {p.pid for p in recorded}
            deadline = time.monotonic() + GRACE
            while True:
                left = {p.pid: s for p in recorded if (s := _state(p, pids)) != "gone"}
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            described = {}
            for process in recorded:
                if process.pid in left:
                    with contextlib.suppress(psutil.Error):
                        described[process.pid] = (
                            left[process.pid],
                            " ".join(process.cmdline())[:120],
                        )
            assert not left, (
                f"{len(left)} of {len(recorded)} processes the grader started "
                f"outlived it by {GRACE:g} s: {described}"
            )
        finally:
            # Whatever the outcome, nothing started here may keep running.
            leftovers = list(recorded)
            if grader.poll() is None:
                with contextlib.suppress(psutil.Error):
                    leftovers += psutil.Process(grader.pid).children(recursive=True)
                grader.kill()
                grader.wait()
            for process in leftovers:
                with contextlib.suppress(psutil.Error):
                    if process.is_running():
                        process.kill()
            reap_until = time.monotonic() + 10
            waiting = {p.pid for p in leftovers}
            while waiting and time.monotonic() < reap_until:
                for pid in list(waiting):
                    try:
                        if os.waitpid(pid, os.WNOHANG)[0] == pid:
                            waiting.discard(pid)
                    except ChildProcessError:
                        waiting.discard(pid)
                time.sleep(0.1)
