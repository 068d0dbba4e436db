"""``python -m autograder grade`` on a class of scenario-named submissions.

The class is made from the tiny fixture course ``tests/files/course_fixture``
(assignment ``mini``: three functions, 10 points each) by the functions below,
one submission per scenario, and graded once per module through the real CLI
(in-process, real nbgrader, real kernels). Limits are small so that the
runaway scenarios are quick: 3 s per cell, 12 s per notebook.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile

import nbformat
import pytest
from fixture_course import (
    ASSIGNMENT,
    CELL_LIMIT,
    LIMITS,
    NOTEBOOK,
    NOTEBOOK_LIMIT,
    SCENARIOS,
    _json,
    build_course,
    cell,
    duplicate_grade_id,
    export_text,
    source_nb,
    tree_digest,
)

from autograder.cli import main
from autograder.errors import UsageError
from autograder.grading.fastkernels import warm_up
from autograder.grading.gradebook import merge_results
from autograder.grading.inspection import inspect_submission
from autograder.grading.outcomes import GradeResult
from autograder.grading.pool import Job, run_tasks
from autograder.grading.submission import GradeTask, grade_submission
from autograder.grading.template import prepare_template

# --------------------------------------------------------------------------
# The class, graded once per module
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the scenario class with two workers; keep what the CLI said."""
    course = build_course(tmp_path_factory.mktemp("class"))
    before = tree_digest(course / "submitted")
    capture = pytest.MonkeyPatch()
    out = io.StringIO()
    capture.setattr("sys.stdout", out)
    try:
        code = main(
            [
                "grade",
                "--course",
                str(course),
                "--workers",
                "2",
                "--no-progress",
                *LIMITS,
            ]
        )
    finally:
        capture.undo()
    outcomes = {
        r["student"]: r
        for r in json.loads((course / "grading_outcomes.json").read_text())
    }
    return {
        "course": course,
        "code": code,
        "stdout": out.getvalue(),
        "before": before,
        "outcomes": outcomes,
    }


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_gets_its_outcome_score_and_reason(graded, scenario):
    _files, outcome, score, words = SCENARIOS[scenario]
    record = graded["outcomes"][scenario]
    assert (record["outcome"], record["score"], record["max_score"]) == (
        outcome,
        score,
        30,
    ), record
    for word in words:
        assert word in record["reason"], (
            f"{scenario}: {word!r} not in {record['reason']!r}"
        )


@pytest.mark.slow
def test_one_bad_submission_never_stops_the_others_and_exit_code_is_zero(graded):
    assert graded["code"] == 0
    assert set(graded["outcomes"]) == set(SCENARIOS)


@pytest.mark.slow
def test_summary_table_lists_every_submission_with_its_outcome(graded):
    table = graded["stdout"]
    assert "student" in table and "outcome" in table and "reason" in table
    for scenario, (_f, outcome, score, _w) in SCENARIOS.items():
        line = next(
            line for line in table.splitlines() if line.startswith(scenario + " ")
        )
        assert outcome in line and f"{score}/30" in line, line


@pytest.mark.slow
def test_submitted_folder_is_byte_identical_after_grading(graded):
    assert tree_digest(graded["course"] / "submitted") == graded["before"]


@pytest.mark.slow
def test_gradebook_holds_every_submission_with_per_function_scores(graded, capsys):
    rows = list(csv.DictReader(io.StringIO(export_text(graded["course"], capsys))))
    by_student = {r["student"]: r for r in rows}
    assert set(by_student) == set(SCENARIOS)
    assert by_student["mistake-mean-divides-by-n-minus-1"]["test_mean"] == "0"
    assert by_student["mistake-mean-divides-by-n-minus-1"]["test_relu"] == "10"
    assert by_student["infinite-loop"]["test_square"] == "0"
    assert by_student["os-exit"]["outcome"] == "kernel died"


@pytest.mark.slow
def test_autograded_notebooks_are_installed_where_nbgrader_puts_them(graded):
    course = graded["course"]
    nb = nbformat.read(
        str(course / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK), 4
    )
    test = cell(nb, "test_square")
    assert "BEGIN HIDDEN TESTS" in test.source  # restored from the gradebook
    assert any(o.get("text", "").startswith("All visible checks") for o in test.outputs)
    restored = nbformat.read(
        str(course / "autograded" / "deleted-test-cell" / ASSIGNMENT / NOTEBOOK), 4
    )
    assert cell(restored, "test_mean").outputs, "the deleted test cell was not restored"


@pytest.mark.slow
def test_regrading_is_idempotent_and_keeps_one_row_per_submission(
    graded, capsys, tmp_path
):
    course = graded["course"]
    first = export_text(course, capsys)
    shutil.copyfile(course / "gradebook.db", tmp_path / "before.db")
    code = main(
        ["grade", "--course", str(course), "--workers", "2", "--no-progress", *LIMITS]
    )
    assert code == 0
    assert export_text(course, capsys) == first
    assert tree_digest(course / "submitted") == graded["before"]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "nn-from-scratch") as gb:
        assert len(gb.find_assignment(ASSIGNMENT).submissions) == len(SCENARIOS)


@pytest.mark.slow
def test_sequential_and_parallel_grading_give_identical_gradebooks(
    graded, capsys, tmp_path
):
    course = build_course(tmp_path / "sequential")
    code = main(
        ["grade", "--course", str(course), "--workers", "1", "--no-progress", *LIMITS]
    )
    assert code == 0
    assert export_text(course, capsys) == export_text(graded["course"], capsys)


def _probe_unsandboxed(tmp_path, code: str, forks=(True, False)) -> dict:
    """Grade the reference with ``code`` as its third cell, unsandboxed, with
    forked and/or stock kernels; what the probe cell printed, by ``fork``."""
    nb = source_nb()
    nb.cells.insert(2, nbformat.v4.new_code_cell(code))
    course = build_course(
        tmp_path, {"probe": (lambda: {NOTEBOOK: _json(nb)}, None, None, None)}
    )
    warm_up()
    template = prepare_template(course, ASSIGNMENT, tmp_path / "template")
    printed = {}
    for fork in forks:
        task = GradeTask(
            assignment=ASSIGNMENT,
            student="probe",
            submission_dir=course / "submitted" / "probe" / ASSIGNMENT,
            course_root=course,
            cell_timeout=CELL_LIMIT,
            notebook_timeout=NOTEBOOK_LIMIT,
            template_dir=template,
            fork_kernels=fork,
            sandbox=False,
        )
        result = grade_submission(task, tmp_path / f"scratch-{fork}")
        assert result.outcome == "graded" and result.score == 30
        autograded = nbformat.read(str(result.autograded_dir / NOTEBOOK), 4)
        printed[fork] = "".join(
            o.text for o in autograded.cells[2].outputs if o.output_type == "stream"
        )
    return printed


@pytest.mark.slow
@pytest.mark.parametrize("mplbackend", ["Agg", None])
def test_forked_kernel_sees_what_a_fresh_kernel_sees(tmp_path, monkeypatch, mplbackend):
    if mplbackend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)  # kernels pick "inline"
    else:
        monkeypatch.setenv("MPLBACKEND", mplbackend)
    probe = (
        "import json, os, signal, sys, warnings\n"
        "print(json.dumps({'path': sys.path, 'cwd': os.path.basename(os.getcwd()),\n"
        "  'filters': sorted([a, getattr(m, 'pattern', m) or '', c.__name__,\n"
        "                     getattr(mod, 'pattern', mod) or '', n]\n"
        "                    for a, m, c, mod, n in warnings.filters),\n"
        "  'name': __name__,\n"
        "  'sigint': str(signal.getsignal(signal.SIGINT)),\n"
        "  'execution': os.environ.get('NBGRADER_EXECUTION'),\n"
        "  'parent_watched': os.getppid() == int(os.environ['JPY_PARENT_PID'])}))\n"
        "import matplotlib, matplotlib.pyplot as plt\n"
        "plt.plot([1, 2])\n"
        "print(json.dumps({'backend': matplotlib.get_backend(),\n"
        "  'rc': sorted(map(repr, matplotlib.rcParams.items())),\n"
        "  'figures': plt.get_fignums()}))"
    )
    printed = _probe_unsandboxed(tmp_path, probe)
    seen = {
        fork: [json.loads(line) for line in text.splitlines()]
        for fork, text in printed.items()
    }
    assert seen[True] == seen[False]
    assert seen[True][1]["backend"].endswith(mplbackend or "inline")
    assert seen[True][0]["execution"] == "autograde"
    assert seen[True][0]["parent_watched"]


@pytest.mark.slow
def test_forked_kernels_talk_over_private_sockets_not_ports(tmp_path, monkeypatch):
    # A TCP port found free can be bound by another worker's kernel first; a
    # forked kernel uses IPC sockets in its own folder, removed afterwards.
    folders = tmp_path / "tmp"
    folders.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folders))
    printed = _probe_unsandboxed(
        tmp_path,
        "from ipykernel.kernelapp import IPKernelApp\n"
        "print('transport', IPKernelApp.instance().transport)",
        forks=(True,),
    )
    assert "transport ipc" in printed[True]
    assert not list(folders.glob("agk-*"))


@pytest.mark.slow
def test_a_pipeline_failure_exits_non_zero_and_keeps_the_previous_grades(
    tmp_path, monkeypatch, capsys
):
    scenarios = {k: SCENARIOS[k] for k in ("reference", "blank")}
    course = build_course(tmp_path, scenarios)
    args = ["grade", "--course", str(course), "--no-progress", *LIMITS]
    assert main(args) == 0
    before = export_text(course, capsys)
    notebook = course / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK
    graded_before = notebook.read_bytes()
    real = grade_submission

    def broken(task, scratch):
        if task.student == "reference":
            raise RuntimeError("disk on fire")
        return real(task, scratch)

    monkeypatch.setattr("autograder.grading.run.grade_submission", broken)
    code = main(args)
    captured = capsys.readouterr()
    assert code == 5
    assert "reference/mini" in captured.err
    outcomes = {
        r["student"]: r
        for r in json.loads((course / "grading_outcomes.json").read_text())
    }
    assert outcomes["blank"]["outcome"] == "graded"
    assert outcomes["reference"]["outcome"] == "error"
    assert "disk on fire" in outcomes["reference"]["reason"]
    assert "previous grades were kept" in outcomes["reference"]["reason"]
    after = export_text(course, capsys)
    assert after.replace("reference,mini,error", "reference,mini,graded") == before
    assert notebook.read_bytes() == graded_before


# --------------------------------------------------------------------------
# Fast: the pieces, without kernels
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "outcome", "words"),
    [
        ({NOTEBOOK: b"{not json"}, "invalid notebook JSON", ["not valid JSON"]),
        ({NOTEBOOK: b"  \n"}, "invalid notebook JSON", ["empty"]),
        ({NOTEBOOK: b"[1, 2]"}, "invalid notebook JSON", ["not a notebook"]),
        ({NOTEBOOK: b"\xff\xfe"}, "invalid notebook JSON", ["UTF-8"]),
        ({"other.ipynb": b"{}"}, "unknown/renamed notebook", ["found other.ipynb"]),
        ({}, "missing notebook", ["no mini.ipynb"]),
    ],
)
def test_inspection_rejects_what_nbgrader_would_choke_on(
    tmp_path, files, outcome, words
):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    found = inspect_submission(tmp_path, [NOTEBOOK])
    assert not found.graded
    assert found.problems[0][0] == outcome
    for word in words:
        assert word in found.problems[0][1]


def test_inspection_keeps_the_last_copy_of_a_repeated_grade_id(tmp_path):
    (tmp_path / NOTEBOOK).write_bytes(_json(duplicate_grade_id()))
    found = inspect_submission(tmp_path, [NOTEBOOK])
    nb = found.graded[NOTEBOOK]
    ids = [
        c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata
    ]
    assert ids.count("square") == 1
    copies = [c for c in nb.cells if c.source == cell(source_nb(), "square").source]
    assert "nbgrader" not in copies[0].metadata and "nbgrader" in copies[1].metadata
    assert "square" in found.notes[0]


def _sleeper(seconds):
    import time

    time.sleep(seconds)
    return seconds


def _raiser():
    raise ValueError("boom")


def test_pool_kills_a_job_over_its_limit_and_reports_a_crash(tmp_path):
    jobs = [
        Job("slow", _sleeper, (30,), tmp_path / "a.log", 1.0, lambda: "timeout", str),
        Job("fast", _sleeper, (0,), tmp_path / "b.log", 10.0, lambda: "timeout", str),
        Job("bad", _raiser, (), tmp_path / "c.log", 10.0, lambda: "timeout", str),
    ]
    results = run_tasks(jobs, 2)
    assert results["slow"] == "timeout"
    assert results["fast"] == 0
    assert "ValueError: boom" in results["bad"]


def test_merge_that_fails_half_way_leaves_the_previous_gradebook_intact(
    tmp_path, monkeypatch
):
    course = build_course(tmp_path / "course", {})
    template = prepare_template(course, ASSIGNMENT, tmp_path / "template")
    results = [
        GradeResult(ASSIGNMENT, s, "graded", "", {"test_square": (10.0, 10.0)})
        for s in ("ann", "bob")
    ]
    work = tmp_path / "work"
    work.mkdir()
    merge_results(course, results[:1], {ASSIGNMENT: template}, work)
    before = (course / "gradebook.db").read_bytes()
    calls = []

    def failing(dst, src, assignment):
        calls.append(assignment)
        raise RuntimeError("crash in the middle of the merge")

    monkeypatch.setattr("autograder.grading.gradebook._sync_assignment", failing)
    with pytest.raises(RuntimeError, match="middle of the merge"):
        merge_results(course, results, {ASSIGNMENT: template}, work)
    assert calls
    assert (course / "gradebook.db").read_bytes() == before
    assert not list(course.glob(".gradebook.db.*"))


def test_one_student_the_gradebook_refuses_does_not_cost_the_others(
    tmp_path, monkeypatch
):
    """A store that fails for one submission is reported; everyone else's
    grades are stored."""
    from nbgrader.api import Gradebook

    course = build_course(tmp_path / "course", {})
    template = prepare_template(course, ASSIGNMENT, tmp_path / "template")
    results = [
        GradeResult(ASSIGNMENT, s, "graded", "", {"test_square": (10.0, 10.0)})
        for s in ("ann", "bob", "cid")
    ]
    work = tmp_path / "work"
    work.mkdir()

    def failing(gb, result, *rest):
        if result.student == "bob":
            raise OSError(28, "No space left on device")
        real_store(gb, result, *rest)

    from autograder.grading import gradebook

    real_store = gradebook._store
    monkeypatch.setattr(gradebook, "_store", failing)
    failures = merge_results(course, results, {ASSIGNMENT: template}, work)
    assert len(failures) == 1 and failures[0].startswith("bob/mini:")
    assert "No space left on device" in failures[0]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        stored = {s.student.id for s in gb.find_assignment(ASSIGNMENT).submissions}
    assert stored == {"ann", "cid"}


def test_unknown_assignment_is_a_usage_error(tmp_path, capsys):
    course = build_course(tmp_path, {})
    assert main(["grade", "99_nope", "--course", str(course)]) == UsageError.exit_code
    assert "unknown assignment" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option",
    [["--workers", "0"], ["--cell-timeout", "0"], ["--notebook-timeout", "-1"]],
)
def test_limits_and_workers_must_be_positive(tmp_path, capsys, option):
    course = build_course(tmp_path, {})
    assert main(["grade", "--course", str(course), *option]) == UsageError.exit_code
    assert "must be positive" in capsys.readouterr().err


def test_nothing_to_grade_says_so_and_succeeds(tmp_path, capsys):
    course = build_course(tmp_path, {})
    assert main(["grade", "--course", str(course), "--no-progress"]) == 0
    assert "nothing to grade" in capsys.readouterr().out


def test_warm_up_does_the_first_uses_every_forked_grading_would_repeat():
    # In a fresh interpreter (this one may have done them already): after
    # warm_up, a process forked to grade finds the sandbox probed, nbgrader's
    # mappers configured and nbconvert's relaxed validators compiled.
    code = (
        "import json\n"
        "from autograder.grading.fastkernels import warm_up\n"
        "warm_up(kernels=False)\n"
        "from autograder.sandbox.availability import _probe\n"
        "from nbgrader.api import Student\n"
        "from nbformat.validator import validators\n"
        "from jupyter_client.provisioning import KernelProvisionerFactory\n"
        "print(json.dumps({'probed': _probe.cache_info().currsize,\n"
        "  'mapped': Student.__mapper__.configured,\n"
        "  'relaxed': sorted(k[2] for k in validators if k[-1] is True),\n"
        "  'provisioners': KernelProvisionerFactory.initialized()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "probed": 1,
        "mapped": True,
        "relaxed": [4, 5],
        "provisioners": True,
    }
