"""What verification returns, and the errors it tells apart.

:class:`CellVerdict` is one test cell's verified result (points, and how its
visible and hidden halves did); :class:`Verification` maps grade ids to them
and says how the run went (sandboxed, run seed, notes).
"""

from __future__ import annotations

from typing import NamedTuple

from .. import defaults
from ..errors import AutograderError

__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "MAX_REPLY_BYTES",
    "MAX_RESTARTS",
    "CellVerdict",
    "RunnerFailure",
    "StudentCodeError",
    "Unverifiable",
    "Verification",
    "VerifyError",
]


MAX_NOTEBOOK_BYTES = defaults.MAX_NOTEBOOK_BYTES
MAX_REPLY_BYTES = defaults.MAX_REPLY_BYTES
MAX_RESTARTS = defaults.MAX_RESTARTS


class VerifyError(AutograderError):
    """The source notebook cannot be verified against (a course bug)."""


class Unverifiable(Exception):
    """This hidden test cannot run against a remote namespace."""


class RunnerFailure(Exception):
    """The runner died, hung, or broke the protocol; the message says which."""


class StudentCodeError(Exception):
    """The student's function raised an exception (in the sandbox)."""


class CellVerdict(NamedTuple):
    """Verified result of one test cell: ``points`` is None if not verified.

    ``visible`` and ``hidden`` say how each half of the cell did (``"passed"``,
    ``"failed"``, ``"not checked"`` for a visible check that skipped its
    function, ``"not run"``, ``"not verified"``); the cell's points need both.
    """

    points: float | None
    max_points: float
    message: str
    visible: str = "not run"
    hidden: str = "not run"
    broken_dependency: str | None = None


class Verification(dict):
    """``{grade_id: CellVerdict}`` plus how the verification ran.

    Attributes:
        sandboxed: whether the student's code ran in the sandbox.
        run_seed: the per-run seed mixed into the hidden inputs (None: fixed).
        notes: problems worth showing the instructor (cell errors, restarts).
        seconds: wall-clock time of the verification.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sandboxed: bool | None = None
        self.run_seed: int | None = None
        self.notes: list[str] = []
        self.seconds: float = 0.0
        #: errors of the course's own (locked) cells that mean the grading
        #: environment is broken (see ``ENVIRONMENT_ERRORS``).
        self.locked_errors: list[str] = []

    @property
    def total(self) -> tuple[float, float]:
        """(verified points, their maximum) over the verified cells."""
        got = sum(v.points for v in self.values() if v.points is not None)
        full = sum(v.max_points for v in self.values() if v.points is not None)
        return got, full
