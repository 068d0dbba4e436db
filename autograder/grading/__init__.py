"""The grading path, one step per module.

- :mod:`.intake`    takes a submission in: refuses links and oversized or odd
  files, and copies what it accepts into the task's scratch without following
  any link;
- :mod:`.outcomes`  the data every step exchanges: outcomes, per-cell reports,
  flags, and the ``grading_outcomes.json`` record that ``export`` and
  ``feedback`` read;
- :mod:`.preflight` grades an assignment's reference and blank release before
  any student, and refuses to grade when they do not score full and zero.

The rest of the path (templates, grading one submission, the worker pool, the
merge) still lives in :mod:`autograder.grade`.
"""
