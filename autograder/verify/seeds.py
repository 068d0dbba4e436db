"""Fresh hidden inputs for every grading run, and seeds the reference passes.

Hidden tests keep their literal seeds; :func:`fresh_inputs` mixes a per-run
seed into them. :func:`choose_run_seed` draws a seed on which the reference
itself passes every hidden test (a tolerance tuned on the literal seeds can
reject the reference on a few others).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sys
from collections.abc import Iterable

import numpy as np

from ..source import (
    SourceNotebook,
    course_root,
    load_source_notebook,
    source_notebook_path,
)
from .verdicts import VerifyError

__all__ = ["choose_run_seed", "fresh_inputs", "reference_failures", "run_seed_for"]


# --- fresh inputs ---------------------------------------------------------------


@contextlib.contextmanager
def fresh_inputs(run_seed: int | None, modules: Iterable[str]):
    """Mix ``run_seed`` into integer seeds the hidden test modules pass to
    ``np.random.default_rng`` while the block runs (this process only).

    Hidden tests keep their literal seeds (``np.random.default_rng(1001)``); the
    generator they get is seeded by ``[1001, run_seed]`` instead, so every grading
    run draws other inputs and a submission cannot be tuned to one set. Calls
    from anywhere else (reference code, numpy itself) are untouched.
    """
    modules = frozenset(modules)
    original = np.random.default_rng
    if run_seed is None:
        yield
        return

    def default_rng(seed=None):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if (
            caller in modules
            and isinstance(seed, (int, np.integer))
            and not isinstance(seed, bool)
            and seed >= 0
        ):
            seed = [int(seed), int(run_seed)]
        return original(seed)

    np.random.default_rng = default_rng
    try:
        yield
    finally:
        np.random.default_rng = original


# --- run seeds ---------------------------------------------------------------------


def reference_failures(
    assignment: str,
    run_seed: int | None,
    *,
    source_root: str | os.PathLike | None = None,
) -> list[str]:
    """Run every hidden test on the reference itself with ``run_seed``.

    Returns:
        One line per test cell the reference fails (empty: the seed is usable).
        Hidden tests are tuned on their literal seeds; on a few other seeds a
        tolerance (a gradient check, typically) can reject the reference itself.
    """
    source = load_source_notebook(source_notebook_path(assignment, root=source_root))
    return _reference_failures(source, run_seed)


def _reference_failures(source: SourceNotebook, run_seed: int | None) -> list[str]:
    with course_root(source.root):
        return _reference_failures_here(source, run_seed)


def _reference_failures_here(source: SourceNotebook, run_seed: int | None) -> list[str]:
    failures = []
    for cell in source.cells:
        namespace = dict(cell.grader.reference)
        try:
            with (
                fresh_inputs(run_seed, {cell.module}),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                cell.grader.grade(cell.function, namespace)
        except Exception as exc:  # noqa: BLE001 - report any failure
            failures.append(f"{cell.grade_id}: {type(exc).__name__}: {exc}")
    return failures


_chosen_seeds: dict[tuple[str, float], int] = {}


def choose_run_seed(
    assignment: str,
    *,
    source_root: str | os.PathLike | None = None,
    attempts: int = 20,
) -> int:
    """Draw a random run seed on which the reference passes every hidden test.

    Call it once per grading run and pass the seed to every
    :func:`verify_submission` of that run (it is recorded in each result).

    Raises:
        VerifyError: if the reference fails on every seed tried (broken tests).
    """
    source = load_source_notebook(source_notebook_path(assignment, root=source_root))
    problems: list[str] = []
    for _ in range(attempts):
        seed = secrets.randbits(62)
        problems = _reference_failures(source, seed)
        if not problems:
            return seed
    raise VerifyError(
        f"the reference of {assignment} fails its hidden tests on {attempts} "
        f"random seeds; last failures: {problems[:3]}"
    )


def run_seed_for(assignment: str, *, source_root=None) -> int:
    """One run seed per process, assignment and version of its source notebook."""
    source_path = source_notebook_path(assignment, root=source_root)
    key = (str(source_path), source_path.stat().st_mtime)
    if key not in _chosen_seeds:
        _chosen_seeds[key] = choose_run_seed(assignment, source_root=source_root)
    return _chosen_seeds[key]
