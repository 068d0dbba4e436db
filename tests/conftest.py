"""Shared fixtures: the repository layout and the real nbgrader course harness."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from autograder import REPO_ROOT
from autograder.course import list_assignments

MISTAKES_DIR = REPO_ROOT / "tests" / "files" / "mistakes"

# Kernels started by nbgrader and nbclient must not pop up GUI windows.
os.environ.setdefault("MPLBACKEND", "Agg")


def _export_cat_data_dir() -> None:
    """Name the loader's own data folder in DLCOURSE_DATA when it holds the files.

    Tests that need the cat photos read DLCOURSE_DATA (CI sets it). On a fresh
    clone with the files in ``datasets/`` the loader finds them without it, so
    the tests must too: they ask the loader's resolver, and export the answer for
    the kernels and subprocesses they start.
    """
    from dlcourse.data import CAT_FILES, DATA_ENV_VAR, resolve_data_dir

    if os.environ.get(DATA_ENV_VAR, "").strip():
        return
    directory = resolve_data_dir()
    if all((directory / name).is_file() for name in CAT_FILES):
        os.environ[DATA_ENV_VAR] = str(directory)


_export_cat_data_dir()


def assignments() -> list[str]:
    return list_assignments(REPO_ROOT)


def source_notebook(assignment: str) -> Path:
    return REPO_ROOT / "source" / assignment / f"{assignment}.ipynb"


def load_mistakes(assignment: str) -> list[dict]:
    path = MISTAKES_DIR / f"{assignment}.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def apply_mistake(nb, mistake: dict):
    """Return a copy of a source notebook with one solution cell changed."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == mistake["cell"]
    ]
    assert len(cells) == 1, f"{mistake['name']}: no unique cell {mistake['cell']!r}"
    cell = cells[0]
    for old, new in mistake["replace"]:
        count = cell.source.count(old)
        assert count == 1, (
            f"{mistake['name']}: {old!r} occurs {count} times in cell "
            f"{mistake['cell']!r} (must be exactly once)"
        )
        cell.source = cell.source.replace(old, new)
    return nb


#: A cell that makes every numpy comparison pass, as a cheating student might.
CHEAT_ALLCLOSE = (
    "import numpy as np\n"
    "np.allclose = lambda *a, **k: True\n"
    "np.isclose = lambda a, b, **k: np.ones(np.broadcast(a, b).shape, bool)\n"
)


#: A blank notebook's extra cell that makes every visible check (and the
#: in-kernel hidden grader, where there is one) pass in the student's own kernel.
FAKE_CHECKS = """\
import sys
import dlcourse.checks
import dlcourse.testcases
from dlcourse.testcases import deep_network, logistic

def passed(*args, **kwargs):
    print("All visible checks passed")

dlcourse.checks.check = passed
for name, module in list(sys.modules.items()):
    if name.startswith("dlcourse.testcases") and hasattr(module, "check"):
        module.check = passed
try:
    import autograder.hidden as hidden
    from autograder.hidden import deep_network as hidden_04, logistic as hidden_01
    for module in (hidden_01, hidden_04):
        type(module.GRADER).grade = lambda self, *a, **k: None
except Exception:
    pass
"""


def with_cell(nb, code: str, index: int = 3):
    """Return a copy of ``nb`` with a code cell of the student's inserted."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.insert(index, nbformat.v4.new_code_cell(code))
    return nb


def write_submissions(course: Path, assignment: str, students: dict) -> None:
    """Write ``{student: notebook}`` into ``course/submitted/``."""
    for student, nb in students.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{assignment}.ipynb"))


def tree_digest(folder: Path) -> str:
    """A digest of every path and file content below ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cell_output_text(cell) -> str:
    # The kernel may deliver one print as several stream messages, split
    # wherever it flushed; consecutive stream text is glued back together.
    parts = []
    previous = None
    for output in cell.get("outputs", []):
        kind = (output.output_type, output.get("name"))
        if output.output_type == "stream" and previous == kind:
            parts[-1] += output.text
        elif output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
            parts.extend(output.traceback)
        else:
            parts.append(str(output.get("data", {}).get("text/plain", "")))
        previous = kind
    return "\n".join(parts)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def hidden_lines(source_dir: Path) -> list[str]:
    """Every non-blank line between BEGIN and END HIDDEN TESTS in ``source/``."""
    lines = []
    for path in sorted(source_dir.glob("*/*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            inside = False
            for line in cell.source.splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif inside and line.strip():
                    lines.append(line.strip())
    return lines


def visible_text(report: str) -> str:
    """What a reader of the HTML can see: tags removed, entities decoded."""
    text = re.sub(r"<style.*?</style>|<script.*?</script>", "", report, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def user_env(home: Path) -> dict[str, str]:
    """The environment of a user whose home (and Jupyter folders) is ``home``,
    with this interpreter's scripts (``nbgrader``, ``jupyter``) first on PATH."""
    import os
    import sys

    bindir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
