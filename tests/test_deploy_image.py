"""The grading worker's image definition (``deploy/grader.Containerfile``).

No container engine runs where these tests run, so the image is not built
here: these tests check what can be checked without one. Every file it copies
exists in the repository and is tracked; it installs the same lock as
``./course setup`` and docs/deploy.md, on the Python the lock names, then the
project without dependencies; it installs bubblewrap and grades as an ordinary
user; docs/deploy.md gives the run flags the file gives and says plainly that
the image has not been built here.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from autograder import REPO_ROOT

CONTAINERFILE = REPO_ROOT / "deploy" / "grader.Containerfile"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
RUN_FLAGS = (
    "--security-opt seccomp=unconfined",
    "--security-opt apparmor=unconfined",
    "--security-opt systempaths=unconfined",
)


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined."""
    text = CONTAINERFILE.read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _tracked(path: str) -> bool:
    done = subprocess.run(
        ["git", "ls-files", "--error-unmatch", path],
        cwd=REPO_ROOT,
        capture_output=True,
    )
    return done.returncode == 0


def test_every_copied_path_exists_and_is_tracked():
    copies = [shlex.split(args) for word, args in _instructions() if word == "COPY"]
    assert copies, "the image copies nothing"
    for *sources, _dest in copies:
        for source in sources:
            assert not source.startswith("--"), f"COPY {source}: no build stages"
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
            assert _tracked(source.rstrip("/")), f"COPY {source}: not in git"
            assert source not in (".", "./", "source", "source/"), (
                "the image copies only the grader, not the whole repository"
            )


def test_it_copies_every_package_and_file_the_project_build_needs():
    # (tomllib is Python 3.11+; the project supports 3.10)
    project = (REPO_ROOT / "pyproject.toml").read_text()
    (include,) = re.findall(r"^include = \[(.*)\]$", project, re.M)
    (readme,) = re.findall(r'^readme = "(.*)"$', project, re.M)
    copied = {
        source.rstrip("/")
        for word, args in _instructions()
        if word == "COPY"
        for source in shlex.split(args)[:-1]
    }
    packages = {p.strip(' "*') for p in include.split(",")}
    assert packages == {"dlcourse", "autograder"}
    assert packages <= copied
    assert {"pyproject.toml", readme} <= copied


def test_it_installs_the_lock_then_the_project_without_dependencies():
    runs = [args for word, args in _instructions() if word == "RUN"]
    pip = [r for r in runs if "pip install" in r]
    assert "-r requirements.lock" in pip[0]
    assert re.search(r"pip install (--no-cache-dir )?--no-deps \.(\s|$)", pip[1])
    # the same lock as ./course setup and the image steps of docs/deploy.md
    assert "requirements.lock" in (REPO_ROOT / "course").read_text()
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    assert "python -m pip install -r requirements.lock" in doc
    assert "python -m pip install --no-deps ." in doc


def test_the_base_image_has_the_python_the_lock_was_made_on():
    lock = (REPO_ROOT / "requirements.lock").read_text()
    (python,) = re.findall(r"^# python-version: *(\S+)", lock, re.M)
    (base,) = [args for word, args in _instructions() if word == "FROM"]
    assert re.search(rf"\bpython:{re.escape(python)}-", base), base


def test_it_installs_bubblewrap_and_grades_as_an_ordinary_user():
    runs = " ".join(args for word, args in _instructions() if word == "RUN")
    assert re.search(r"apt-get install .*\bbubblewrap\b", runs)
    users = [args for word, args in _instructions() if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    (entry,) = [args for word, args in _instructions() if word == "ENTRYPOINT"]
    assert '"autograder"' in entry
    (cmd,) = [args for word, args in _instructions() if word == "CMD"]
    assert "--require-sandbox" in cmd


@pytest.mark.parametrize("flag", RUN_FLAGS)
def test_the_docs_and_the_file_give_the_same_run_flags(flag):
    assert flag in CONTAINERFILE.read_text(encoding="utf-8")
    assert flag in DEPLOY_DOC.read_text(encoding="utf-8")


def test_the_docs_say_the_image_was_not_built_here():
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    assert "deploy/grader.Containerfile" in doc
    assert "has not been built" in doc
