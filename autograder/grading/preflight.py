"""Pre-flight: grade the reference and the blank release before any student.

If the grading environment is broken (the sandbox cannot import ``dlcourse``,
the data is missing, a hidden test rejects the reference, a test passes with no
work done), every student would get a plausible but wrong grade. So before an
assignment is graded, its reference solution (the source notebook) and its
blank release (what ``generate_assignment`` made) are graded exactly as a
student's submission would be: same code path, environment, sandbox, limits and
run seed. The reference must score full marks with no flag and the blank zero;
otherwise nothing is graded and :class:`~autograder.errors.PreflightFailed`
names the failing cell and its exception.

A pre-flight that passed is remembered in a cache keyed by everything that can
change its result (the source and release notebooks, the course configuration,
the code of ``autograder`` and ``dlcourse``, the interpreter, the sandbox
settings and whether bubblewrap works), so a re-run does not pay for it again.
The cache lives in ``$AUTOGRADER_CACHE`` or ``~/.cache/nn-from-scratch``.

The same cache keeps each assignment's template (:func:`cached_template`):
``generate_assignment`` then runs once per source, not once per command (a
late submission, every ``check``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PreflightFailed
from .outcomes import GRADED, GradeResult

__all__ = [
    "PREFLIGHT_STUDENTS",
    "cache_dir",
    "cached_template",
    "preflight_key",
    "run_preflight",
    "template_key",
]

#: Student ids the pre-flight grades under (never merged into a gradebook).
REFERENCE, BLANK = "preflight-reference", "preflight-blank"
PREFLIGHT_STUDENTS = (REFERENCE, BLANK)

_CODE_FILES = ("*.py", "*.json")


def _cache_base() -> Path:
    chosen = os.environ.get("AUTOGRADER_CACHE")
    return Path(chosen) if chosen else Path.home() / ".cache" / "nn-from-scratch"


def cache_dir() -> Path:
    """Where passed pre-flights are remembered."""
    return _cache_base() / "preflight"


def _digest(paths: Sequence[Path], patterns: Sequence[str] = ("*",)) -> str:
    sha = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = (
            [root]
            if root.is_file()
            else sorted(
                p
                for pattern in patterns
                for p in root.rglob(pattern)
                if p.is_file() and "__pycache__" not in p.parts
            )
        )
        for path in files:
            sha.update(str(path.relative_to(root.parent)).encode())
            sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What a grading task is run with (the part that can change a score)."""

    sandbox: bool
    require_sandbox: bool
    fork_kernels: bool
    cell_timeout: int | None
    notebook_timeout: float
    sandbox_limits: tuple


def preflight_key(
    course_root: Path, assignment: str, template: Path, settings: Settings
) -> str:
    """A digest of everything that can change the pre-flight's result."""
    import autograder

    from ..sandbox.availability import sandbox_status
    from ..sandbox.config import SandboxConfig
    from ..sandbox.support import course_package

    package = course_package(sys.executable)
    available = sandbox_status(SandboxConfig())[0] if settings.sandbox else None
    from .template import course_duedate

    material = {
        "source": _digest([Path(course_root) / "source" / assignment]),
        # The template carries the course's due date: a new one, a new template.
        "duedate": str(course_duedate(course_root, assignment)),
        "release": _digest([Path(template) / "release" / assignment]),
        "config": _config_text(course_root),
        "autograder": _digest([Path(autograder.__file__).parent], _CODE_FILES),
        "dlcourse": _digest([Path(package)], _CODE_FILES) if package else None,
        "python": [sys.executable, sys.version],
        "settings": asdict(settings),
        "sandbox_available": available,
        "data": os.environ.get("DLCOURSE_DATA"),
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _config_text(course_root: Path) -> str:
    """The course's nbgrader configuration as loaded (its own file, or the
    repository's, and whatever they load), as text; without the course's own
    folder, so that a copy of the course keeps its cached results."""
    from ..course import course_config

    config = course_config(course_root)
    config.CourseDirectory.pop("root", None)
    return json.dumps(config, sort_keys=True, default=repr)


def template_key(course_root: Path, assignment: str) -> str:
    """A digest of everything ``generate_assignment`` reads to make a template:
    the source folder, the course configuration and due date, nbgrader and this
    package."""
    import nbgrader

    import autograder

    from .template import course_duedate

    material = {
        "source": _digest([Path(course_root) / "source" / assignment]),
        # The template carries the course's due date: a new one, a new template.
        "duedate": str(course_duedate(course_root, assignment)),
        "config": _config_text(course_root),
        "autograder": _digest([Path(autograder.__file__).parent], _CODE_FILES),
        "nbgrader": [nbgrader.__version__, nbgrader.__file__],
        "python": [sys.executable, sys.version],
    }
    text = json.dumps(material, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_template(course_root: Path, assignment: str, dest: Path) -> Path:
    """:func:`~.template.prepare_template` at ``dest``, or a copy of the
    template an earlier run made from the same inputs (:func:`template_key`)."""
    from .template import prepare_template

    kept = (
        _cache_base()
        / "templates"
        / f"{assignment}-{template_key(course_root, assignment)}"
    )
    if kept.is_dir():
        shutil.copytree(kept, dest)
        return Path(dest).resolve()
    built = prepare_template(course_root, assignment, dest)
    staged = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
    try:
        shutil.copytree(built, staged)
        os.replace(staged, kept)  # another run may have kept one meanwhile
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
    return built


def _hint(text: str) -> str:
    if "No module named 'dlcourse'" in text:
        return (
            " — the sandbox cannot import the course package dlcourse: install "
            "the course into the grader's environment (pip install <course "
            "repository>) or grade from a course directory that holds dlcourse/"
        )
    if "DatasetError" in text or "FileNotFoundError" in text:
        return (
            " — a file the course needs is missing in the grading environment: "
            "run `python -m dlcourse fetch-data` or set DLCOURSE_DATA"
        )
    return ""


def problems(reference: GradeResult, blank: GradeResult) -> list[str]:
    """Why the pre-flight fails (empty: it passed)."""
    found = []
    if reference.outcome != GRADED:
        found.append(
            f"reference solution: {reference.outcome}: {reference.reason}"
            + _hint(reference.reason)
        )
    else:
        for gid, (score, full) in reference.scores.items():
            # None: a manually graded cell (a written answer) waiting for a
            # human; every autograded cell of a graded notebook has a number.
            if score is not None and score < full:
                cell = reference.cells.get(gid)
                why = cell.message if cell else "no score"
                found.append(
                    f"reference solution, {gid}: {score:g}/{full:g}: {why}" + _hint(why)
                )
        if reference.flags.disagreement:
            found.append(
                "reference solution: the notebook's own run and the grader's run "
                f"disagree on {', '.join(reference.flags.disagreement)}"
            )
    if blank.outcome != GRADED:
        found.append(f"blank release: {blank.outcome}: {blank.reason}")
    else:
        passing = [gid for gid, (score, _) in blank.scores.items() if score]
        if passing:
            found.append(
                f"blank release scores {blank.score:g}/{blank.max_score:g}: the "
                f"tests of {', '.join(passing)} pass with no work done"
            )
    return found


def run_preflight(
    course_root: Path,
    assignment: str,
    template: Path,
    settings: Settings,
    *,
    workdir: Path,
    grade: Callable[[str, Path], dict[str, GradeResult]],
    log: Callable[[str], None] = print,
) -> bool:
    """Grade the reference and the blank release of ``assignment``.

    Args:
        course_root: the course being graded.
        assignment: assignment id.
        template: the assignment's template (its ``release/`` holds the blank).
        settings: what the class is graded with (part of the cache key).
        workdir: scratch folder for the two submissions.
        grade: grades ``{student: submission folder}`` the way the class will
            be graded and returns ``{student: result}``.
        log: where progress lines go.

    Returns:
        True if the pre-flight ran, False if a cached pass was used.

    Raises:
        PreflightFailed: naming every failing cell and its exception.
    """
    key = preflight_key(course_root, assignment, template, settings)
    stamp = cache_dir() / f"{assignment}-{key}.json"
    if stamp.is_file():
        return False
    folders = {}
    for student, origin in (
        (REFERENCE, Path(course_root) / "source" / assignment),
        (BLANK, Path(template) / "release" / assignment),
    ):
        folder = Path(workdir) / student / assignment
        shutil.copytree(
            origin,
            folder,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
        folders[student] = folder
    results = grade(folders)
    found = problems(results[REFERENCE], results[BLANK])
    if found:
        raise PreflightFailed(
            f"pre-flight of {assignment} failed, so nothing was graded (every "
            "score would be wrong):\n  " + "\n  ".join(found)
        )
    reference = results[REFERENCE]
    # Cells without a score wait for a human (written answers): not counted.
    auto = [full for score, full in reference.scores.values() if score is not None]
    by_hand = reference.max_score - sum(auto)
    log(
        f"pre-flight {assignment}: reference {reference.score:g}/{sum(auto):g}, "
        f"blank {results[BLANK].score:g}"
        + (f" ({by_hand:g} points graded by hand)" if by_hand else "")
    )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    staged = stamp.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(
        json.dumps({s: r.summary() for s, r in results.items()}, indent=1)
    )
    os.replace(staged, stamp)
    return True
