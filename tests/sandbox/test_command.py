"""The sandbox's command line, built without running bubblewrap."""

from __future__ import annotations

import os

from autograder.sandbox.command import (
    SANDBOX_LIMITS_SCRIPT,
    SANDBOX_RUNNER_SCRIPT,
    bwrap_argv,
    inner_env,
    limit_args,
)
from autograder.sandbox.config import SandboxConfig, SandboxLimits


def _argv(tmp_path, **options):
    workdir = tmp_path / "submission"
    workdir.mkdir()
    (workdir / "helper.py").write_text("VALUE = 1\n")
    (workdir / "mine.ipynb").write_text("{}")
    support = tmp_path / "support"
    (support / "stubs").mkdir(parents=True)
    config = SandboxConfig(data_dirs=(), **options)
    argv = bwrap_argv(
        config,
        bwrap="bwrap",
        workdir=str(workdir),
        inner=["python", "-c", "pass"],
        support=str(support),
    )
    return argv, str(workdir)


def _pairs(argv, flag):
    return [argv[i + 1 : i + 3] for i, a in enumerate(argv) if a == flag]


def test_the_student_gets_no_network_no_host_processes_and_no_grader_environment(
    tmp_path,
):
    argv, _ = _argv(tmp_path)
    for flag in ("--unshare-net", "--unshare-pid", "--clearenv", "--die-with-parent"):
        assert flag in argv
    assert argv[-4:] == ["--", "python", "-c", "pass"]


def test_submission_files_are_read_only_copies_and_notebooks_stay_out(tmp_path):
    argv, workdir = _argv(tmp_path)
    bound = {dest for _src, dest in _pairs(argv, "--ro-bind")}
    assert os.path.join(workdir, "helper.py") in bound
    assert os.path.join(workdir, "mine.ipynb") not in bound
    assert ["--tmpfs", workdir] == argv[
        argv.index(workdir) - 1 : argv.index(workdir) + 1
    ]


def test_the_standalone_programs_are_bound_where_the_sandbox_runs_them(tmp_path):
    argv, _ = _argv(tmp_path)
    bound = {dest for _src, dest in _pairs(argv, "--ro-bind")}
    assert {SANDBOX_LIMITS_SCRIPT, SANDBOX_RUNNER_SCRIPT} <= bound


def test_only_numerics_and_plotting_settings_of_the_grader_pass_inside(tmp_path):
    env = inner_env(
        SandboxConfig(data_dirs=()),
        workdir="/w",
        support="/s",
        tmp="/tmp",
        environ={"OMP_NUM_THREADS": "1", "GITHUB_TOKEN": "secret", "LANG": "C"},
    )
    assert env["OMP_NUM_THREADS"] == "1"
    assert "GITHUB_TOKEN" not in env
    assert env["HOME"] == "/w"


def test_limit_arguments_follow_the_limits():
    args = limit_args(SandboxLimits(memory=2**31, processes=64))
    assert "--as=2147483648" in args and "--nproc=64" in args
