"""What grading produces, as data: outcomes, per-cell reports and flags.

Every module after the grade step (the merge, ``export``, ``feedback``,
``check``) reads these types or their JSON form in ``grading_outcomes.json``;
no module parses another's prose.

Outcomes (:data:`OUTCOMES`): ``graded``; ``timed out`` (a cell hit the per-cell
limit, or the notebook its wall-clock limit); ``kernel died``; ``invalid notebook
JSON``, ``missing notebook``, ``unknown/renamed notebook`` (found before nbgrader
runs); ``refused`` (the submission breaks the intake rules: a link, an odd file,
too many or too large files; see :mod:`autograder.grading.intake`). All of these
are definite and stored. ``error`` means the pipeline (or the course's own
environment) failed on that submission: nothing is stored for it, the previous
grades are kept and the command exits non-zero.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "CellReport",
    "DEFINITE_OUTCOMES",
    "ENVIRONMENT_ERRORS",
    "ERROR",
    "Flags",
    "GRADED",
    "GradeResult",
    "INVALID",
    "KERNEL_DIED",
    "MISSING",
    "OUTCOMES",
    "OUTCOMES_FILE",
    "REFUSED",
    "TIMED_OUT",
    "UNKNOWN",
    "load_outcomes",
    "write_outcomes",
    "zero_scores",
]

GRADED = "graded"
TIMED_OUT = "timed out"
KERNEL_DIED = "kernel died"
INVALID = "invalid notebook JSON"
MISSING = "missing notebook"
UNKNOWN = "unknown/renamed notebook"
REFUSED = "refused"
ERROR = "error"
OUTCOMES = (GRADED, TIMED_OUT, KERNEL_DIED, INVALID, MISSING, UNKNOWN, REFUSED, ERROR)
DEFINITE_OUTCOMES = frozenset(OUTCOMES) - {ERROR}

#: Exceptions that, raised by a locked cell (the course's own code, e.g. the
#: setup cell's imports), mean the grading environment is broken, not the work:
#: the submission is an ``error``, never a zero.
ENVIRONMENT_ERRORS = frozenset(
    {"ModuleNotFoundError", "ImportError", "FileNotFoundError", "DatasetError"}
)

#: Where ``grade`` records each submission's outcome, beside ``gradebook.db``.
OUTCOMES_FILE = "grading_outcomes.json"


@dataclass
class Flags:
    """What an instructor should look at, beyond the score.

    Attributes:
        disagreement: grade ids where the notebook's own run and the grader's
            run of the same visible check disagree (a sign of tampering).
        unsandboxed: the student's code ran without bubblewrap.
        refused: the submission broke the intake rules (scored 0).
        not_checked: grade ids whose visible check skipped the function because
            it calls an earlier exercise that fails (the hidden tests decided).
    """

    disagreement: list[str] = field(default_factory=list)
    unsandboxed: bool = False
    refused: bool = False
    not_checked: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.disagreement or self.unsandboxed or self.refused)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Flags:
        data = data or {}
        return cls(
            list(data.get("disagreement", [])),
            bool(data.get("unsandboxed", False)),
            bool(data.get("refused", False)),
            list(data.get("not_checked", [])),
        )


@dataclass
class CellReport:
    """How one graded cell did.

    ``visible`` and ``hidden``: ``"passed"``, ``"failed"``, ``"not checked"``
    (visible only: skipped for a broken dependency), ``"not run"`` or
    ``"not verified"``. The cell's points need both halves to pass.
    """

    score: float | None
    max_score: float
    visible: str = "not run"
    hidden: str = "not run"
    message: str = ""
    not_checked_because: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def zero_scores(max_scores: dict[str, float]) -> dict[str, tuple[float, float]]:
    """``(0.0, points)`` for every graded cell: nothing earned."""
    return {gid: (0.0, points) for gid, points in max_scores.items()}


@dataclass
class GradeResult:
    """What grading one submission produced.

    ``scores`` maps each graded cell's grade id to ``(score, max_score)``;
    ``cells`` says how each did; ``autograded_dir`` is nbgrader's output folder
    inside the task's scratch directory (``None`` when nbgrader produced none).
    """

    assignment: str
    student: str
    outcome: str
    reason: str
    scores: dict[str, tuple[float | None, float]]
    autograded_dir: Path | None = None
    duration: float = 0.0
    notes: list[str] = field(default_factory=list)
    comments: dict[str, str | None] = field(default_factory=dict)
    timestamp: str | None = None
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    late_penalties: dict[str, float] = field(default_factory=dict)
    flags: Flags = field(default_factory=Flags)
    cells: dict[str, CellReport] = field(default_factory=dict)
    run_seed: int | None = None

    @classmethod
    def nothing(
        cls,
        assignment: str,
        student: str,
        outcome: str,
        reason: str,
        max_scores: dict[str, float],
        **kw,
    ):
        """A result that scores 0 on every cell (``max_scores``: id -> points).

        How a submission that could not be graded is recorded; a ``refused``
        one also carries ``flags.refused``.
        """
        kw.setdefault("flags", Flags(refused=outcome == REFUSED))
        return cls(assignment, student, outcome, reason, zero_scores(max_scores), **kw)

    @property
    def definite(self) -> bool:
        return self.outcome in DEFINITE_OUTCOMES

    @property
    def score(self) -> float:
        return sum(s or 0.0 for s, _ in self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.scores.values())

    def summary(self) -> dict:
        """A JSON-ready record (what ``grading_outcomes.json`` holds)."""
        return {
            "student": self.student,
            "assignment": self.assignment,
            "outcome": self.outcome,
            "reason": self.reason,
            "score": self.score,
            "max_score": self.max_score,
            "scores": {k: list(v) for k, v in self.scores.items()},
            "cells": {k: v.to_dict() for k, v in self.cells.items()},
            "flags": self.flags.to_dict(),
            "notes": self.notes,
            "timestamp": self.timestamp,
            "late_penalty": sum(self.late_penalties.values()) or None,
            "run_seed": self.run_seed,
            "duration": round(self.duration, 3),
            "peak_rss_mb": self.peak_rss_mb,
            "timing": self.timing,
        }


def load_outcomes(course_root: Path) -> dict[tuple[str, str], dict]:
    """Read ``grading_outcomes.json``: ``{(student, assignment): record}``."""
    path = Path(course_root) / OUTCOMES_FILE
    if not path.is_file():
        return {}
    records = json.loads(path.read_text(encoding="utf-8"))
    return {(r["student"], r["assignment"]): r for r in records}


def write_outcomes(course_root: Path, results) -> None:
    """Record the results of a run, keeping earlier records of others.

    A result without a definite outcome keeps the previous scores (the merge
    kept the previous grades) and says so in its reason.
    """
    records = load_outcomes(course_root)
    for result in results:
        record = result.summary()
        if not result.definite:
            previous = records.get((result.student, result.assignment))
            record["reason"] += "; the previous grades were kept"
            for key in ("scores", "cells"):
                record[key] = previous.get(key, {}) if previous else {}
            record["score"] = previous["score"] if previous else 0.0
        records[(result.student, result.assignment)] = record
    ordered = [records[key] for key in sorted(records, key=lambda k: (k[1], k[0]))]
    path = Path(course_root) / OUTCOMES_FILE
    staged = path.with_name(f".{OUTCOMES_FILE}.{os.getpid()}.new")
    staged.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")
    os.replace(staged, path)
