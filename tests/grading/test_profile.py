"""What ``bench --profile`` reads: each task's phases, grade's summary lines, and
the template cache that spares a command ``generate_assignment``."""

from __future__ import annotations

import shutil

import pytest
from fixture_course import ASSIGNMENT, FIXTURE, build_course

from autograder.authoring.bench_profile import _run_phases, mean_phases
from autograder.grading import progress
from autograder.grading.preflight import cached_template, template_key
from autograder.grading.template import TemplateInfo


@pytest.fixture
def timeline(monkeypatch):
    """A made-up task: kernel launched at 1, ready at 2, setup 2-3, a cell
    3-3.5, nbgrader done at 4; the verified run 1-2.5 (beside the notebook)."""
    events = [
        (progress.KERNEL_LAUNCH, 1.0),
        (progress.VERIFY_START, 1.0),
        (progress.KERNEL_READY, 2.0),
        ("setup", 2.0),
        (progress.RUNNER_LOADED, 2.0),
        (progress.CELL_DONE, 3.0),
        ("cell 4", 3.0),
        (progress.VERIFY_END, 2.5),
        (progress.CELL_DONE, 3.5),
        (progress.NOTEBOOK_DONE, 4.0),
    ]
    monkeypatch.setattr(progress, "_TIMELINE", list(events))


def test_phases_split_a_task_in_pipeline_order(timeline):
    phases = progress.phases(0.0, 4.25)
    assert list(phases) == list(progress.PHASES)
    assert phases == pytest.approx(
        {
            "prepare": 1.0,
            "kernel start": 1.0,
            "setup cell": 1.0,
            "notebook cells": 0.5,
            "nbgrader after cells": 0.5,
            "runner start + load": 1.0,
            "verified checks": 0.5,
            "outcome": 0.25,
        }
    )
    # The verified run's marks do not cut a cell short.
    assert progress.timing(0.0, 4.25)["cells"] == pytest.approx(1.5)


def test_a_callback_waits_for_its_mark_and_runs_once(monkeypatch):
    monkeypatch.setattr(progress, "_TIMELINE", [])
    monkeypatch.setattr(progress, "_WAITING", {})
    calls = []
    progress.when(progress.KERNEL_LAUNCH, lambda: calls.append("started"))
    progress.mark(progress.KERNEL_READY)
    assert calls == []
    progress.mark(progress.KERNEL_LAUNCH)
    progress.mark(progress.KERNEL_LAUNCH)  # a second notebook's kernel
    assert calls == ["started"]


def test_mean_phases_average_the_records_of_tasks():
    records = [
        {"timing": {"total": 2.0, "phases": {"prepare": 1.0, "setup cell": 0.5}}},
        {"timing": {"total": 4.0, "phases": {"prepare": 3.0, "setup cell": 0.5}}},
    ]
    mean = mean_phases(records)
    assert mean["prepare"] == pytest.approx(2.0)
    assert mean["setup cell"] == pytest.approx(0.5)
    assert mean["kernel start"] == 0.0
    assert mean["wall"] == pytest.approx(3.0)


def test_run_phases_read_grades_summary_and_leave_the_start_up():
    stdout = (
        "student  assignment ...\n"
        "3 submission(s) in 10.0 s: 3 graded\n"
        "time: imports 1.5 s, templates 0.3 s, preflight 2.0 s, grading 6.0 s, "
        "merge 0.2 s, install 0.0 s\n"
    )
    phases = _run_phases(stdout, wall=12.0)
    # 2 s outside the run (interpreter, CLI imports, exit) + 1.5 s warm-up.
    assert phases == pytest.approx(
        {
            "startup": 3.5,
            "templates": 0.3,
            "preflight": 2.0,
            "grading": 6.0,
            "merge": 0.2,
        }
    )


def test_a_cached_template_is_the_one_generate_assignment_made(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    course = build_course(tmp_path / "course", scenarios={})
    made = cached_template(course, ASSIGNMENT, tmp_path / "first")
    kept = list((tmp_path / "cache" / "templates").iterdir())
    assert [p.name for p in kept] == [
        f"{ASSIGNMENT}-{template_key(course, ASSIGNMENT)}"
    ]
    again = cached_template(course, ASSIGNMENT, tmp_path / "second")
    assert again != made
    assert TemplateInfo.load(again) == TemplateInfo.load(made)
    first = sorted(p.relative_to(made) for p in made.rglob("*"))
    assert sorted(p.relative_to(again) for p in again.rglob("*")) == first
    assert (again / "gradebook.db").read_bytes() == (made / "gradebook.db").read_bytes()


def test_an_edited_source_makes_a_new_template(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    before = template_key(course, ASSIGNMENT)
    notebook = next((course / "source" / ASSIGNMENT).glob("*.ipynb"))
    notebook.write_text(notebook.read_text() + "\n")
    assert template_key(course, ASSIGNMENT) != before


def test_the_profile_prints_every_phase_and_the_three_ratios():
    from autograder.authoring.bench_profile import log_profile

    run = {"startup": 1.0, "templates": 0.1, "preflight": 2.0, "grading": 3.0}
    run["merge"] = 0.2
    task = dict.fromkeys(progress.PHASES, 0.25) | {"wall": 1.5}
    lines = []
    log_profile(
        {
            "sandbox_start_s": 0.05,
            "notebooks": 2,
            "stock_wall_s": 10.0,
            "sandboxed_wall_s": 4.0,
            "sandboxed_speedup": 2.5,
            "stock_s_per_notebook": 5.0,
            "grade_s_per_notebook": 2.5,
            "speedup": 4.0,
        },
        run,
        task,
        [
            {
                "assignment": "01_a",
                "stock_s": 3.0,
                "grade_s": 2.0,
                "run": run,
                "task": task,
            }
        ],
        [{"assignment": "01_a", "check_s": 2.5, "first_s": 4.0, "score": "9/9"}],
        log=lines.append,
    )
    text = "\n".join(lines)
    for phase in progress.PHASES:
        if phase != "kernel start":
            assert f"  {phase} " in text
    # The sandbox's start-up is taken out of the kernel's.
    assert "kernel start (interpreter, ipykernel)" in text
    assert any(line.split()[-2:] == ["0.20", "0.20"] for line in lines)
    assert "2.50x stock (target >= 4x)" in text
    assert (
        "4x stock leaves 1.25 s per notebook; grade --no-sandbox takes 2.50 s (4.00x)"
        in text
    )
    assert "one submission 01_a: stock nbgrader 3.00 s, grade 2.00 s: 1.50x" in text
    assert "check 01_a: 2.50 s (first run 4.00 s), 9/9" in text
