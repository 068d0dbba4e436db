"""Incremental merges and resuming an interrupted ``grade`` run.

A long run (a MOOC on a cluster) must not lose what it graded when the client
is interrupted. :class:`Ledger` merges results into ``<course>/gradebook.db``
as they arrive — every ``every`` results or ``seconds`` seconds, each merge an
atomic replace through
:func:`autograder.grading.gradebook.merge_results` — records them in
``grading_outcomes.json`` with the digest of the submission's intake copy and
the key of the run settings, and installs their autograded notebooks.

On the next run :func:`recorded` says which submissions already have a definite
result for the same bytes and the same settings: those are not graded again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .outcomes import OUTCOMES_FILE, GradeResult, load_outcomes, write_outcomes

__all__ = [
    "Ledger",
    "RecordedResult",
    "recorded",
    "settings_key",
    "submission_digest",
]


@dataclass
class RecordedResult(GradeResult):
    """A :class:`GradeResult` that knows where it ran and what it graded.

    ``summary()`` adds ``worker`` (the Dask worker's address, or ``local``),
    ``submission_digest`` and ``settings_key`` to the ``grading_outcomes.json``
    record, which is what :func:`recorded` compares on a re-run.
    """

    worker: str = "local"
    submission_digest: str | None = None
    settings_key: str | None = None

    def summary(self) -> dict:
        record = super().summary()
        record["worker"] = self.worker
        record["submission_digest"] = self.submission_digest
        record["settings_key"] = self.settings_key
        return record


def submission_digest(intake_copy: Path) -> str:
    """sha256 over the relative paths and bytes of an intake copy."""
    root = Path(intake_copy)
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(root)).encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()


def settings_key(course_root: Path, assignment: str, template: Path, settings) -> str:
    """Everything besides the submission that can change its grade.

    The pre-flight's key (:func:`autograder.grading.preflight.preflight_key`):
    the assignment's source and release, the course configuration, the grader's
    and the course package's code, the Python, the settings and whether the
    sandbox is available. The run seed is not part of it: it is drawn anew each
    run, and every seed is one the reference passes on.
    """
    from .preflight import preflight_key

    return preflight_key(course_root, assignment, template, settings)


def recorded(
    course_root: Path, student: str, assignment: str, digest: str, key: str
) -> dict | None:
    """The ``grading_outcomes.json`` record of this exact submission and
    settings, if it has a definite outcome (else None: grade it)."""
    from .outcomes import DEFINITE_OUTCOMES

    record = load_outcomes(course_root).get((student, assignment))
    if (
        record is not None
        and record.get("outcome") in DEFINITE_OUTCOMES
        and record.get("submission_digest") == digest
        and record.get("settings_key") == key
    ):
        return record
    return None


@dataclass
class Ledger:
    """Merge results into the course as they come (single writer).

    Args:
        course_root: the course whose ``gradebook.db`` and
            ``grading_outcomes.json`` are written.
        templates: ``{assignment: template_dir}`` (for the merge).
        workdir: scratch folder for the merge's working copy.
        every: merge after this many new results ...
        seconds: ... or when the oldest unmerged one is this old.
        merge: the merge function (default
            :func:`autograder.grading.gradebook.merge_results`).
        install: installs one result's autograded notebooks (default
            ``autograder.grading.gradebook.install_autograded``).
    """

    course_root: Path
    templates: Mapping[str, Path]
    workdir: Path
    every: int = 25
    seconds: float = 30.0
    merge: Callable | None = None
    install: Callable | None = None
    failures: list[str] = field(default_factory=list)
    merges: int = 0
    merged: int = 0
    _pending: list[GradeResult] = field(default_factory=list)
    _oldest: float | None = None

    def add(self, result: GradeResult) -> None:
        """Queue ``result``; merge if the batch is full or old enough."""
        self._pending.append(result)
        if self._oldest is None:
            self._oldest = time.monotonic()
        if self.due():
            self.flush()

    def due(self) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= self.every
            or time.monotonic() - (self._oldest or 0.0) >= self.seconds
        )

    def flush(self) -> None:
        """Merge every queued result now (one atomic replace of the gradebook,
        one of ``grading_outcomes.json``)."""
        if not self._pending:
            return
        from . import gradebook

        merge = self.merge or gradebook.merge_results
        install = self.install or gradebook.install_autograded
        batch, self._pending, self._oldest = self._pending, [], None
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.failures += merge(
            self.course_root, batch, dict(self.templates), self.workdir
        )
        write_outcomes(self.course_root, batch)
        for result in batch:
            if not result.definite:
                continue
            try:
                install(self.course_root, result)
            except OSError as exc:
                self.failures.append(
                    f"{result.student}/{result.assignment}: grades stored, but the "
                    f"autograded notebook could not be installed ({exc})"
                )
        self.merges += 1
        self.merged += len(batch)


def outcome_records(course_root: Path) -> list[dict]:
    """Every record of ``grading_outcomes.json`` (for tests and tools)."""
    path = Path(course_root) / OUTCOMES_FILE
    return json.loads(path.read_text()) if path.is_file() else []
