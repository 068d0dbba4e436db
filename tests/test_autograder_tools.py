"""The small tools behind the pipeline: reference loading, cleaning, the CLI."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from autograder import REPO_ROOT
from autograder.cli import main
from autograder.errors import SourceNotebookError
from autograder.notebooks import clean_files, hygiene_problems
from autograder.source import reference_namespace


def _write_source(root, assignment, cells):
    folder = root / "source" / assignment
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, str(folder / f"{assignment}.ipynb"))
    return folder / f"{assignment}.ipynb"


def test_reference_namespace_keeps_definitions_and_skips_everything_else(tmp_path):
    setup = nbformat.v4.new_code_cell("import math\nprint('setup ran')")
    setup.metadata["tags"] = ["setup"]
    solution = nbformat.v4.new_code_cell(
        "def area(r):\n    return math.pi * r ** 2\n\nraise RuntimeError('not run')"
    )
    solution.metadata["nbgrader"] = {"solution": True, "grade": False}
    ordinary = nbformat.v4.new_code_cell("def unrelated():\n    pass")
    _write_source(tmp_path, "a1", [setup, solution, ordinary])
    namespace = reference_namespace("a1", root=tmp_path)
    assert namespace["area"](1.0) == pytest.approx(3.141592653589793)
    assert "unrelated" not in namespace


def test_reference_namespace_for_an_unknown_assignment_says_where_it_looked(
    tmp_path,
):
    with pytest.raises(SourceNotebookError, match="nope.ipynb"):
        reference_namespace("nope", root=tmp_path)


def test_clean_strips_outputs_and_metadata_but_keeps_nbgrader(tmp_path):
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    cell.metadata.update({"nbgrader": {"grade_id": "x"}, "collapsed": True})
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert len(hygiene_problems(path)) == 4
    assert clean_files([path]) == [path]
    assert hygiene_problems(path) == []
    cleaned = nbformat.read(str(path), as_version=4)
    assert cleaned.cells[0].metadata == {"nbgrader": {"grade_id": "x"}}
    assert clean_files([path]) == []  # idempotent


def test_cli_clean_check_exit_codes(tmp_path, capsys):
    cell = nbformat.v4.new_code_cell("1", execution_count=1)
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(path))
    assert main(["clean", "--check", str(path)]) == 1
    assert "execution count" in capsys.readouterr().err
    assert main(["clean", str(path)]) == 0
    assert main(["clean", "--check", str(path)]) == 0


def test_cli_unknown_assignment_is_a_usage_error(capsys):
    assert main(["release", "--check", "99_nope"]) == 2
    assert "unknown assignment" in capsys.readouterr().err


def test_python_dash_m_autograder_shows_help():
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0
    for command in ("release", "validate", "expected", "clean"):
        assert command in done.stdout
