"""`autograder grade` run by an ordinary user, as instructors run it.

Every other sandbox test runs where the tests run: in CI and on the development
machines that is root, where bubblewrap switches the student's code to a leased
unprivileged uid. An instructor grades as an ordinary user, where bubblewrap
needs unprivileged user namespaces instead. This test takes that path for real:
it installs a copy of the project into a virtual environment an ordinary user
can read, then runs the CLI as ``nobody`` with ``--require-sandbox`` on a class
of assignment 04: the reference, the blank copy, a typical mistake, a student who
monkeypatches numpy's comparisons, and one whose extra cell tries to write
outside its folder, reach a listener on 127.0.0.1 and read the solutions.

Run as an ordinary user, the rest of the suite already takes this path, so the
test is skipped there; in CI (root) it runs.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import (
    CHEAT_ALLCLOSE,
    apply_mistake,
    load_mistakes,
    source_notebook,
    tree_digest,
    with_cell,
    write_submissions,
)

from autograder import REPO_ROOT

pytestmark = pytest.mark.slow

ASSIGNMENT = "04_deep_network_step_by_step"
NAME = f"{ASSIGNMENT}.ipynb"
NOBODY = 65534
ESCAPE = """\
import os, pathlib, socket
for path in {targets!r}:
    try:
        pathlib.Path(path).write_text("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("blocked", path, type(exc).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("CONNECTED")
except OSError as exc:
    print("no connection", type(exc).__name__)
print("FOUND", [str(p) for p in pathlib.Path("/").glob("**/source/04_*/*.ipynb")])
"""


def _system_python() -> str:
    """A Python an ordinary user can run (the tests' own may live under /root)."""
    for folder in ("/usr/local/bin", "/usr/bin"):
        for name in ("python3.13", "python3.12", "python3.11", "python3.10", "python3"):
            path = Path(folder) / name
            if path.is_file() and os.access(path, os.X_OK):
                ok = subprocess.run(
                    [
                        str(path),
                        "-c",
                        "import sys, venv; assert sys.version_info >= (3, 10)",
                    ],
                    capture_output=True,
                    check=False,
                )
                if ok.returncode == 0:
                    return str(path)
    pytest.fail(
        "no Python >= 3.10 with venv outside /root for the unprivileged user: "
        "install python3 and python3-venv (apt-get install -y python3-venv)"
    )


def _as_nobody(venv: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m autograder ARGS`` as nobody, with a clean environment."""
    env = {
        "HOME": str(home),
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "JUPYTER_PREFER_ENV_PATH": "1",
        "MPLBACKEND": "Agg",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*drop, str(venv / "bin" / "python"), "-m", "autograder", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def unprivileged_class():
    if os.geteuid() != 0:
        pytest.skip("not root: the rest of the suite already grades unprivileged")
    if shutil.which("setpriv") is None or shutil.which("bwrap") is None:
        pytest.fail("setpriv and bwrap are needed: run ./course setup (as root)")
    # World-readable, unlike pytest's own temporary folders under /tmp.
    base = Path(tempfile.mkdtemp(prefix="dlcourse-unprivileged-", dir="/var/tmp"))
    listener = socket.socket()
    try:
        os.chmod(base, 0o755)
        repo, venv, course = base / "repo", base / "venv", base / "course"
        tracked = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        for name in filter(None, tracked.split("\0")):
            if name.startswith(("release/", "notebooks/", "tests/")):
                continue
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, repo / name)
        subprocess.run([_system_python(), "-m", "venv", str(venv)], check=True)
        install = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", str(repo)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert install.returncode == 0, install.stdout + install.stderr

        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        token = secrets.token_hex(6)
        targets = [
            f"{course}/PWNED-{token}",
            f"{course}/submitted/PWNED-{token}",
            f"{course}/source/{ASSIGNMENT}/PWNED-{token}",
            f"{repo}/dlcourse/PWNED-{token}",
            f"{course}/home/PWNED-{token}",
        ]
        escape = ESCAPE.format(targets=targets, port=listener.getsockname()[1])

        shutil.copytree(
            REPO_ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT
        )
        shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
        source = nbformat.read(str(source_notebook(ASSIGNMENT)), as_version=4)
        release = nbformat.read(
            str(REPO_ROOT / "release" / ASSIGNMENT / NAME), as_version=4
        )
        mistake = next(
            m
            for m in load_mistakes(ASSIGNMENT)
            if m["name"] == "missing-1-over-m-in-dW"
        )

        students = {
            "reference": source,
            "blank": release,
            "mistake": apply_mistake(source, mistake),
            "cheat": with_cell(apply_mistake(source, mistake), CHEAT_ALLCLOSE),
            "escape": with_cell(source, escape),
        }
        write_submissions(course, ASSIGNMENT, students)
        (course / "home").mkdir()
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(course)], check=True)
        before = tree_digest(course / "submitted")

        graded = _as_nobody(
            venv, course / "home", "grade", "--course", str(course),
            "--require-sandbox", "--no-progress",
        )  # fmt: skip
        exported = _as_nobody(venv, course / "home", "export", "--course", str(course))
        connections = 0
        while True:
            try:
                listener.accept()[0].close()
                connections += 1
            except BlockingIOError:
                break
        yield {
            "graded": graded,
            "exported": exported,
            "rows": {
                r["student"]: r for r in csv.DictReader(io.StringIO(exported.stdout))
            },
            "connections": connections,
            "markers": [t for t in targets if Path(t).exists()],
            "submitted_unchanged": before == tree_digest(course / "submitted"),
            "escape_output": _cell_text(course, "escape", 3),
        }
    finally:
        listener.close()
        shutil.rmtree(base, ignore_errors=True)


def _cell_text(course: Path, student: str, index: int) -> str:
    path = course / "autograded" / student / ASSIGNMENT / NAME
    if not path.is_file():
        return ""
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for o in nb.cells[index].get("outputs", []))


def test_grading_as_an_ordinary_user_runs_sandboxed(unprivileged_class):
    graded = unprivileged_class["graded"]
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert unprivileged_class["exported"].returncode == 0
    rows = unprivileged_class["rows"]
    assert "unsandboxed" not in "".join(r["flags"] for r in rows.values())


def test_scores_are_the_verified_ones(unprivileged_class):
    rows = unprivileged_class["rows"]
    assert rows["reference"]["total"] == "100" and rows["reference"]["flags"] == ""
    assert rows["blank"]["total"] == "0" and rows["blank"]["flags"] == ""
    assert rows["mistake"]["total"] == "90"
    assert rows["mistake"]["test_linear_backward"] == "0"
    assert rows["cheat"]["total"] == "90"
    assert "disagreement test_linear_backward" in rows["cheat"]["flags"]
    assert rows["escape"]["total"] == "100"


def test_student_code_stays_inside(unprivileged_class):
    result = unprivileged_class
    printed = result["escape_output"]
    assert "blocked" in printed and "WROTE" not in printed, printed
    assert "CONNECTED" not in printed and result["connections"] == 0, printed
    assert "FOUND []" in printed, printed
    assert result["markers"] == []
    assert result["submitted_unchanged"]
