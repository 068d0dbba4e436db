"""The instructor's grading pipeline around nbgrader.

``python -m autograder --help`` (or the ``autograder`` console script) lists the
commands; each lives in its own module and the CLI in :mod:`autograder.cli` only
parses arguments and maps errors to exit codes.

- :mod:`.grading`    the ``grade`` command, one step per module;
- :mod:`.sandbox`    where student code runs, and with what limits;
- :mod:`.verify`     scores decided outside the student's process;
- :mod:`.hidden`     the hidden tests, one module per topic;
- :mod:`.source`     the one reader of source notebooks (the reference);
- :mod:`.defaults`   every default, stated once;
- :mod:`.selfcheck`, :mod:`.feedback`, :mod:`.export`  ``check``, reports, CSV;
- :mod:`.authoring`  release, validate, expected outputs, demo, bench, pack.

``docs/architecture.md`` draws the pipeline and says where each concern lives.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root: the folder holding ``source/``, ``release/`` and
#: ``nbgrader_config.py``.
REPO_ROOT = Path(__file__).resolve().parent.parent
