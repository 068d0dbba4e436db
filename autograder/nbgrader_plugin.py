"""The same safe grading inside stock nbgrader: ``nbgrader autograde`` and the
formgrader's *Autograde* button.

Stock nbgrader executes a submission as the grader, unsandboxed, and lets the
student's own kernel decide every score. The course's ``nbgrader_config.py``
plugs these preprocessors into nbgrader's ``Autograde`` converter, so every
entry point grades like ``python -m autograder grade``:

- :class:`SubmissionIntake` (first sanitizing step) refuses a submission that
  breaks the intake rules (links, odd files, size; see
  :mod:`autograder.grading.intake`) before any of its code runs: nbgrader then
  reports the notebook as failed, loudly;
- :class:`SandboxedExecute` runs the notebook in the bubblewrap sandbox
  (:mod:`autograder.sandbox`), with the course's per-cell timeout;
- :class:`VerifiedScores` (after nbgrader's ``SaveAutoGrades``) re-decides every
  graded cell outside the student's process (:mod:`autograder.verify`) and
  writes the verified score into the gradebook; a disagreement between the
  notebook's own run and the grader's run sets nbgrader's ``flagged`` on the
  submitted notebook, which the formgrader shows.

``python -m autograder grade`` configures nbgrader itself and does not use
these classes (it adds the pre-flight and a parallel pool on top).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor as Preprocessor
from traitlets import Dict as DictTrait

from .errors import SubmissionRefused
from .grading.intake import Refusal, take_in
from .sandbox.config import SandboxConfig, SandboxLimits
from .sandbox.kernel import SandboxExecute, SandboxKernelManager

__all__ = [
    "SandboxedExecute",
    "SubmissionIntake",
    "VerifiedScores",
    "stock_autograde_config",
]


def _course_root(folder: Path, assignment: str) -> Path:
    """The course root above ``folder`` whose source/ holds ``assignment``."""
    for root in [folder, *folder.parents]:
        if (root / "source" / assignment / f"{assignment}.ipynb").is_file():
            return root
    raise SubmissionRefused(
        f"cannot find source/{assignment}/ above {folder}: run nbgrader from the "
        "course directory"
    )


class SubmissionIntake(Preprocessor):
    """Refuse a submission that holds links or odd files before it runs."""

    def preprocess(self, nb, resources):
        folder = Path(resources["metadata"]["path"])
        with tempfile.TemporaryDirectory(prefix="autograder-intake-") as scratch:
            try:
                take_in(folder, Path(scratch) / "copy")
            except Refusal as refusal:
                self.log.error("submission refused: %s", refusal)
                raise SubmissionRefused(f"submission refused: {refusal}") from None
        return nb, resources


class SandboxedExecute(SandboxExecute):
    """nbgrader's ``Execute`` with every kernel started in the sandbox."""

    def preprocess(self, nb, resources):
        limits = SandboxLimits(cell_timeout=int(self.timeout or 60))
        with tempfile.TemporaryDirectory(prefix="autograder-sandbox-") as scratch:
            options = SandboxConfig(limits=limits, scratch_dir=scratch).to_dict()
            self.sandbox_options = options
            # This notebook's kernels get this notebook's private scratch.
            self.kernel_manager_class = type(
                "NotebookSandboxKernelManager",
                (SandboxKernelManager,),
                {"sandbox_options": DictTrait(options).tag(config=True)},
            )
            return super().preprocess(nb, resources)


class VerifiedScores(Preprocessor):
    """Replace each graded cell's in-notebook score by the verified one."""

    def preprocess(self, nb, resources):
        from .source import course_root
        from .verify.reconcile import reconcile
        from .verify.submission import verify_submission

        info = resources["nbgrader"]
        assignment, student = info["assignment"], info["student"]
        notebook = info["notebook"]
        folder = Path(resources["metadata"]["path"])
        root = _course_root(folder.resolve(), assignment)
        with tempfile.TemporaryDirectory(prefix="autograder-verify-") as scratch:
            with course_root(root):
                verification = verify_submission(
                    folder / f"{notebook}.ipynb",
                    assignment,
                    sandbox_config=SandboxConfig(scratch_dir=scratch),
                    source_root=root,
                    workdir=folder,
                )
        with Gradebook(info["db_url"]) as gb:
            submitted = gb.find_submission_notebook(notebook, assignment, student)
            in_notebook = {g.name: g.auto_score for g in submitted.grades}
            decided = reconcile(in_notebook, verification)
            flagged = []
            for grade in submitted.grades:
                verdict = decided.get(grade.name)
                if verdict is None or verdict.verified is None:
                    continue
                grade.auto_score = verdict.score
                if verdict.disagree:
                    flagged.append(grade.name)
            if flagged:
                submitted.flagged = True
            gb.db.commit()
        for name in flagged:
            self.log.warning(
                "%s/%s: %s: %s", student, assignment, name, decided[name].note
            )
        _show_verdicts(nb, verification)
        return nb, resources


def _show_verdicts(nb, verification) -> None:
    """Append what the grader's own run decided to each graded cell's output,
    so nbgrader's feedback and the formgrader say why a cell lost its points."""
    from nbformat.v4 import new_output

    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        verdict = verification.get(grade_id)
        if cell.get("cell_type") != "code" or verdict is None:
            continue
        if verdict.points is None:
            continue
        text = verdict.message.removeprefix("0: ")
        cell.setdefault("outputs", []).append(
            new_output(
                "stream",
                name="stdout",
                text=f"[graded outside your notebook] {verdict.points:g}/"
                f"{verdict.max_points:g}: {text}\n",
            )
        )


def stock_autograde_config():
    """nbgrader's own autograde pipeline (no plugin), for paths that configure
    the run themselves (``grade --no-sandbox``, the benchmark's stock run)."""
    from nbgrader.converters.autograde import Autograde
    from traitlets.config import Config

    traits = Autograde.class_traits()
    config = Config()
    config.Autograde.sanitize_preprocessors = traits["sanitize_preprocessors"].default()
    config.Autograde.autograde_preprocessors = traits[
        "autograde_preprocessors"
    ].default()
    return config
