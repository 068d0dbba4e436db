"""Let ``nbgrader release_feedback`` release the reports ``feedback`` writes.

nbgrader's exchange matches feedback to a submission by a key only the student
and the course hold: ``nbgrader submit`` writes ``timestamp.txt`` and a random
``submission_secret.txt`` into the submission (and the student's cache), and
``nbgrader collect`` brings both into ``submitted/<student>/<assignment>/``.
``release_feedback`` reads the two files from
``feedback/<student>/<assignment>/`` and publishes each ``<notebook>.html`` as
``md5(secret + notebook)``.html; ``fetch_feedback`` recomputes that name from
the student's cache. Without the two files ``release_feedback`` stops at the
first report that lacks them.

:func:`copy_submission_keys` puts them beside the reports: from the graded copy
(``autograded/``, as nbgrader's own ``generate_feedback`` does, so a later
resubmission that has not been graded yet never receives this feedback), else
from ``submitted/``. Both files come from the student's folder, so they are
checked before they are copied: regular files (no links), small, a timestamp
nbgrader can parse and a hexadecimal secret.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["KEY_FILES", "copy_submission_keys", "read_submission_keys"]

TIMESTAMP, SECRET = "timestamp.txt", "submission_secret.txt"
KEY_FILES = (TIMESTAMP, SECRET)
_MAX_BYTES = 1024
_HEX = re.compile(r"[0-9a-f]{16,512}")


class KeyProblem(ValueError):
    """A submission's exchange files are missing or not what nbgrader writes."""


def _read_small(path: Path) -> str:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise KeyProblem(f"{path.name} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProblem(f"{path.name} is not a regular file")
    if info.st_size > _MAX_BYTES:
        raise KeyProblem(f"{path.name} holds {info.st_size} bytes, expected a line")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(_MAX_BYTES + 1)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyProblem(f"{path.name} is not ASCII text") from None


def read_submission_keys(folder: Path) -> dict[str, str]:
    """Read and check ``timestamp.txt`` and ``submission_secret.txt`` of a folder.

    Returns:
        ``{file name: text}``, the text exactly as nbgrader wrote it (the
        secret is hashed as is, so it is never stripped).

    Raises:
        KeyProblem: a file is missing, a link, too large, or malformed.
    """
    from nbgrader.utils import parse_utc

    folder = Path(folder)
    keys = {name: _read_small(folder / name) for name in KEY_FILES}
    try:
        parse_utc(keys[TIMESTAMP].strip())
    except (ValueError, OverflowError):
        raise KeyProblem(f"{TIMESTAMP} holds no timestamp") from None
    if not _HEX.fullmatch(keys[SECRET]):
        raise KeyProblem(f"{SECRET} is not the hexadecimal secret nbgrader writes")
    return keys


def copy_submission_keys(
    course_root: Path,
    student: str,
    assignment: str,
    *,
    log: Callable[[str], None] = print,
) -> bool:
    """Put the graded submission's exchange files beside its feedback.

    Returns:
        True when ``feedback/<student>/<assignment>/`` can be released with
        ``nbgrader release_feedback``. When no valid pair is found, stale copies
        are removed and a line says why (a submission that never went through
        the exchange, e.g. one written straight into ``submitted/``, has none).
    """
    course_root = Path(course_root)
    dest = course_root / "feedback" / student / assignment
    problems = []
    for step in ("autograded", "submitted"):
        try:
            keys = read_submission_keys(course_root / step / student / assignment)
        except KeyProblem as problem:
            problems.append(f"{step}: {problem}")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for name, text in keys.items():
            staged = dest / f".{name}.new"
            staged.write_text(text, encoding="ascii")
            os.replace(staged, dest / name)
        return True
    for name in KEY_FILES:
        (dest / name).unlink(missing_ok=True)
    log(
        f"feedback of {student}/{assignment} cannot go through the exchange "
        f"(nbgrader release_feedback needs {' and '.join(KEY_FILES)}): "
        + "; ".join(problems)
    )
    return False
