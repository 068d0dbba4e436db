"""Every notebook of notebooks/ runs top to bottom in a fresh kernel without errors."""

from __future__ import annotations

import os
import shutil

import nbformat
import pytest
from conftest import cell_output_text
from nbclient import NotebookClient

from autograder import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    # conftest.py and CI set MPLBACKEND=Agg; the notebooks draw with the inline
    # backend, as they do for a student.
    env.pop("MPLBACKEND", None)
    return env


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run a notebook in a fresh kernel, in a scratch folder (cached per module)."""
    cache = {}

    def run(path):
        if path not in cache:
            workdir = tmp_path_factory.mktemp(path.stem)
            shutil.copy(path, workdir / path.name)
            nb = nbformat.read(str(workdir / path.name), as_version=4)
            client = NotebookClient(
                nb,
                timeout=300,
                kernel_name="python3",
                resources={"metadata": {"path": str(workdir)}},
            )
            client.execute(env=_kernel_env())
            cache[path] = nb
        return cache[path]

    return run


def test_the_start_page_and_the_three_companions_are_there():
    names = {path.name for path in NOTEBOOKS}
    assert "00_start_here.ipynb" in names
    assert len(names) >= 4, names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_without_errors(path, executed):
    nb = executed(path)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, cell_output_text(cell)
        stderr = [o.text for o in cell.outputs if o.get("name") == "stderr"]
        assert not stderr, f"stderr in cell:\n{cell.source}\n---\n{''.join(stderr)}"
    widgets = [
        cell
        for cell in code
        for output in cell.outputs
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    ]
    if path.name.startswith("1"):
        assert widgets, f"{path.name} shows no widget"
        # The figure is drawn into an Output widget, whose state nbclient keeps.
        state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
        figures = [
            output
            for model in state["state"].values()
            if model["model_name"] == "OutputModel"
            for output in model["state"].get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert figures, f"{path.name}: no figure in the widget's output"


@pytest.mark.slow
def test_the_start_page_shows_the_environment_table_and_both_check_outcomes(
    executed,
):
    nb = executed(REPO_ROOT / "notebooks" / "00_start_here.ipynb")
    text = "\n".join(cell_output_text(c) for c in nb.cells if c.cell_type == "code")
    assert "ok  numpy" in text and "cat dataset" in text
    assert "column_means: All visible checks passed." in text
    assert "column_means_wrong:" in text
