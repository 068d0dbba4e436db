"""Due dates, extensions and late penalties survive ``grade``'s template and merge.

Real nbgrader gradebooks of the fixture course (``mini``, 30 points): the
template carries the due date the instructor set in the course's gradebook;
the merge keeps it and the student's extension, stores the submission time, and
asks the course's late plugin for the penalty on the final (verified) scores.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fixture_course import ASSIGNMENT, FIXTURE, NOTEBOOK

from autograder import REPO_ROOT
from autograder.cli import main
from autograder.errors import UsageError
from autograder.grading.gradebook import merge_results
from autograder.grading.outcomes import GRADED, GradeResult
from autograder.grading.template import course_duedate, prepare_template

DUE = datetime(2027, 2, 1, 23, 59)
CELLS = ("test_square", "test_mean", "test_relu")


def _course(tmp: Path, policy: str) -> Path:
    course = tmp / "course"
    shutil.copytree(FIXTURE / "source", course / "source")
    (course / "nbgrader_config.py").write_text(
        (REPO_ROOT / "nbgrader_config.py").read_text()
        + f'\nc.LateSubmissionPlugin.penalty_method = "{policy}"\n'
    )
    return course


def _gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}")


def _result(student: str, timestamp: str, scores: dict) -> GradeResult:
    return GradeResult(
        ASSIGNMENT,
        student,
        GRADED,
        "",
        {gid: (score, 10.0) for gid, score in scores.items()},
        timestamp=timestamp,
        # what nbgrader's own step decided on the in-notebook scores
        late_penalties={NOTEBOOK.removesuffix(".ipynb"): 30.0},
    )


@pytest.fixture
def template(tmp_path):
    """The course's gradebook holds the due date; the template copies it."""
    course = _course(tmp_path, "zero")
    assert course_duedate(course, ASSIGNMENT) is None  # no gradebook yet
    first = prepare_template(course, ASSIGNMENT, tmp_path / "t0")
    merge_results(course, [], {ASSIGNMENT: first}, _workdir(tmp_path, "m0"))
    with _gradebook(course) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
    assert course_duedate(course, ASSIGNMENT) == DUE
    assert course_duedate(course, "no-such-assignment") is None
    return course, prepare_template(course, ASSIGNMENT, tmp_path / "t1")


def _workdir(tmp: Path, name: str) -> Path:
    (tmp / name).mkdir()
    return tmp / name


def _stored(course: Path, student: str):
    with _gradebook(course) as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        return (
            sub.assignment.duedate,
            sub.timestamp,
            sub.total_seconds_late,
            float(sub.late_submission_penalty or 0.0),
            sub.extension,
            float(sub.score),
        )


def test_the_template_carries_the_course_due_date(template):
    from nbgrader.api import Gradebook

    _, made = template
    with Gradebook(f"sqlite:///{made / 'gradebook.db'}") as gb:
        assert gb.find_assignment(ASSIGNMENT).duedate == DUE


def test_merge_keeps_the_due_date_and_penalises_the_final_scores(template, tmp_path):
    course, made = template
    late = _result("bob", "2027-02-02 01:59:00", dict.fromkeys(CELLS, 10.0))
    # The notebook claimed full marks; verification left 10: the penalty of the
    # "zero" policy is the 10 that count, not the notebook's 30.
    cheat = _result("cy", "2027-02-02 00:00:00", {**dict.fromkeys(CELLS, 0.0)})
    cheat.scores["test_square"] = (10.0, 10.0)
    early = _result("ada", "2027-02-01 12:00:00", dict.fromkeys(CELLS, 10.0))
    results = [late, cheat, early]
    merge_results(course, results, {ASSIGNMENT: made}, _workdir(tmp_path, "m1"))
    assert _stored(course, "bob") == (
        DUE,
        datetime(2027, 2, 2, 1, 59),
        7200.0,
        30.0,
        None,
        30.0,
    )
    assert _stored(course, "cy")[2:4] == (60.0, 10.0)
    assert _stored(course, "ada")[2:4] == (0, 0.0)
    # what the run records is what the gradebook holds
    assert late.late_penalties == {"mini": 30.0} and early.late_penalties == {}
    assert cheat.late_penalties == {"mini": 10.0}


def test_an_extension_is_kept_on_regrade_and_counts(template, tmp_path):
    course, made = template
    late = _result("bob", "2027-02-02 01:59:00", dict.fromkeys(CELLS, 10.0))
    merge_results(course, [late], {ASSIGNMENT: made}, _workdir(tmp_path, "m1"))
    with _gradebook(course) as gb:
        gb.grant_extension(ASSIGNMENT, "bob", hours=3)
    again = _result("bob", "2027-02-02 01:59:00", dict.fromkeys(CELLS, 10.0))
    merge_results(course, [again], {ASSIGNMENT: made}, _workdir(tmp_path, "m2"))
    duedate, _, seconds, penalty, extension, _ = _stored(course, "bob")
    assert (duedate, seconds, penalty, extension) == (DUE, 0, 0.0, timedelta(hours=3))
    assert again.late_penalties == {}


def test_the_none_policy_records_lateness_without_a_penalty(tmp_path):
    course = _course(tmp_path, "none")
    made = prepare_template(course, ASSIGNMENT, tmp_path / "t0")
    merge_results(course, [], {ASSIGNMENT: made}, _workdir(tmp_path, "m0"))
    with _gradebook(course) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
    late = _result("bob", "2027-02-02 01:59:00", dict.fromkeys(CELLS, 10.0))
    merge_results(course, [late], {ASSIGNMENT: made}, _workdir(tmp_path, "m1"))
    assert _stored(course, "bob")[2:4] == (7200.0, 0.0)


def test_seed_without_the_sandbox_is_a_usage_error(tmp_path, capsys):
    course = _course(tmp_path, "none")
    folder = course / "submitted" / "ada" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE / "release" / ASSIGNMENT / NOTEBOOK, folder)
    code = main(["grade", "--course", str(course), "--no-sandbox", "--seed", "7"])
    assert code == UsageError.exit_code
    assert "--seed" in capsys.readouterr().err
    assert not (course / "gradebook.db").exists()


def test_a_moved_due_date_is_not_served_from_the_template_cache(
    template, tmp_path, monkeypatch
):
    """Templates are cached across runs; the due date is part of what makes
    one, so moving the deadline gives a template with the new one."""
    from nbgrader.api import Gradebook

    from autograder.grading.preflight import cached_template

    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    course, _ = template
    first = cached_template(course, ASSIGNMENT, tmp_path / "c1")
    later = DUE + timedelta(days=3)
    with _gradebook(course) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=later)
    second = cached_template(course, ASSIGNMENT, tmp_path / "c2")
    for made, due in ((first, DUE), (second, later)):
        with Gradebook(f"sqlite:///{made / 'gradebook.db'}") as gb:
            assert gb.find_assignment(ASSIGNMENT).duedate == due
