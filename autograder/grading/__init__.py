"""The grading path, one step per module, in the order a submission meets them.

- :mod:`.run`         the ``grade`` command: every step below, for a class;
- :mod:`.discover`    lists the submissions (``submitted/`` is only read);
- :mod:`.template`    ``generate_assignment`` once per assignment;
- :mod:`.preflight`   grades an assignment's reference and blank release before
  any student, and refuses to grade when they do not score full and zero;
- :mod:`.pool`        runs tasks in forked workers with wall-clock limits;
- :mod:`.submission`  grades one submission, a pure function of (task, scratch):
- :mod:`.intake`      takes a submission in: refuses links and oversized or odd
  files, and copies what it accepts into the task's scratch without following
  any link;
- :mod:`.inspection`  finds what nbgrader would choke on (missing, renamed or
  malformed notebooks, repeated grade ids) before it runs;
- :mod:`.fastkernels` kernels forked from the worker, for ``--no-sandbox``;
- :mod:`.progress`    which cell is running, and where the time went;
- :mod:`.outcomes`    the data every step exchanges: outcomes, per-cell reports,
  flags, and the ``grading_outcomes.json`` record that ``export`` and
  ``feedback`` read;
- :mod:`.gradebook`   merges the results into the course gradebook (single
  writer, atomic replace).

The sandbox (:mod:`autograder.sandbox`) and the verified scoring
(:mod:`autograder.verify`) are packages of their own: the grading path calls
them, they know nothing of it.
"""
