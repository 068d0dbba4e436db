"""Compute the expected outputs of the visible checks from the reference solutions.

``python -m autograder expected`` rewrites ``dlcourse/testcases/expected/*.json``;
``--check`` only compares and fails when a stored value is out of date. The
values are never typed by hand, so they cannot drift from the solutions.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import dlcourse.testcases as testcases_pkg
from dlcourse.testcases import EXPECTED_DIR, CaseSet, encode

from ..errors import ReleaseOutOfDate
from ..source import reference_namespace

__all__ = ["case_sets", "compute_expected", "write_expected"]


def case_sets() -> dict[str, CaseSet]:
    """Return every assignment's :class:`CaseSet`, keyed by assignment id."""
    found = {}
    for info in pkgutil.iter_modules(testcases_pkg.__path__):
        module = importlib.import_module(f"{testcases_pkg.__name__}.{info.name}")
        cases = getattr(module, "CASES", None)
        if isinstance(cases, CaseSet):
            found[cases.assignment] = cases
    return dict(sorted(found.items()))


def compute_expected(cases: CaseSet, *, root: Path | None = None) -> dict:
    """Run every case of an assignment through its reference solution.

    Returns:
        ``{case name: encoded output}``, ready to be written as JSON.
    """
    reference = reference_namespace(cases.assignment, root=root)
    table = {}
    for name, case in cases.cases.items():
        if case.function not in reference:
            raise KeyError(
                f"{cases.assignment}: case {name!r} calls {case.function!r}, which no "
                "solution cell of the source notebook defines"
            )
        args, kwargs = case.make_inputs()
        table[name] = encode(reference[case.function](*args, **kwargs))
    return table


def _render(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def write_expected(
    assignments=None, *, check: bool = False, root: Path | None = None
) -> list[Path]:
    """Regenerate (or with ``check=True`` verify) the expected-output files.

    Args:
        assignments: ids to process (default: all that have test cases).
        check: compare only; raise if a file would change.
        root: repository root holding ``source/``.

    Returns:
        The files written (or, with ``check``, compared).

    Raises:
        ReleaseOutOfDate: with ``check``, naming the files that are out of date.
    """
    sets = case_sets()
    wanted = list(sets) if not assignments else list(assignments)
    stale, paths = [], []
    for assignment in wanted:
        if assignment not in sets:
            raise KeyError(f"no test cases defined for assignment {assignment!r}")
        text = _render(compute_expected(sets[assignment], root=root))
        path = EXPECTED_DIR / f"{assignment}.json"
        paths.append(path)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        raise ReleaseOutOfDate(
            "expected outputs are out of date: "
            + ", ".join(str(p) for p in stale)
            + "; run `python -m autograder expected`"
        )
    return paths
