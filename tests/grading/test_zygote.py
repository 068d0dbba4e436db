"""The zygote: one warm interpreter per Dask worker, a fresh fork per submission."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from autograder.grading.zygote import Zygote, ZygoteLost

HERE = Path(__file__).parent


@pytest.fixture
def zygote_for(monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    started = []

    def make(target: str) -> Zygote:
        zygote = Zygote(f"zygote_targets:{target}", ["zygote_targets"])
        started.append(zygote)
        return zygote

    yield make
    for zygote in started:
        zygote.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().split()[2] != "Z"


def test_each_submission_runs_in_a_fresh_fork_in_its_own_session(zygote_for, tmp_path):
    zygote = zygote_for("record")
    seen = []
    for name in ("alice", "bob"):
        scratch = tmp_path / name
        scratch.mkdir()
        assert zygote.run(scratch, 60) == 0
        assert "graded " + name in (scratch / "child.log").read_text()
        pid, sid, parent, previous = (scratch / "seen.txt").read_text().split()
        assert sid == pid  # its own session: its process group can be killed
        assert previous == "None"  # alice's change never reached bob's process
        seen.append((int(pid), int(parent)))
    assert seen[0][0] != seen[1][0]
    assert seen[0][1] == seen[1][1] == zygote._proc.pid  # one zygote, forked twice
    assert seen[0][1] != os.getpid()


def test_a_crash_is_an_exit_code_and_a_traceback_in_the_log(zygote_for, tmp_path):
    assert zygote_for("crash").run(tmp_path, 60) == 1
    log = (tmp_path / "child.log").read_text()
    assert "ValueError: broken on purpose" in log


def test_over_its_limit_the_child_and_its_group_are_killed(zygote_for, tmp_path):
    zygote = zygote_for("hang_with_a_grandchild")
    started = time.monotonic()
    assert zygote.run(tmp_path, 2.0) is None
    assert time.monotonic() - started < 15
    child = int((tmp_path / "pid").read_text())
    grandchild = int((tmp_path / "grandchild").read_text())
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)
    # The zygote itself goes on serving.
    again = tmp_path / "again"
    again.mkdir()
    assert zygote.run(again, 2.0) is None


def test_the_zygote_stops_with_its_children_when_the_client_closes(
    zygote_for, tmp_path
):
    import threading

    zygote = zygote_for("hang_with_a_grandchild")
    raised = []

    def grade():
        try:
            zygote.run(tmp_path, 600)
        except ZygoteLost as exc:
            raised.append(exc)

    thread = threading.Thread(target=grade, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "grandchild").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = zygote._proc
    child = int((tmp_path / "pid").read_text())
    grandchild = int((tmp_path / "grandchild").read_text())
    zygote.close()
    assert proc.poll() is not None
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)
    thread.join(10)
    assert raised and "zygote died" in str(raised[0])
