"""Notebook hygiene, execution of source notebooks, and the committed release."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import assignments, cell_output_text, source_notebook
from nbclient import NotebookClient

from autograder import REPO_ROOT
from autograder.authoring.release import release
from autograder.errors import ReleaseOutOfDate
from autograder.notebooks import hygiene_problems

COMMITTED = sorted((REPO_ROOT / "source").glob("*/*.ipynb")) + sorted(
    (REPO_ROOT / "notebooks").glob("*.ipynb")
)
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def test_there_is_something_to_check():
    assert assignments(), "no assignment under source/"


@pytest.mark.parametrize("path", COMMITTED, ids=_rel)
def test_committed_notebooks_have_no_outputs_or_volatile_metadata(path):
    assert hygiene_problems(path) == []


@pytest.mark.parametrize("assignment", assignments())
def test_source_notebook_cells_follow_the_authoring_rules(assignment):
    nb = nbformat.read(str(source_notebook(assignment)), as_version=4)
    ids, points, written = [], 0, []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        ids.append(meta["grade_id"])
        if meta.get("grade") and cell.cell_type == "markdown":
            written.append(meta["grade_id"])
            _check_written_answer(nb, index)
        elif meta.get("grade"):
            points += meta["points"]
            assert meta.get("locked"), f"test cell {meta['grade_id']} is not locked"
            src = cell.source
            assert "### BEGIN HIDDEN TESTS" in src, f"{meta['grade_id']}: no hidden"
            assert src.lstrip().startswith("#"), (
                f"{meta['grade_id']} must open with a comment saying what it checks"
            )
        if meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source, meta["grade_id"]
    assert len(ids) == len(set(ids)), f"duplicate grade ids in {assignment}"
    assert points == 100, f"{assignment}: test cells are worth {points}, not 100"
    assert len(written) == 1, f"{assignment}: written questions {written}, expected 1"


def _check_written_answer(nb, index: int) -> None:
    """A written answer: manually graded markdown after a locked prompt, with
    its rubric inside the solution region (so the release shows the stub)."""
    answer, prompt = nb.cells[index], nb.cells[index - 1]
    meta = answer.metadata["nbgrader"]
    gid = meta["grade_id"]
    assert gid.startswith("written_"), gid
    assert meta == {
        "grade": True,
        "solution": True,
        "locked": False,
        "points": 5,
        "grade_id": gid,
        "schema_version": 3,
    }
    source = answer.source.strip()
    assert source.startswith("### BEGIN SOLUTION"), gid
    assert source.endswith("### END SOLUTION"), gid
    assert "Rubric" in source, f"{gid}: no rubric for the graders"
    assert prompt.cell_type == "markdown", f"{gid}: no prompt before the answer"
    assert prompt.metadata["nbgrader"]["locked"], f"{gid}: the prompt is not locked"
    assert "(5 points)" in prompt.source, f"{gid}: the prompt does not say its worth"


@pytest.fixture(scope="session")
def executed_sources(tmp_path_factory):
    """Each source notebook executed top to bottom in a fresh kernel (cached)."""
    cache = {}

    def run(assignment):
        if assignment not in cache:
            workdir = tmp_path_factory.mktemp(f"exec-{assignment}")
            src = source_notebook(assignment).parent
            shutil.copytree(src, workdir, dirs_exist_ok=True)
            nb = nbformat.read(str(workdir / f"{assignment}.ipynb"), as_version=4)
            client = NotebookClient(
                nb,
                timeout=600,
                kernel_name="python3",
                resources={"metadata": {"path": str(workdir)}},
            )
            client.execute()
            cache[assignment] = nb
        return cache[assignment]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignments())
def test_source_notebook_runs_and_shows_the_expected_output_it_prints(
    assignment, executed_sources
):
    nb = executed_sources(assignment)
    checked = 0
    for index, cell in enumerate(nb.cells):
        if "expected-output" not in cell.metadata.get("tags", []):
            continue
        following = nb.cells[index + 1]
        assert following.cell_type == "markdown", f"cell {index + 1} is not markdown"
        blocks = FENCE.findall(following.source)
        assert blocks, f"cell {index + 1} has no fenced expected-output block"
        printed = cell_output_text(cell)
        shown = blocks[0]
        norm = [line.rstrip() for line in printed.strip().splitlines()]
        assert norm == [line.rstrip() for line in shown.strip().splitlines()], (
            f"{assignment} cell {index}: the markdown shows\n{shown}\n"
            f"but the reference prints\n{printed}"
        )
        checked += 1
    assert checked > 0, f"{assignment} has no expected-output cell"


@pytest.mark.slow
def test_committed_release_is_what_nbgrader_generates():
    release(check=True, log=lambda _line: None)


@pytest.mark.slow
def test_release_check_fails_on_a_hand_edited_release(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "source", root / "source")
    shutil.copytree(REPO_ROOT / "release", root / "release")
    target = next((root / "release").glob("*/*.ipynb"))
    nb = nbformat.read(str(target), as_version=4)
    nb.cells[0].source += "\nEdited by hand."
    nbformat.write(nb, str(target))
    with pytest.raises(ReleaseOutOfDate, match=target.name):
        release(check=True, root=root, log=lambda _line: None)


@pytest.mark.parametrize("assignment", assignments())
def test_release_notebooks_carry_no_solution_or_hidden_test(assignment):
    folder = REPO_ROOT / "release" / assignment
    notebooks = list(folder.glob("*.ipynb"))
    assert notebooks, f"release/{assignment} has no notebook: run autograder release"
    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        for marker in (
            "BEGIN SOLUTION",
            "BEGIN HIDDEN TESTS",
            "autograder.hidden",
            "Rubric for graders",
        ):
            assert marker not in text, f"{path} contains {marker!r}"
