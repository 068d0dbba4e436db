"""Every default is stated once, in autograder.defaults, and read from there."""

from __future__ import annotations

import dataclasses

import pytest

from autograder import defaults
from autograder.cli import build_parser
from autograder.errors import UsageError
from autograder.grading.intake import IntakeLimits
from autograder.grading.run import grade_course
from autograder.grading.submission import GradeTask
from autograder.sandbox.config import SandboxLimits


def test_sandbox_limits_default_to_the_one_table():
    assert dataclasses.asdict(SandboxLimits()) == defaults.SANDBOX_LIMITS


def test_a_task_built_by_hand_is_graded_like_the_command_grades():
    task = GradeTask(assignment="a", student="s", submission_dir=".", course_root=".")
    assert task.sandbox is defaults.SANDBOX
    assert task.cell_timeout is None  # the course's Execute.timeout, as grade
    assert task.notebook_timeout == defaults.NOTEBOOK_TIMEOUT
    args = build_parser().parse_args(["grade"])
    assert args.sandbox is defaults.SANDBOX
    assert args.require_sandbox is defaults.REQUIRE_SANDBOX


def test_intake_limits_default_to_the_one_table():
    limits = IntakeLimits()
    assert limits.max_files == defaults.INTAKE_MAX_FILES
    assert limits.max_bytes == defaults.INTAKE_MAX_BYTES
    assert limits.max_depth == defaults.INTAKE_MAX_DEPTH


def test_grade_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {defaults.NOTEBOOK_TIMEOUT:g})" in text
    assert "memory=4G" in text


@pytest.mark.parametrize("name", defaults.TIMEOUT_LIMITS)
def test_a_timeout_given_as_a_sandbox_limit_is_refused_not_ignored(name, tmp_path):
    with pytest.raises(UsageError, match=f"--{name.replace('_', '-')}"):
        grade_course(tmp_path, sandbox_limits={name: 5}, progress=False)
