"""A course directory driven through nbgrader's Python API.

The real course lives at the repository root (``nbgrader_config.py`` beside
``source/`` and ``release/``). Tests, ``release --check`` and grading work in
scratch course directories built here, so nothing under the repository is
touched unless that is the point of the command.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from . import REPO_ROOT
from .errors import AutograderError, SourceNotebookError

__all__ = [
    "Course",
    "GradeCellScore",
    "course_config",
    "list_assignments",
    "load_config",
]


def list_assignments(root: Path = REPO_ROOT) -> list[str]:
    """Return the assignment ids under ``root/source`` (folders holding a notebook)."""
    source = Path(root) / "source"
    return sorted(
        p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
    )


def load_config(course_root: Path) -> Config:
    """Load the repository's ``nbgrader_config.py`` with ``course_root`` as root."""
    loader = PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT))
    config = loader.load_config()
    config.CourseDirectory.root = str(Path(course_root).resolve())
    return config


def course_config(course_root: Path) -> Config:
    """Load the configuration of the course at ``course_root``.

    A course folder may carry its own ``nbgrader_config.py`` (a demo, a test
    class, a benchmark copy); otherwise the repository's is used. Either way
    ``CourseDirectory.root`` is set to ``course_root``.
    """
    course_root = Path(course_root).resolve()
    own = course_root / "nbgrader_config.py"
    if own.is_file() and course_root != REPO_ROOT:
        config = PyFileConfigLoader(own.name, path=str(course_root)).load_config()
        config.CourseDirectory.root = str(course_root)
        return config
    return load_config(course_root)


def _ensure_tools_on_path() -> None:
    # nbgrader shells out to `alembic`, which lives beside this interpreter.
    import sys

    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


@dataclass(frozen=True)
class GradeCellScore:
    """The score of one graded cell of one submission."""

    grade_id: str
    score: float
    max_score: float


class Course:
    """A scratch nbgrader course directory.

    Args:
        root: folder for the course (created if missing).
        assignments: assignment ids whose source is copied from the repository.
        source_root: course root whose ``source/`` is copied instead of the
            repository's (default: the repository).
        config: nbgrader configuration to use instead of the repository's
            (``CourseDirectory.root`` is set to ``root`` either way).
    """

    def __init__(self, root: Path, assignments=None, *, source_root=None, config=None):
        _ensure_tools_on_path()
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        origin = Path(source_root) if source_root is not None else REPO_ROOT
        wanted = list(assignments) if assignments else list_assignments(origin)
        for assignment in wanted:
            src = origin / "source" / assignment
            if not src.is_dir():
                raise SourceNotebookError(f"no such assignment: {src}")
            dst = self.root / "source" / assignment
            if not dst.exists():
                shutil.copytree(
                    src, dst, ignore=shutil.ignore_patterns(*_IGNORED_FILES)
                )
        if config is None:
            self.config = load_config(self.root)
        else:
            self.config = copy.deepcopy(Config(config))
            self.config.CourseDirectory.root = str(self.root)
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        self._coursedir = CourseDirectory(config=self.config)
        self.api = NbGraderAPI(coursedir=self._coursedir, config=self.config)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def generate(self, assignment: str) -> Path:
        """Run ``generate_assignment``; return the release folder."""
        result = self.api.generate_assignment(assignment)
        if not result["success"]:
            raise AutograderError(
                f"nbgrader generate_assignment {assignment} failed:\n"
                f"{result.get('error') or result.get('log')}"
            )
        return self.root / "release" / assignment

    def submit(self, student: str, assignment: str, notebooks: dict[str, object]):
        """Place a submission: ``{file name: notebook node, bytes or str}``."""
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in notebooks.items():
            path = folder / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                nbformat.write(content, str(path))
        return folder

    def autograde(self, assignment: str, student: str) -> dict:
        """Run ``autograde`` for one student; return nbgrader's result dict."""
        return self.api.autograde(assignment, student)

    def scores(self, assignment: str, student: str) -> dict[str, GradeCellScore]:
        """Return ``{grade_id: GradeCellScore}`` for a graded submission."""
        from nbgrader.api import Gradebook

        scores = {}
        with Gradebook(self.db_url) as gb:
            submission = gb.find_submission(assignment, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores[grade.name] = GradeCellScore(
                        grade.name, float(grade.score), float(grade.max_score)
                    )
        return scores

    def autograded_notebook(self, assignment: str, student: str, name: str):
        """Read an autograded notebook back (outputs included)."""
        path = self.root / "autograded" / student / assignment / name
        return nbformat.read(str(path), as_version=4)


def default_cell_timeout(course_root: Path) -> int:
    """``Execute.timeout`` from the course configuration, else nbgrader's own
    default (:data:`autograder.defaults.NBGRADER_CELL_TIMEOUT`): the limit stock
    ``nbgrader autograde`` would use for this course."""
    from .defaults import NBGRADER_CELL_TIMEOUT

    config = course_config(course_root)
    return int(config.Execute.get("timeout", NBGRADER_CELL_TIMEOUT))


_IGNORED_FILES = (".ipynb_checkpoints", "__pycache__", "*.pyc", "*.h5", "datasets")
