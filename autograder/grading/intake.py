"""Take a submission in: refuse what could mislead the grader, copy the rest.

A submission folder is whatever an unzipped upload or a writable exchange holds.
Before anything reads it, :func:`take_in` walks it with ``lstat`` (never
following a link) and refuses it when it finds:

- a symbolic link anywhere: the student's folder, the assignment folder, the
  notebook or any extra file (a link can point at ``source/``, another
  student's notebook, the gradebook, ``/dev/zero`` or the folder itself);
- a hard link (a regular file with more than one name: it can share its bytes
  with a file outside the submission);
- anything that is not a regular file or a folder (FIFO, socket, device);
- more than :attr:`IntakeLimits.max_files` files, more than
  :attr:`IntakeLimits.max_bytes` in total, or folders nested deeper than
  :attr:`IntakeLimits.max_depth`.

What it accepts is copied into the task's scratch folder, each file opened with
``O_NOFOLLOW`` and checked again with ``fstat`` on the open descriptor, so a
file swapped for a link between the walk and the copy is refused too. Grading
then only ever reads that copy.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import defaults

__all__ = ["IGNORED", "IntakeLimits", "Refusal", "take_in"]

#: Names never read nor copied (editor and interpreter leftovers).
IGNORED = (".ipynb_checkpoints", "__pycache__", "*.pyc")

_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class IntakeLimits:
    """Bounds on what one submission may hold."""

    max_files: int = defaults.INTAKE_MAX_FILES
    max_bytes: int = defaults.INTAKE_MAX_BYTES
    max_depth: int = defaults.INTAKE_MAX_DEPTH


class Refusal(Exception):
    """The submission breaks an intake rule; the message names the path."""


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED)


def _describe(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_folder(path: Path, shown: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Refusal(f"{shown} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise Refusal(
            f"{shown} is a symbolic link (to {os.readlink(path)!r}); submissions "
            "must hold real files: re-collect or re-upload it"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise Refusal(f"{shown} is {_describe(info.st_mode)}, not a folder")


def take_in(
    folder: Path,
    dest: Path,
    *,
    limits: IntakeLimits | None = None,
    label: str | None = None,
) -> list[str]:
    """Check ``folder`` (and its parent, the student's folder) and copy it to
    ``dest``.

    Args:
        folder: ``submitted/<student>/<assignment>``.
        dest: an empty or missing folder in the task's scratch.
        limits: bounds (default :class:`IntakeLimits`).
        label: how to name ``folder`` in messages (default its last two parts).

    Returns:
        The relative paths copied.

    Raises:
        Refusal: naming the offending path and the rule.
        OSError: when the copy itself fails (e.g. the scratch is full): a
            problem of the grading machine, not of the submission.
    """
    limits = limits or IntakeLimits()
    folder = Path(folder)
    label = label or f"{folder.parent.name}/{folder.name}"
    _check_folder(folder.parent, f"the student folder {folder.parent.name}/")
    _check_folder(folder, f"the submission folder {label}/")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    total = [0]

    def walk(src: Path, out: Path, depth: int) -> None:
        if depth > limits.max_depth:
            raise Refusal(
                f"{label}/{src.relative_to(folder)} is nested more than "
                f"{limits.max_depth} folders deep"
            )
        with os.scandir(src) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            if _ignored(entry.name):
                continue
            rel = Path(entry.path).relative_to(folder)
            shown = f"{label}/{rel}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise Refusal(
                    f"{shown} is a symbolic link (to {os.readlink(entry.path)!r}); "
                    "links are refused: submit the file itself"
                )
            if stat.S_ISDIR(info.st_mode):
                (out / entry.name).mkdir()
                walk(Path(entry.path), out / entry.name, depth + 1)
                continue
            if not stat.S_ISREG(info.st_mode):
                raise Refusal(f"{shown} is {_describe(info.st_mode)}; refused")
            if info.st_nlink > 1:
                raise Refusal(
                    f"{shown} is a hard link ({info.st_nlink} names for one file); "
                    "refused: submit a copy of the file"
                )
            if len(copied) + 1 > limits.max_files:
                raise Refusal(
                    f"{label} holds more than {limits.max_files} files; refused"
                )
            total[0] += _copy_file(
                Path(entry.path), out / entry.name, shown, limits, total[0]
            )
            copied.append(str(rel))

    walk(folder, dest, 0)
    return copied


def _copy_file(
    src: Path, dst: Path, shown: str, limits: IntakeLimits, used: int
) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refusal(f"{shown} became a symbolic link; refused") from None
        raise Refusal(f"{shown} cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise Refusal(f"{shown} changed while it was read; refused")
        budget = limits.max_bytes - used
        written = 0
        with open(dst, "xb") as out:
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > budget:
                    raise Refusal(
                        f"the submission is larger than "
                        f"{limits.max_bytes // (1024 * 1024)} MiB (at {shown}); "
                        "refused"
                    )
                out.write(chunk)
        return written
    finally:
        os.close(fd)
