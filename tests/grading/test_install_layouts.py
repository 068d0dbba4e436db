"""`python -m autograder grade` in every install layout, on a course outside the repo.

The issue: with the package installed in editable mode from one checkout and the
course directory a second checkout (its own ``dlcourse/`` and ``autograder/``),
the sandbox could not import ``dlcourse``; every setup cell failed and the
reference solution was graded 0/100 with exit code 0 and no flag. Now the
sandbox imports the grader's own ``dlcourse`` and a pre-flight refuses to grade
(exit code 7) when the reference is not full marks.

Here a class of assignment 04 (the reference, the blank release, one typical
mistake worth 90/100) is graded from a course directory outside the repository
by the CLI run as a subprocess, its working folder the course directory, in
three layouts:

1. ``regular``: a fresh virtual environment with ``pip install <copy of the
   repository>`` (not editable; the copy is deleted after the install); the
   course directory holds only ``source/``, ``release/``, ``nbgrader_config.py``
   and ``submitted/``;
2. ``editable``: the interpreter running these tests (an editable install of
   this repository) with the course directory a full copy of the repository,
   as a second checkout would be; ``python -m`` then imports that copy's
   ``autograder`` from the working folder — the reported failure;
3. ``own-dlcourse``: the regular install of 1, the course directory holding its
   own ``dlcourse/`` (but no ``autograder/``).

Nothing on ``PATH`` but the system's folders and tripwires named ``nbgrader`` and
``alembic`` that record any call: the stock ``nbgrader autograde`` (and the
alembic subprocess it starts) is not needed.

The pre-flight itself: a setup cell importing a module that does not exist makes
``grade`` exit 7 naming the setup cell and ``ModuleNotFoundError``, with no
gradebook written; a pre-flight that passed is cached for the next run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import apply_mistake, load_mistakes, source_notebook, write_submissions

from autograder import REPO_ROOT

pytestmark = pytest.mark.slow

ASSIGNMENT = "04_deep_network_step_by_step"
NAME = f"{ASSIGNMENT}.ipynb"
MISTAKE = "missing-1-over-m-in-dW"
TRIPWIRES = ("nbgrader", "alembic")
LAYOUTS = ("regular", "editable", "own-dlcourse")


def _tracked(prefixes: tuple[str, ...] = ()) -> list[str]:
    """This repository's tracked files (those under ``prefixes`` if given)."""
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    names = [n for n in out.split("\0") if n]
    return [n for n in names if not prefixes or n.startswith(prefixes)]


def _copy_tracked(dest: Path, prefixes: tuple[str, ...] = ()) -> Path:
    """Copy tracked files (as a fresh checkout has them) into ``dest``."""
    for name in _tracked(prefixes):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    return dest


def _require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")


def _students() -> dict:
    source = nbformat.read(str(source_notebook(ASSIGNMENT)), as_version=4)
    release = nbformat.read(
        str(REPO_ROOT / "release" / ASSIGNMENT / NAME), as_version=4
    )
    (mistake,) = [m for m in load_mistakes(ASSIGNMENT) if m["name"] == MISTAKE]
    return {
        "reference": source,
        "blank": release,
        "mistake": apply_mistake(source, mistake),
    }


def _make_course(course: Path, *, students: dict | None = None) -> Path:
    """A course directory: source/, release/, nbgrader_config.py, submitted/."""
    for folder in ("source", "release"):
        shutil.copytree(REPO_ROOT / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    write_submissions(course, ASSIGNMENT, students or _students())
    return course


def _tripwires(folder: Path) -> tuple[Path, Path]:
    """``folder/bin`` with an ``nbgrader`` and an ``alembic`` that record calls."""
    bin_dir, record = folder / "bin", folder / "tripwire-calls.txt"
    bin_dir.mkdir(parents=True)
    for name in TRIPWIRES:
        script = bin_dir / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{record}"\nexit 97\n', encoding="utf-8"
        )
        script.chmod(0o755)
    return bin_dir, record


def _cli(
    python: Path | str, cwd: Path, *args: str, cache: Path, tripwires: Path
) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` in ``cwd``, as an instructor would run it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AUTOGRADER_COURSE_ROOT")
    }
    env.update(
        PATH=f"{tripwires}:/usr/local/bin:/usr/bin:/bin",
        AUTOGRADER_CACHE=str(cache),
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return subprocess.run(
        [str(python), "-m", "autograder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _editable_root(python: str) -> Path | None:
    """The folder ``python``'s nn-from-scratch-course is installed editable from."""
    code = (
        "import importlib.metadata as m, json\n"
        "d = m.distribution('nn-from-scratch-course')\n"
        "print(d.read_text('direct_url.json') or '{}')\n"
    )
    # -I: not the working folder's metadata (a checkout may hold an .egg-info).
    out = subprocess.run(
        [python, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    info = json.loads(out)
    if not info.get("dir_info", {}).get("editable"):
        return None
    return Path(info["url"].removeprefix("file://"))


@pytest.fixture(scope="session")
def regular_install(tmp_path_factory) -> Path:
    """One virtual environment per session with a regular (wheel) install of a
    copy of this repository; the copy is deleted once installed."""
    base = tmp_path_factory.mktemp("regular-install")
    repo, venv = base / "repo", base / "venv"
    _copy_tracked(repo, ("autograder/", "dlcourse/", "pyproject.toml", "README.md"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    shutil.rmtree(repo)
    print(f"regular install: {time.monotonic() - started:.0f} s")
    assert _editable_root(str(python)) is None, "the install must not be editable"
    return python


def _layout(name: str, base: Path, request) -> tuple[Path | str, Path]:
    """(python, course directory) of a layout."""
    if name == "editable":
        python = sys.executable
        root = _editable_root(python)
        assert root is not None and root.resolve() == REPO_ROOT.resolve(), (
            f"{python} is not an editable install of {REPO_ROOT} (it is from "
            f"{root}): run the tests with the environment ./course setup makes"
        )
        course = _copy_tracked(base / "second-checkout")
        assert (course / "autograder").is_dir() and (course / "dlcourse").is_dir()
        write_submissions(course, ASSIGNMENT, _students())
        return python, course
    python = request.getfixturevalue("regular_install")
    course = _make_course(base / "course")
    if name == "own-dlcourse":
        _copy_tracked(course, ("dlcourse/",))
    assert (course / "dlcourse").is_dir() == (name == "own-dlcourse")
    assert not (course / "autograder").exists()
    return python, course


@pytest.fixture(scope="module", params=LAYOUTS)
def graded_layout(request, tmp_path_factory):
    _require_bwrap()
    base = tmp_path_factory.mktemp(f"layout-{request.param}")
    python, course = _layout(request.param, base, request)
    assert not _inside(course, REPO_ROOT)
    tripwires, record = _tripwires(base / "tripwires")
    cache = base / "cache"
    started = time.monotonic()
    graded = _cli(
        python, course, "grade", "--no-progress", cache=cache, tripwires=tripwires
    )
    print(f"{request.param}: grade took {time.monotonic() - started:.0f} s")
    exported = _cli(python, course, "export", cache=cache, tripwires=tripwires)
    return {
        "layout": request.param,
        "python": python,
        "course": course,
        "cache": cache,
        "tripwires": tripwires,
        "graded": graded,
        "exported": exported,
        "rows": {r["student"]: r for r in csv.DictReader(io.StringIO(exported.stdout))},
        "tripwire_calls": record.read_text() if record.exists() else "",
    }


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_grade_succeeds_after_a_preflight(graded_layout):
    graded = graded_layout["graded"]
    assert graded.returncode == 0, _output(graded)
    assert f"pre-flight {ASSIGNMENT}: reference 100/100, blank 0" in graded.stdout
    assert "cached" not in graded.stdout
    assert (graded_layout["course"] / "gradebook.db").is_file()


def test_export_has_the_right_scores_and_no_flags(graded_layout):
    exported = graded_layout["exported"]
    assert exported.returncode == 0, _output(exported)
    rows = graded_layout["rows"]
    assert sorted(rows) == ["blank", "mistake", "reference"], exported.stdout
    totals = {student: row["total"] for student, row in rows.items()}
    assert totals == {"reference": "100", "blank": "0", "mistake": "90"}, totals
    assert rows["mistake"]["test_linear_backward"] == "0"
    for student, row in rows.items():
        assert row["outcome"] == "graded", (student, row)
        assert row["flags"] == "", (student, row)


def test_stock_nbgrader_is_not_needed(graded_layout):
    assert graded_layout["tripwire_calls"] == ""


@pytest.mark.parametrize("graded_layout", ["regular"], indirect=True)
def test_a_passed_preflight_is_cached(graded_layout):
    graded = _cli(
        graded_layout["python"],
        graded_layout["course"],
        "grade",
        "--no-progress",
        cache=graded_layout["cache"],
        tripwires=graded_layout["tripwires"],
    )
    assert graded.returncode == 0, _output(graded)
    assert f"pre-flight {ASSIGNMENT}: passed before (cached)" in graded.stdout
    assert "reference 100/100" not in graded.stdout


def test_a_failing_preflight_refuses_to_grade(tmp_path):
    """A setup cell that cannot run: exit 7, the cause named, no gradebook."""
    _require_bwrap()
    source = nbformat.read(str(source_notebook(ASSIGNMENT)), as_version=4)
    (setup,) = [c for c in source.cells if "setup" in c.metadata.get("tags", [])]
    assert setup.metadata["nbgrader"]["locked"]
    setup.source = "import module_that_is_not_installed\n" + setup.source
    course = tmp_path / "course"
    for folder in ("source", "release"):
        shutil.copytree(REPO_ROOT / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    nbformat.write(source, str(course / "source" / ASSIGNMENT / NAME))
    write_submissions(course, ASSIGNMENT, {"reference": source})
    tripwires, _ = _tripwires(tmp_path / "tripwires")
    cache = tmp_path / "cache"
    graded = _cli(
        sys.executable,
        course,
        "grade",
        "--no-progress",
        cache=cache,
        tripwires=tripwires,
    )
    assert graded.returncode == 7, _output(graded)
    assert f"pre-flight of {ASSIGNMENT} failed" in graded.stderr, _output(graded)
    assert "setup" in graded.stderr, graded.stderr
    assert "ModuleNotFoundError" in graded.stderr, graded.stderr
    assert "module_that_is_not_installed" in graded.stderr, graded.stderr
    assert not (course / "gradebook.db").exists()
    assert not (course / "autograded").exists()
    # (the cache also keeps templates: generate_assignment succeeded)
    assert not list((cache / "preflight").rglob("*.json")), (
        "a failed pre-flight was cached"
    )
