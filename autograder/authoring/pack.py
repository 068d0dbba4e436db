"""Build the student pack: everything students get, and nothing the grader keeps.

``python -m autograder pack [--out DIR]`` writes::

    DIR/README.md                    set-up, the data, self-checking
    DIR/wheels/dlcourse-<v>-py3-none-any.whl
    DIR/assignments/<id>/...         release/<id>/ (notebook and helper files)
    DIR/notebooks/*.ipynb            start-here page and ungraded companions

The wheel holds the ``dlcourse`` package with its data files (the visible
checks' expected outputs) and declares only what students need; it never holds
``autograder`` (hidden tests) or ``source/`` (solutions). Before the pack is put
in place, :func:`audit_pack` reads every file, wheel members included, and
refuses a pack with a solution or hidden-test marker in it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .. import REPO_ROOT
from ..course import list_assignments
from ..errors import AutograderError, UsageError

__all__ = ["DEFAULT_OUT", "PackError", "audit_pack", "build_pack"]

#: Where ``pack`` writes without ``--out`` (git-ignored).
DEFAULT_OUT = REPO_ROOT / "build" / "student-pack"
#: A file that marks a folder as a pack, so that ``pack`` may replace it.
MARKER = ".dlcourse-student-pack"
#: Requirements of the course that only the grader needs.
GRADER_ONLY = {"nbgrader", "nbclient", "nbformat"}
#: Text that only the instructor's copies contain.
LEAK_MARKERS = (
    "### BEGIN SOLUTION",
    "### END SOLUTION",
    "### BEGIN HIDDEN TESTS",
    "### END HIDDEN TESTS",
)
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
# setuptools 77 reads `license` as an SPDX string and builds wheels by itself.
_MIN_SETUPTOOLS = (77,)


class PackError(AutograderError):
    """The student pack could not be built, or would give away solutions."""

    exit_code = 7


# --------------------------------------------------------------------------
# The dlcourse wheel
# --------------------------------------------------------------------------


def _read_pyproject(root: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as error:
            raise PackError(
                "pack reads pyproject.toml with tomllib (Python 3.11+); on "
                "Python 3.10 install tomli first"
            ) from error
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def student_pyproject(root: Path = REPO_ROOT) -> str:
    """The ``pyproject.toml`` of the ``dlcourse`` distribution, from the course's.

    Same version, Python requirement, package data and entry point as the
    course; dependencies without the grader-only ones (:data:`GRADER_ONLY`),
    with nbgrader as the ``hub`` extra (assignment list and submit on JupyterHub).
    """
    project = _read_pyproject(root)
    meta = project["project"]
    deps = [d for d in meta["dependencies"] if _requirement_name(d) not in GRADER_ONLY]
    nbgrader = [d for d in meta["dependencies"] if _requirement_name(d) == "nbgrader"]
    data = {
        package: patterns
        for package, patterns in project["tool"]["setuptools"]["package-data"].items()
        if package.split(".")[0] == "dlcourse"
    }
    scripts = {
        name: target
        for name, target in meta.get("scripts", {}).items()
        if target.startswith("dlcourse")
    }
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "[build-system]",
        f'requires = ["setuptools>={_MIN_SETUPTOOLS[0]}"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        'name = "dlcourse"',
        f"version = {q(meta['version'])}",
        'description = "Neural Networks from Scratch: the helpers every notebook '
        'imports (data, checks, plots)."',
        f"requires-python = {q(meta['requires-python'])}",
        f"license = {q(meta['license'])}",
        f"dependencies = {q(deps)}",
        "",
        "[project.optional-dependencies]",
        f"hub = {q(nbgrader)}",
        "",
        "[project.scripts]",
        *(f"{q(name)} = {q(target)}" for name, target in scripts.items()),
        "",
        "[tool.setuptools.packages.find]",
        'include = ["dlcourse*"]',
        "",
        "[tool.setuptools.package-data]",
        *(f"{q(package)} = {q(patterns)}" for package, patterns in data.items()),
    ]
    return "\n".join(lines) + "\n"


def _build_isolation_needed() -> bool:
    """Whether this environment's setuptools is too old to build the wheel."""
    try:
        found = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return True
    major = int(re.match(r"\d+", found).group())
    return (major,) < _MIN_SETUPTOOLS


def build_wheel(dest: Path, *, root: Path = REPO_ROOT) -> Path:
    """Build the ``dlcourse`` wheel into ``dest``; return its path.

    The package is copied into a scratch folder with its own ``pyproject.toml``,
    so nothing else of the repository can end up in the wheel.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlcourse-wheel-") as scratch:
        stage = Path(scratch) / "dlcourse-dist"
        shutil.copytree(root / "dlcourse", stage / "dlcourse", ignore=_SKIP)
        (stage / "pyproject.toml").write_text(student_pyproject(root), "utf-8")
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        if not _build_isolation_needed():
            # Offline: build with this environment's setuptools.
            command.append("--no-build-isolation")
        command += ["--wheel-dir", str(dest), str(stage)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PackError(
                f"building the dlcourse wheel failed ({' '.join(command)}):\n"
                f"{done.stderr.strip()}"
            )
    wheels = sorted(dest.glob("dlcourse-*.whl"))
    if len(wheels) != 1:
        raise PackError(f"expected one dlcourse wheel in {dest}, found {wheels}")
    return wheels[0]


# --------------------------------------------------------------------------
# The pack
# --------------------------------------------------------------------------


def _texts(folder: Path):
    """Yield ``(name, text)`` for every file of ``folder`` and every wheel member."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(folder))
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                for member in wheel.namelist():
                    text = wheel.read(member).decode("utf-8", "replace")
                    yield f"{name}!{member}", text
        else:
            yield name, path.read_bytes().decode("utf-8", "replace")


def audit_pack(folder: Path, *, assignments: list[str] | None = None) -> list[str]:
    """Return every reason ``folder`` must not go to students (empty: none).

    Looks for solution and hidden-test markers in every file and wheel member,
    for ``autograder`` or ``source`` anywhere in a path, and for the expected
    outputs of each assignment's visible checks in the wheel.
    """
    problems = []
    members = []
    for name, text in _texts(folder):
        members.append(name)
        parts = re.split(r"[/!\\]", name)
        if "autograder" in parts or "source" in parts:
            problems.append(f"{name}: grader-only path")
        for marker in LEAK_MARKERS:
            if marker in text:
                problems.append(f"{name}: contains {marker!r}")
    for assignment in assignments or []:
        json_name = f"dlcourse/testcases/expected/{assignment}.json"
        if not any(m.endswith("!" + json_name) for m in members):
            problems.append(f"the wheel lacks {json_name} (visible checks need it)")
    return problems


def _readme(wheel: str, assignments: list[str]) -> str:
    listing = "\n".join(f"- `assignments/{a}/`" for a in assignments)
    return README.format(wheel=wheel, assignments=listing)


def _replaceable(out: Path) -> bool:
    if not out.exists():
        return True
    return out.is_dir() and ((out / MARKER).is_file() or not any(out.iterdir()))


_COURSE_FOLDERS = ("source", "release", "notebooks", "dlcourse", "autograder")


def build_pack(out: Path | None = None, *, root: Path = REPO_ROOT, log=print) -> Path:
    """Build the student pack in ``out`` (default :data:`DEFAULT_OUT`).

    Raises:
        UsageError: if ``out`` exists, is not empty and is not a pack.
        PackError: if the wheel cannot be built or the audit finds a leak.
    """
    root = Path(root).resolve()
    out = Path(out or DEFAULT_OUT).resolve()
    if not _replaceable(out):
        raise UsageError(
            f"{out} exists and is not a student pack; name an empty or new folder"
        )
    inside = out.parts[len(root.parts)] if root in out.parents else None
    if out == root or inside in _COURSE_FOLDERS:
        raise UsageError(f"{out}: build the pack outside the course's own folders")
    assignments = list_assignments(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for assignment in assignments:
            release = root / "release" / assignment
            if not release.is_dir():
                raise PackError(f"{release} is missing: run `autograder release`")
            shutil.copytree(release, staged / "assignments" / assignment, ignore=_SKIP)
        (staged / "notebooks").mkdir()
        for notebook in sorted((root / "notebooks").glob("*.ipynb")):
            shutil.copy2(notebook, staged / "notebooks" / notebook.name)
        wheel = build_wheel(staged / "wheels", root=root)
        (staged / "README.md").write_text(
            _readme(wheel.name, assignments), encoding="utf-8"
        )
        (staged / MARKER).write_text("built by `python -m autograder pack`\n")
        problems = audit_pack(staged, assignments=assignments)
        if problems:
            raise PackError("the pack would leak:\n  " + "\n  ".join(problems))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    finally:
        if staged.exists():
            shutil.rmtree(staged)
    log(f"student pack: {out} ({len(assignments)} assignments, {wheel.name})")
    return out


README = """\
# Neural Networks from Scratch — student pack

You build neural networks in plain numpy, one assignment at a time, and check
every step as you go. This folder holds:

- `assignments/` — the five assignment notebooks (and the helper files they use):
{assignments}
- `notebooks/` — the start-here page and ungraded interactive companions;
- `wheels/{wheel}` — the `dlcourse` package every notebook imports
  (datasets, activations, plots, and the visible checks with their expected
  outputs).

## Set up (Linux, macOS, Windows)

You need Python 3.10 or newer. In a terminal, inside this folder:

```bash
python -m venv .venv
# Linux / macOS:
source .venv/bin/activate
# Windows (PowerShell):  .venv\\Scripts\\Activate.ps1
python -m pip install wheels/{wheel} jupyterlab
```

On the course's JupyterHub all of this is already installed.

## Get the data (assignments 01 and 05)

Assignments 01 and 05 use the cat / non-cat photos (`train_catvnoncat.h5`,
`test_catvnoncat.h5`, 3 MB). Choose a folder for them and tell the loader
where it is with the `DLCOURSE_DATA` environment variable, then download them
(each file is checked by its SHA-256):

```bash
# Linux / macOS
export DLCOURSE_DATA="$PWD/datasets"
python -m dlcourse fetch-data
# Windows (PowerShell)
$env:DLCOURSE_DATA = "$PWD\\datasets"
python -m dlcourse fetch-data
```

Without network, copy the two `.h5` files you were given into that folder
instead. Set `DLCOURSE_DATA` in the terminal you start Jupyter from (or in your
shell profile), so that the notebooks find the files; a missing or broken file
gets a message that says what is wrong and how to fix it.

## Work and check yourself

```bash
jupyter lab
```

Open `notebooks/00_start_here.ipynb` first, then the assignments in order.
After each exercise, the cell below it runs a **visible check** on fixed inputs
and prints `All visible checks passed` when your function agrees with the
reference there. Visible checks do not promise full marks: the graded tests
use other inputs and shapes, and run only when your work is graded (on Linux,
in an isolated sandbox). The start-here page mentions a `check` command: that
one needs the instructor's repository and is not part of this pack. Its
environment check also lists nbgrader, which you need only on the course's
JupyterHub (where it is installed); elsewhere ignore that line, or install the
wheel with the `hub` extra: `python -m pip install "wheels/{wheel}[hub]"`.

Submit the notebooks the way your course says (the JupyterHub *Assignments*
tab, or by uploading the `.ipynb` files).
"""
