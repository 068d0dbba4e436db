"""Inspection: what nbgrader would choke on, found before it runs.

A missing, renamed, empty or malformed notebook is an outcome of its own
(``missing notebook``, ``unknown/renamed notebook``, ``invalid notebook JSON``),
decided here with a reason, instead of a crash inside nbgrader.

A submission that repeats a grade id (a copy-pasted cell) makes stock nbgrader
abort the whole run. Here the last cell with that id keeps its nbgrader metadata
(the one nbgrader itself would keep) and earlier copies run as ordinary code, so
the student is graded as if the copy had no metadata; the reason says so.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .outcomes import INVALID, MISSING, UNKNOWN

__all__ = ["Inspection", "inspect_submission"]


@dataclass
class Inspection:
    graded: dict[str, object] = field(default_factory=dict)  # name -> notebook
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_notebook(path: Path):
    """Parse a submitted notebook; raise ValueError saying why it is unusable."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"{path.name} is empty ({len(raw)} bytes)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{path.name} is JSON but not a notebook (no list of cells)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises many types for malformed files
        raise ValueError(f"{path.name} is not a valid notebook: {exc}") from None


def _dedupe_grade_ids(nb) -> list[str]:
    """Keep nbgrader metadata on the last cell of each grade id only."""
    from nbgrader import utils

    seen, repeated = set(), []
    for cell in reversed(nb.cells):
        if not (
            utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)
        ):
            continue
        grade_id = cell.metadata["nbgrader"].get("grade_id")
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            repeated.append(grade_id)
        else:
            seen.add(grade_id)
    return sorted(set(repeated))


def inspect_submission(submission_dir: Path, expected: Sequence[str]) -> Inspection:
    """Sort a submission's notebooks into gradable ones and problems."""
    found = sorted(p.name for p in Path(submission_dir).glob("*.ipynb") if p.is_file())
    extra = [name for name in found if name not in expected]
    result = Inspection()
    for name in expected:
        path = Path(submission_dir) / name
        if not path.is_file():
            if extra:
                result.problems.append(
                    (
                        UNKNOWN,
                        f"found {', '.join(extra)}, expected {name}: rename the "
                        "notebook back and re-grade",
                    )
                )
            else:
                result.problems.append((MISSING, f"no {name} in the submission"))
            continue
        try:
            nb = _read_notebook(path)
        except (ValueError, OSError) as exc:
            result.problems.append((INVALID, str(exc)))
            continue
        repeated = _dedupe_grade_ids(nb)
        if repeated:
            result.notes.append(
                f"{name}: grade id(s) {', '.join(repeated)} appear more than once; "
                "the last cell with each id was graded and earlier copies ran as "
                "ordinary code"
            )
        result.graded[name] = nb
    if extra and result.graded:
        result.notes.append(f"ignored notebook(s) not in the assignment: {extra}")
    return result
