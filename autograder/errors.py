"""Error types of the grading pipeline, mapped to exit codes by the CLI."""


class AutograderError(Exception):
    """Base class: something the instructor must fix; the message says what."""

    exit_code = 1


class UsageError(AutograderError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class ReleaseOutOfDate(AutograderError):
    """The committed ``release/`` differs from what nbgrader generates."""

    exit_code = 3


class SourceNotebookError(AutograderError):
    """A source notebook is missing, malformed or fails its own tests."""

    exit_code = 4


class GradingIncomplete(AutograderError):
    """Some submission got no definite outcome (the pipeline failed on it)."""

    exit_code = 5


class NotebookNotRecognised(AutograderError):
    """``check`` cannot tell which assignment a notebook belongs to."""

    exit_code = 6


class PreflightFailed(AutograderError):
    """The reference or the blank release did not grade as it must: nothing
    was graded (the grader cannot be sure of any student's score)."""

    exit_code = 7


class SubmissionRefused(AutograderError):
    """A submission breaks the intake rules (links, odd files, size)."""

    exit_code = 8


class SandboxUnavailable(AutograderError):
    """The sandbox was required but bubblewrap cannot run on this machine.

    Shares code 5 with :class:`GradingIncomplete`: nothing (or not everything)
    was graded.
    """

    exit_code = 5
