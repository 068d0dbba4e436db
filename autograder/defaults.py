"""Every default of the grading pipeline, stated once.

The command line (its ``--help`` text included), :func:`grade_course
<autograder.grading.run.grade_course>`, :class:`GradeTask
<autograder.grading.submission.GradeTask>`, ``check``, the demo, the sandbox's
:class:`~autograder.sandbox.config.SandboxLimits`, the intake's limits and
verification read their defaults from here, so they cannot disagree. Standard
library only: ``--help`` imports it.

Where the course's configuration sets a cell limit (``Execute.timeout``), that
limit applies to ``grade``, ``check``, a :class:`GradeTask` built by hand and
stock ``nbgrader autograde`` alike; where it sets none, nbgrader's own default
(:data:`NBGRADER_CELL_TIMEOUT`) does. :data:`CELL_TIMEOUT` is only the limit
of a sandbox started on its own, outside any course.
"""

from __future__ import annotations

import os

KiB, MiB, GiB = 1024, 1024**2, 1024**3

# --- grading -------------------------------------------------------------------

#: Run student code under bubblewrap and verify every score outside the
#: student's process (``--no-sandbox`` turns it off: trusted code only).
SANDBOX = True
#: Fail instead of grading unsandboxed where bubblewrap cannot run.
REQUIRE_SANDBOX = False
#: With ``--no-sandbox``: fork kernels from the worker instead of starting them.
FORK_KERNELS = True
#: Seconds one cell of a sandbox started on its own (``verify_submission`` or
#: ``sandbox_config_for`` called directly, no course) may run; the repository's
#: course sets the same in its ``Execute.timeout``.
CELL_TIMEOUT = 60
#: nbgrader's own ``Execute.timeout`` default: what ``grade`` and ``check`` use
#: for a course whose configuration sets none (as nbgrader would).
NBGRADER_CELL_TIMEOUT = 30
#: Wall-clock seconds for grading one notebook (kernel start included).
NOTEBOOK_TIMEOUT = 600.0
#: Seconds allowed to build one assignment's template (``generate_assignment``).
TEMPLATE_TIMEOUT = 600.0


def workers() -> int:
    """Submissions graded at once: one more than the CPUs, because a task's
    worker and kernel take turns and both wait on each other and on files."""
    return (os.cpu_count() or 1) + 1


#: What one submission may hold (:class:`~autograder.grading.intake.IntakeLimits`).
INTAKE_MAX_FILES = 200
INTAKE_MAX_BYTES = 100 * MiB
INTAKE_MAX_DEPTH = 8

# --- the sandbox -----------------------------------------------------------------

#: Resource limits of one sandboxed process tree (sizes in bytes, times in
#: seconds); ``--limit NAME=VALUE`` overrides them one by one. The defaults
#: leave a real assignment ample room (the deep-network application peaks near
#: 1 GiB of address space) while containing runaway code.
SANDBOX_LIMITS = {
    "memory": 4 * GiB,
    "processes": 256,
    "file_size": 128 * MiB,
    "open_files": 256,
    "cpu_seconds": 1800,
    "scratch_size": 256 * MiB,
    "tmp_size": 256 * MiB,
    "runtime_size": 4 * MiB,
    "output_per_cell": 1 * MiB,
    "output_per_notebook": 8 * MiB,
    "message_size": 64 * MiB,
    "cell_timeout": CELL_TIMEOUT,
    "notebook_timeout": int(NOTEBOOK_TIMEOUT),
}
#: Limits that grading sets from its own timeouts (``--cell-timeout``,
#: ``--notebook-timeout``), so ``--limit`` may not name them.
TIMEOUT_LIMITS = ("cell_timeout", "notebook_timeout")
#: First user id leased to sandboxes when grading as root.
SANDBOX_UID_BASE = 200_000

# --- verification ----------------------------------------------------------------

#: Largest submitted notebook that verification reads at all.
MAX_NOTEBOOK_BYTES = 64 * MiB
#: Largest reply (arrays included) accepted from the runner.
MAX_REPLY_BYTES = 256 * MiB
#: How many times a crashed or stuck runner is restarted for later functions.
MAX_RESTARTS = 3
