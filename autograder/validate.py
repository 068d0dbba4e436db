"""Execute source notebooks with nbgrader's validator: every test must pass."""

from __future__ import annotations

from pathlib import Path

from . import REPO_ROOT
from .course import _ensure_tools_on_path, list_assignments, load_config
from .errors import SourceNotebookError, UsageError

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
    validator = Validator(config=load_config(root))
    failed = []
    for assignment in wanted:
        for path in sorted((Path(root) / "source" / assignment).glob("*.ipynb")):
            result = validator.validate(str(path))
            if result:
                failed.append(f"{path.relative_to(root)}: {_summary(result)}")
                log(f"{assignment}: FAILED")
            else:
                log(f"{assignment}: all tests pass")
    if failed:
        raise SourceNotebookError(
            "source notebooks whose own tests fail:\n  " + "\n  ".join(failed)
        )
    return wanted


def _summary(result: dict) -> str:
    parts = []
    for kind, cells in result.items():
        if isinstance(cells, list):
            parts.append(f"{len(cells)} {kind.replace('_', ' ')}")
        else:
            parts.append(str(kind))
    return ", ".join(parts)
