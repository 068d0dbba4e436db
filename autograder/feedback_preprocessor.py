"""Keep hidden tests out of nbgrader's own ``generate_feedback``.

nbgrader's ``ClearHiddenTests`` removes the hidden-test regions from the test
cells' source, but a failed hidden test's traceback still quotes them: IPython
prints the lines around the failing one (``----> 5 assert square(-4) == 16``),
and frames inside the grader's modules quote those. :class:`HideHiddenTests`
runs the same cleaning as ``python -m autograder feedback``
(:func:`autograder.feedback.strip_hidden_tests`): hidden regions cut, and the
traceback frames of test cells and of grader code dropped, keeping the student's
own frames and the final ``ename: evalue`` line.

``nbgrader_config.py`` puts it in ``GenerateFeedback.preprocessors``, so the
stock command (and the formgrader's "Generate Feedback" button) use it.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

__all__ = ["HideHiddenTests"]


class HideHiddenTests(NbGraderPreprocessor):
    """Cut hidden tests from the source and tracebacks of an autograded notebook.

    An nbgrader preprocessor, so it is enabled by default (nbconvert's own
    ``Preprocessor`` is not, and would silently be skipped).
    """

    private_paths = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="folders whose files' lines must never be quoted in a traceback "
        "(default: autograder/ and source/ of this repository)",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        from .feedback import PRIVATE_PATHS, strip_hidden_tests

        private = tuple(self.private_paths or PRIVATE_PATHS)
        return strip_hidden_tests(nb, private), resources
