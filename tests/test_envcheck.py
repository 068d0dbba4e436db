"""The environment check of the start page: one row per item, a fix for each problem."""

from __future__ import annotations

import re
import sys

import pytest

from autograder import REPO_ROOT
from dlcourse import envcheck
from dlcourse.data import CAT_FILES, DatasetError, verify_checksums


def _row(rows, item):
    (row,) = [row for row in rows if row.item == item]
    return row


def test_rows_cover_python_each_package_the_course_package_and_the_data(tmp_path):
    rows = envcheck.check_environment(tmp_path, show=False)
    assert [row.item for row in rows] == [
        "Python",
        *envcheck.REQUIRED_PACKAGES,
        "dlcourse",
        "cat dataset",
    ]
    item, ok, detail = rows[0]  # rows unpack as plain (item, ok, detail) tuples
    assert (item, ok) == ("Python", True) and sys.executable in detail


def test_this_environment_has_every_required_package(tmp_path):
    rows = envcheck.check_environment(tmp_path, show=False)
    assert all(row.ok for row in rows[:-1]), [row for row in rows if not row.ok]
    assert str(REPO_ROOT) in _row(rows, "dlcourse").detail


def test_minimum_versions_agree_with_requirements_txt():
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:>=|==)\s*([0-9][^,<\s]*)", line)
        if found:
            pins[found[1].lower()] = found[2]
    for distribution, (_, minimum) in envcheck.REQUIRED_PACKAGES.items():
        assert pins.get(distribution) == minimum, distribution


def test_a_missing_dataset_names_the_fetch_command_and_the_variable(tmp_path):
    row = _row(envcheck.check_environment(tmp_path, show=False), "cat dataset")
    assert not row.ok
    assert f"{tmp_path / 'train_catvnoncat.h5'} is missing" in row.detail
    assert f"{sys.executable} -m dlcourse fetch-data --dest {tmp_path}`" in row.detail
    assert "DLCOURSE_DATA" in row.detail


def test_the_fetch_command_targets_the_folder_from_the_environment(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    row = _row(envcheck.check_environment(show=False), "cat dataset")
    assert not row.ok and f"--dest {tmp_path}`" in row.detail


def test_a_truncated_dataset_file_is_reported_with_its_size(tmp_path):
    for name in CAT_FILES:
        (tmp_path / name).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    row = _row(envcheck.check_environment(tmp_path, show=False), "cat dataset")
    assert not row.ok
    assert "has 108 bytes, expected 2572022" in row.detail
    assert "fetch-data" in row.detail


def test_a_verified_dataset_passes():
    try:
        verify_checksums()
    except DatasetError as exc:
        pytest.skip(f"cat dataset not available: {str(exc).splitlines()[0]}")
    row = _row(envcheck.check_environment(show=False), "cat dataset")
    assert row.ok and row.detail.startswith("verified in ")


def test_a_missing_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(
        envcheck,
        "REQUIRED_PACKAGES",
        {"numpy": ("numpy", "999.0"), "no-such-course-dependency": ("nsd", "1.0")},
    )
    rows = envcheck.check_environment(tmp_path, show=False)
    numpy_row, missing = _row(rows, "numpy"), _row(rows, "no-such-course-dependency")
    assert not numpy_row.ok and "is older than 999.0" in numpy_row.detail
    assert not missing.ok and missing.detail.startswith("not installed")
    for row in (numpy_row, missing):
        assert "`./course setup`" in row.detail and "restart the kernel" in row.detail


def test_a_package_that_fails_to_import_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    row = envcheck._package_row("tqdm", "tqdm", "4.66")
    assert not row.ok and "`import tqdm` fails (ModuleNotFoundError" in row.detail


def test_an_unimportable_course_package_points_to_setup_and_the_kernel(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlcourse", None)
    row = envcheck._course_package_row()
    assert not row.ok
    assert "`import dlcourse` fails" in row.detail and "./course setup" in row.detail
    assert "kernel" in row.detail


def test_the_table_marks_problems_and_ends_with_a_verdict(tmp_path, capsys):
    rows = envcheck.check_environment(tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows) + 2  # header, one line per row, verdict
    assert lines[1].startswith("ok  Python")
    assert lines[-2].startswith("FIX cat dataset")
    assert lines[-1] == "1 problem(s): fix the FIX lines above, then run again."


def test_a_clean_environment_ends_with_ready(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("dlcourse.data.verify_checksums", lambda data_dir=None: None)
    envcheck.check_environment(tmp_path)
    out = capsys.readouterr().out
    assert "FIX" not in out
    assert out.splitlines()[-1].startswith("Everything is in place")


def test_show_false_prints_nothing(tmp_path, capsys):
    envcheck.check_environment(tmp_path, show=False)
    assert capsys.readouterr().out == ""
