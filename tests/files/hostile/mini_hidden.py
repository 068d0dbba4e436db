"""Hidden tests of the hostile-submission fixture assignment ``mini``.

The same machinery as ``autograder/hidden/<topic>.py``, with the reference read
from ``tests/files/hostile/course/source/mini/mini.ipynb``. Test cells import it
as ``import mini_hidden as hidden``; inside the sandbox that import finds a
stand-in (``SandboxConfig.stub_modules``), outside it finds this file (the tests
put this folder on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autograder.hidden import Grader
from autograder.source import reference_namespace

COURSE = Path(__file__).resolve().parent / "course"


class FixtureGrader(Grader):
    """A grader whose reference comes from the fixture course."""

    @property
    def reference(self) -> dict:
        return reference_namespace(self.assignment, root=COURSE)


GRADER = FixtureGrader("mini")


@GRADER.test("square")
def _square(namespace, reference):
    rng = np.random.default_rng(11)
    inputs = [
        ((rng.standard_normal(shape),), {}) for shape in [(5,), (3, 4), (2, 3, 2)]
    ]
    GRADER.compare(
        namespace, reference, "square", inputs, arg_names=("x",), output_name="x**2"
    )


@GRADER.test("mean")
def _mean(namespace, reference):
    rng = np.random.default_rng(12)
    inputs = [((rng.standard_normal(n),), {}) for n in (1, 7, 40)]
    GRADER.compare(
        namespace, reference, "mean", inputs, arg_names=("values",), output_name="mean"
    )


@GRADER.test("sum_of_squares")
def _sum_of_squares(namespace, reference):
    rng = np.random.default_rng(13)
    inputs = [((rng.standard_normal(shape),), {}) for shape in [(3, 4), (1, 6), (5, 1)]]
    GRADER.compare(
        namespace,
        reference,
        "sum_of_squares",
        inputs,
        arg_names=("X",),
        output_name="sums",
    )
