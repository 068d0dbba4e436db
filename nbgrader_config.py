"""nbgrader configuration for the course (used by the nbgrader CLI and `autograder`)."""

import os

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets when this file is loaded

# One course id so gradebook rows and exports are labelled consistently.
c.CourseDirectory.course_id = "nn-from-scratch"
# Absolute root so commands behave the same from any working directory.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# The real folders of this repository (nbgrader's defaults, spelt out for readers).
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Never copy local data, caches or checkpoints into a release or a submission.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "datasets",
    "*.h5",
]

# The stub tells the student exactly what to do instead of a bare "YOUR CODE HERE".
c.ClearSolutions.code_stub = {
    "python": (
        "# YOUR CODE HERE: replace this line with your implementation.\n"
        'raise NotImplementedError("Exercise not done yet: write your code here.")'
    )
}

# 60 s per cell: every graded cell runs in well under 5 s on small inputs, and an
# infinite loop should cost a student one minute, not the whole grading run.
c.Execute.timeout = 60
# Interrupt (not kill) a runaway cell so the remaining cells are still graded.
c.Execute.interrupt_on_timeout = True

# NumPy/matplotlib warnings on stderr would zero a test cell (nbgrader scores any
# stderr output as a failure); drop the harmless ones before scoring.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(RuntimeWarning|UserWarning|DeprecationWarning|FutureWarning|"
    r"Matplotlib is building the font cache|tqdm)"
)

# A student who deletes a test cell still gets it back (and graded) at autograde.
c.OverwriteCells.add_missing_cells = True

# Feedback must not reveal hidden tests: ClearHiddenTests cuts them from the
# source, but a failed hidden test's traceback still quotes its lines, so
# HideHiddenTests also drops the traceback frames of test cells and grader code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograder.feedback_preprocessor.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Late work: every entry point records the submission time and seconds late
# against the due date in the gradebook (`nbgrader db assignment add ...
# --duedate`, extensions included); the penalty is this plugin's. nbgrader's
# default, spelt out: "none" records lateness without a penalty; "zero" takes
# a late notebook's whole score; a course's own policy is a LateSubmissionPlugin
# subclass named in c.AssignLatePenalties.plugin_class. `python -m autograder
# grade` applies the same plugin to the verified scores.
c.LateSubmissionPlugin.penalty_method = "none"

# Every entry point grades safely, not only `python -m autograder grade`: stock
# `nbgrader autograde` and the formgrader's Autograde button refuse submissions
# holding links or odd files, run the notebook in the bubblewrap sandbox, and
# replace each in-notebook score by the one verified outside the student's
# process (a disagreement sets nbgrader's `flagged`). See
# autograder/nbgrader_plugin.py and docs/security.md.
c.Autograde.sanitize_preprocessors = [
    "autograder.nbgrader_plugin.SubmissionIntake",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "autograder.nbgrader_plugin.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "autograder.nbgrader_plugin.VerifiedScores",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
