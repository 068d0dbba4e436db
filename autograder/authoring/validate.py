"""Execute source notebooks with nbgrader's validator: every test must pass."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .. import REPO_ROOT
from ..course import _ensure_tools_on_path, list_assignments, load_config
from ..errors import SourceNotebookError, UsageError

__all__ = ["validate_sources"]


def validate_sources(assignments=None, *, root: Path = REPO_ROOT, log=print):
    """Run ``nbgrader validate`` (its Python API) on each source notebook.

    Raises:
        SourceNotebookError: naming every notebook whose tests do not all pass.
    """
    from nbgrader.validator import Validator

    _ensure_tools_on_path()
    known = list_assignments(root)
    wanted = list(assignments) if assignments else known
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise UsageError(f"unknown assignment(s) {unknown}; known: {', '.join(known)}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as sockets:
        validator = Validator(config=_local_kernels(load_config(root), sockets))
        for assignment in wanted:
            for path in sorted((Path(root) / "source" / assignment).glob("*.ipynb")):
                result = validator.validate(str(path))
                if result:
                    why = failure_reason(result)
                    failed.append(f"{path.relative_to(root)}: {why}")
                    log(f"{assignment}: FAILED: {why}")
                else:
                    log(f"{assignment}: all tests pass")
    if failed:
        raise SourceNotebookError(
            "source notebooks whose own tests fail:\n  " + "\n  ".join(failed)
        )
    return wanted


def _local_kernels(config, sockets: str):
    """Kernels that talk over Unix sockets in ``sockets`` instead of TCP.

    A kernel on TCP says "Kernel is running over TCP without encryption" on
    stderr when it starts (ipykernel 7), once per notebook validated; over IPC
    nothing leaves the machine, so there is nothing to warn about. The sockets
    live in a private temporary folder, not beside the notebook. Windows has
    no Unix sockets for ZeroMQ: there the kernels keep TCP (and the warning).
    """
    if os.name != "posix":
        return config
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(sockets, "kernel")
    return config


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DATA_PROBLEM = "DatasetError"


def _last_error_line(raw_error: str) -> str:
    """The exception line of a traceback (``Name: message``), without colours."""
    lines = [line.strip() for line in _ANSI.sub("", raw_error).splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no error message"


def failure_reason(result: dict) -> str:
    """Say why a source notebook failed validation, and how to fix it if we know.

    Args:
        result: what ``Validator.validate`` returned (non-empty).

    Returns:
        One line: the dataset loader's own message when the cat dataset is
        missing or broken (every later failure follows from it), else how many
        cells failed and the first failing cell's exception.
    """
    cells = result.get("failed", [])
    errors = [_last_error_line(cell.get("raw_error", "")) for cell in cells]
    for error in errors:
        if _DATA_PROBLEM in error:
            message = error.split(":", 1)[-1].strip()
            return (
                f"the cat dataset is not usable ({message}); "
                f"{len(cells)} graded cell(s) fail until it is"
            )
    if errors:
        return f"{len(cells)} cell(s) failed; the first with {errors[0]}"
    return _summary(result)


def _summary(result: dict) -> str:
    parts = []
    for kind, cells in result.items():
        if isinstance(cells, list):
            parts.append(f"{len(cells)} {kind.replace('_', ' ')}")
        else:
            parts.append(str(kind))
    return ", ".join(parts)
