"""The Python of the repository is ruff-clean and ruff-formatted (CI checks)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("ruff is not installed in this environment: run ./course setup")
    return found


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"]
)
def test_ruff(args):
    done = subprocess.run(
        [_ruff(), *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "section",
    ["what you will learn", "prerequisites", "time"],
)
def test_every_release_notebook_opens_with_learning_goals_prerequisites_and_time(
    section,
):
    import nbformat

    for path in sorted((REPO_ROOT / "release").glob("*/*.ipynb")):
        intro = nbformat.read(str(path), as_version=4).cells[0].source.lower()
        assert section.split()[-1] in intro, f"{path.name}: no {section!r} in intro"
