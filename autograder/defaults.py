"""Every default of the grading pipeline, stated once.

The command line, :class:`~autograder.grading.submission.GradeTask`,
:func:`~autograder.grading.run.grade_course`, the sandbox's limits and the docs
read their defaults from here; ``--help`` prints them from here too.
"""

from __future__ import annotations

#: Wall-clock seconds for grading one notebook (kernel start included).
NOTEBOOK_TIMEOUT = 600.0
#: Seconds allowed to build one assignment's template (``generate_assignment``).
TEMPLATE_TIMEOUT = 600.0

KiB, MiB, GiB = 1024, 1024**2, 1024**3
