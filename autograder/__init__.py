"""The instructor's grading pipeline around nbgrader.

``python -m autograder --help`` (or the ``autograder`` console script) lists the
commands; each lives in its own module and the CLI in :mod:`autograder.cli` only
parses arguments and maps errors to exit codes.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root: the folder holding ``source/``, ``release/`` and
#: ``nbgrader_config.py``.
REPO_ROOT = Path(__file__).resolve().parent.parent
