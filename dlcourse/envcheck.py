"""The environment check of the start page: is this machine ready for the course?

:func:`check_environment` looks at the Python version, the packages the notebooks
need, the course package itself and the cat dataset, and returns one row per item
with what it found or, for a problem, the exact command that fixes it. It prints
the rows as a table unless asked not to, and never raises for a problem it finds:
a broken environment is exactly when a student needs the whole list.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import NamedTuple

from packaging.version import InvalidVersion, Version

__all__ = ["MIN_PYTHON", "REQUIRED_PACKAGES", "CheckRow", "check_environment"]

MIN_PYTHON = (3, 10)

#: Distribution name -> (import name, minimum version), as in requirements.txt.
REQUIRED_PACKAGES: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "2.0"),
    "h5py": ("h5py", "3.10"),
    "matplotlib": ("matplotlib", "3.8"),
    "ipywidgets": ("ipywidgets", "8.1"),
    "scikit-learn": ("sklearn", "1.4"),
    "tqdm": ("tqdm", "4.66"),
    "pillow": ("PIL", "10"),
    "nbgrader": ("nbgrader", "0.9.6"),
}

_SETUP_FIX = "run `./course setup` in the course folder, then restart the kernel"


class CheckRow(NamedTuple):
    """One line of the environment check.

    Attributes:
        item: what was checked, e.g. ``"numpy"``.
        ok: whether it is usable as it is.
        detail: what was found; for a problem, also how to fix it.
    """

    item: str
    ok: bool
    detail: str


def _python_row() -> CheckRow:
    found = ".".join(map(str, sys.version_info[:3]))
    where = f"Python {found} ({sys.executable})"
    if sys.version_info[:2] >= MIN_PYTHON:
        return CheckRow("Python", True, where)
    need = ".".join(map(str, MIN_PYTHON))
    return CheckRow(
        "Python",
        False,
        f"{where} is too old, need >= {need}: install a newer Python, delete "
        "`.venv/` and run `./course setup` again",
    )


def _package_row(distribution: str, module: str, minimum: str) -> CheckRow:
    fix = f"{_SETUP_FIX} (or `.venv/bin/pip install '{distribution}>={minimum}'`)"
    try:
        found = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return CheckRow(distribution, False, f"not installed: {fix}")
    try:
        too_old = Version(found) < Version(minimum)
    except InvalidVersion:
        too_old = False  # an odd local build; the import below still tests it
    if too_old:
        return CheckRow(distribution, False, f"{found} is older than {minimum}: {fix}")
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return CheckRow(
            distribution,
            False,
            f"{found} is installed but `import {module}` fails "
            f"({type(exc).__name__}: {exc}): {fix}",
        )
    return CheckRow(distribution, True, found)


def _course_package_row() -> CheckRow:
    try:
        dlcourse = importlib.import_module("dlcourse")
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return CheckRow(
            "dlcourse",
            False,
            f"`import dlcourse` fails ({type(exc).__name__}: {exc}): {_SETUP_FIX}; "
            "if it still fails, pick the kernel of the course's `.venv`",
        )
    location = Path(dlcourse.__file__).resolve().parent.parent
    return CheckRow(
        "dlcourse", True, f"{dlcourse.__version__}, from the course at {location}"
    )


def _dataset_row(data_dir) -> CheckRow:
    from dlcourse.data import (
        DATA_ENV_VAR,
        DatasetError,
        resolve_data_dir,
        verify_checksums,
    )

    directory = resolve_data_dir(data_dir)
    from_env = data_dir is None and bool(os.environ.get(DATA_ENV_VAR, "").strip())
    try:
        verify_checksums(data_dir)
    except DatasetError as exc:
        lines = str(exc).splitlines()
        # The first listed file problem says more than the headline.
        problem = lines[1].strip().removeprefix("- ") if len(lines) > 1 else lines[0]
        # This interpreter has dlcourse; --dest names the folder checked here,
        # wherever the fetch command is typed.
        command = f"{sys.executable} -m dlcourse fetch-data"
        if data_dir is not None or from_env:
            command += f" --dest {directory}"
        return CheckRow(
            "cat dataset",
            False,
            f"{problem}: run `{command}` in a terminal, or copy train_catvnoncat.h5 "
            f"and test_catvnoncat.h5 into a folder and set {DATA_ENV_VAR} to it "
            "(then restart the kernel)",
        )
    source = f" (from ${DATA_ENV_VAR})" if from_env else ""
    return CheckRow("cat dataset", True, f"verified in {directory}{source}")


def _format_table(rows: list[CheckRow]) -> str:
    width = max(len(row.item) for row in rows)
    lines = [f"{'':4}{'item':<{width}}  detail"]
    for row in rows:
        mark = "ok" if row.ok else "FIX"
        lines.append(f"{mark:<4}{row.item:<{width}}  {row.detail}")
    problems = sum(not row.ok for row in rows)
    if problems:
        lines.append(f"{problems} problem(s): fix the FIX lines above, then run again.")
    else:
        lines.append("Everything is in place: you are ready for assignment 01.")
    return "\n".join(lines)


def check_environment(data_dir=None, *, show: bool = True) -> list[CheckRow]:
    """Check Python, the required packages, ``dlcourse`` and the cat dataset.

    Args:
        data_dir: folder to check for the dataset; default the folder the loader
            uses (see :func:`dlcourse.data.resolve_data_dir`).
        show: print the rows as a table (``ok``/``FIX`` in the first column).

    Returns:
        One :class:`CheckRow` ``(item, ok, detail)`` per item, in the order
        Python, the packages of :data:`REQUIRED_PACKAGES`, ``dlcourse``, the
        cat dataset.
    """
    rows = [_python_row()]
    rows += [
        _package_row(distribution, module, minimum)
        for distribution, (module, minimum) in REQUIRED_PACKAGES.items()
    ]
    rows.append(_course_package_row())
    rows.append(_dataset_row(data_dir))
    if show:
        print(_format_table(rows))
    return rows
