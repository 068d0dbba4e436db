"""``validate`` says why a source notebook fails, and how to fix a missing dataset."""

from __future__ import annotations

import shutil

import pytest

from autograder import REPO_ROOT
from autograder.authoring.validate import failure_reason, validate_sources
from autograder.errors import SourceNotebookError


def _failed_cell(traceback: str) -> dict:
    return {"source": "check(f)", "error": "", "raw_error": traceback}


def test_reason_names_the_first_failing_cells_exception_without_colours():
    result = {
        "failed": [
            _failed_cell(
                "\x1b[0;31mTraceback\x1b[0m\n  Cell In[3], line 2\n"
                "\x1b[0;31mAssertionError\x1b[0m: dW1 has shape (4, 3)\n"
            ),
            _failed_cell("NameError: name 'model' is not defined"),
        ]
    }
    assert failure_reason(result) == (
        "2 cell(s) failed; the first with AssertionError: dW1 has shape (4, 3)"
    )


def test_reason_for_a_missing_dataset_is_the_loaders_message():
    result = {
        "failed": [
            _failed_cell("NameError: name 'train_x' is not defined"),
            _failed_cell(
                "dlcourse.data.DatasetError: cat dataset file not found: "
                "/x/train_catvnoncat.h5; download it with "
                "`python -m dlcourse fetch-data`"
            ),
        ]
    }
    reason = failure_reason(result)
    assert reason.startswith("the cat dataset is not usable (cat dataset file not")
    assert "`python -m dlcourse fetch-data`" in reason
    assert "2 graded cell(s)" in reason


@pytest.mark.slow
def test_validate_without_the_data_says_the_dataset_is_missing_and_how_to_fetch(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    lines: list[str] = []
    with pytest.raises(SourceNotebookError) as raised:
        validate_sources(["01_logistic_regression"], log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("01_logistic_regression: FAILED: ")
    for text in (lines[0], str(raised.value)):
        assert "the cat dataset is not usable" in text
        assert str(tmp_path / "train_catvnoncat.h5") in text
        assert "fetch-data" in text and "DLCOURSE_DATA" in text


@pytest.mark.slow
def test_validate_starts_kernels_without_the_tcp_warning_or_stray_sockets(
    tmp_path, capfd
):
    """ipykernel warns "Kernel is running over TCP without encryption" on the
    stderr it shares with us, once per notebook; validation's kernels talk over
    Unix sockets in a private folder instead, and leave nothing beside the
    notebook."""
    assignment = "03_softmax"
    shutil.copytree(REPO_ROOT / "source" / assignment, tmp_path / "source" / assignment)
    lines: list[str] = []
    validate_sources([assignment], root=tmp_path, log=lines.append)
    assert lines == [f"{assignment}: all tests pass"]
    said = capfd.readouterr()
    assert "without encryption" not in said.err + said.out
    assert "IPKernelApp" not in said.err
    left = sorted(p.name for p in (tmp_path / "source" / assignment).iterdir())
    assert left == [f"{assignment}.ipynb"]
