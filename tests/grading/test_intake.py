"""The intake refuses links and odd files before anything reads a submission.

Each scenario is what an unzipped upload or a writable exchange can hold; the
intake must refuse it with a reason naming the path, without reading through
the link (a link to ``/dev/zero`` or to its own folder must not hang or fill
the scratch), and copy an honest submission exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from autograder.grading.intake import IntakeLimits, Refusal, take_in

ASSIGNMENT = "hw"


@pytest.fixture
def course(tmp_path):
    """A course with source/, a gradebook and two students' real submissions."""
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "source" / ASSIGNMENT / "hw.ipynb").write_text("SOLUTIONS")
    (tmp_path / "gradebook.db").write_text("EVERYONE'S GRADES")
    for student in ("alice", "mallory"):
        folder = tmp_path / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "hw.ipynb").write_text(f"{student}'s notebook")
    return tmp_path


def _submission(course: Path, student: str = "mallory") -> Path:
    return course / "submitted" / student / ASSIGNMENT


def _refused(course: Path, tmp_path: Path, student: str = "mallory", **kw) -> str:
    dest = tmp_path / "scratch" / student
    with pytest.raises(Refusal) as info:
        take_in(_submission(course, student), dest, **kw)
    return str(info.value)


def test_an_honest_submission_is_copied_exactly(course, tmp_path):
    folder = _submission(course, "alice")
    (folder / "data").mkdir()
    (folder / "data" / "points.csv").write_text("1,2\n")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "hw-checkpoint.ipynb").write_text("old")
    dest = tmp_path / "copy"
    copied = take_in(folder, dest)
    assert sorted(copied) == ["data/points.csv", "hw.ipynb"]
    assert (dest / "hw.ipynb").read_text() == "alice's notebook"
    assert (dest / "data" / "points.csv").read_text() == "1,2\n"
    assert not (dest / ".ipynb_checkpoints").exists()


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("hw.ipynb", "../../../source/hw/hw.ipynb"),
        ("solutions.ipynb", "../../../source/hw/hw.ipynb"),
        ("classmate.ipynb", "../../alice/hw/hw.ipynb"),
        ("grades.txt", "../../../gradebook.db"),
        ("zeros.bin", "/dev/zero"),
        ("loop", "."),
        ("dangling", "does-not-exist"),
    ],
    ids=[
        "notebook-to-source",
        "extra-to-source",
        "extra-to-classmate",
        "extra-to-gradebook",
        "extra-to-dev-zero",
        "extra-to-own-folder",
        "dangling",
    ],
)
def test_a_link_anywhere_in_the_submission_is_refused(course, tmp_path, name, target):
    path = _submission(course) / name
    path.unlink(missing_ok=True)
    os.symlink(target, path)
    started = time.monotonic()
    reason = _refused(course, tmp_path)
    assert f"mallory/hw/{name} is a symbolic link" in reason
    assert time.monotonic() - started < 5
    # Nothing was read through the link.
    scratch = tmp_path / "scratch" / "mallory"
    copied = b"".join(p.read_bytes() for p in scratch.rglob("*") if p.is_file())
    assert b"SOLUTIONS" not in copied and b"GRADES" not in copied


def test_two_links_to_the_folder_itself_do_not_keep_a_worker_busy(course, tmp_path):
    os.symlink(".", _submission(course) / "a")
    os.symlink(".", _submission(course) / "b")
    started = time.monotonic()
    assert "is a symbolic link" in _refused(course, tmp_path)
    assert time.monotonic() - started < 5


def test_a_linked_submission_folder_is_refused(course, tmp_path):
    folder = _submission(course)
    for path in sorted(folder.iterdir()):
        path.unlink()
    folder.rmdir()
    os.symlink("../../source/hw", folder)
    reason = _refused(course, tmp_path)
    assert "the submission folder mallory/hw/ is a symbolic link" in reason


def test_a_linked_student_folder_is_refused(course, tmp_path):
    student = course / "submitted" / "eve"
    os.symlink("../source", student)  # eve/hw -> source/hw
    reason = _refused(course, tmp_path, student="eve")
    assert "the student folder eve/ is a symbolic link" in reason


def test_a_linked_subfolder_is_refused(course, tmp_path):
    os.symlink("../../../source", _submission(course) / "stuff")
    assert "mallory/hw/stuff is a symbolic link" in _refused(course, tmp_path)


def test_a_hard_link_is_refused(course, tmp_path):
    os.link(course / "gradebook.db", _submission(course) / "copy.txt")
    assert "mallory/hw/copy.txt is a hard link" in _refused(course, tmp_path)


def test_a_fifo_is_refused_without_blocking(course, tmp_path):
    os.mkfifo(_submission(course) / "pipe")
    started = time.monotonic()
    assert "mallory/hw/pipe is a FIFO" in _refused(course, tmp_path)
    assert time.monotonic() - started < 5


def test_too_many_files_are_refused(course, tmp_path):
    for i in range(5):
        (_submission(course) / f"f{i}.txt").write_text("x")
    reason = _refused(course, tmp_path, limits=IntakeLimits(max_files=4))
    assert "holds more than 4 files" in reason


def test_a_submission_over_the_size_limit_is_refused(course, tmp_path):
    (_submission(course) / "big.bin").write_bytes(b"\0" * (2 * 1024 * 1024 + 1))
    reason = _refused(course, tmp_path, limits=IntakeLimits(max_bytes=2 * 1024 * 1024))
    assert "larger than 2 MiB" in reason and "big.bin" in reason


def test_folders_nested_too_deep_are_refused(course, tmp_path):
    deep = _submission(course)
    for i in range(4):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("x")
    reason = _refused(course, tmp_path, limits=IntakeLimits(max_depth=2))
    assert "nested more than 2 folders deep" in reason
