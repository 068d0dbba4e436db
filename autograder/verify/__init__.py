"""Verified scores: hidden tests judged outside the student's process.

nbgrader decides a score inside the student's own kernel, where one line
(``np.allclose = lambda *a, **k: True``) turns every later check green. Here the
score of each graded function is decided by the trusted grading process:

1. the student's code runs in a sandboxed *runner*
   (``sandbox/files/runner.py``, driven by :mod:`.client`): the solution cells
   in full, and the ``import``/``def``/``class`` statements of the student's
   other cells;
2. the hidden test of each graded function (``GRADER.grade(name, namespace)``,
   unchanged) runs *here*, with a namespace whose functions are proxies: a call
   sends the arguments to the runner, the student's function computes the output
   there, and only data comes back (numbers, strings, plain arrays and
   containers of them, never pickles or code);
3. inputs are fresh for every grading run: integer seeds given to
   ``np.random.default_rng`` by the hidden test modules are mixed with a random
   per-run seed (recorded in the result, so a run can be reproduced);
4. earlier exercises that a hidden test patches with correct versions are
   patched in the runner too: the runner receives the reference code of just
   those functions (and what they call), never of the function being graded or
   of one graded later; functions are graded in notebook order so the student's
   code never sees a reference it could still use.

The comparison itself is the hidden test's own (``dlcourse.checks``), running
with the real numpy on values that are plain ``ndarray`` objects rebuilt from
bytes: an array subclass, a patched ``np.allclose`` or a printed "All tests
passed" cannot change it.

:func:`.submission.verify_submission` returns the verified points of every test
cell that calls a hidden grader; :func:`.reconcile.reconcile` sets them against
nbgrader's in-notebook scores, flags where they disagree, and lets the verified
score count.

One module per concern: :mod:`.submission` (the entry), :mod:`.client` (the
runner's channel, session and proxies), :mod:`.visible` (the visible check,
rerun here), :mod:`.seeds` (fresh inputs), :mod:`.reconcile` (notebook vs
verified), :mod:`.verdicts` (the result types). What the source notebook says
(graded cells, points, reference code) comes from :mod:`autograder.source`.
"""
