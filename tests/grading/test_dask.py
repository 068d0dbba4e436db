"""Grading on a real Dask cluster gives the grades the local pool gives.

A ``dask scheduler`` and two ``dask worker`` processes are started once for the
module (127.0.0.1, free ports, no dashboard; each worker with its own
``--local-directory``, cache and a working folder outside the course). A class
of the fixture course (reference, blank, a typical mistake, a cell calling
``os._exit(1)``, a sleeping cell, a symlinked notebook) is graded sandboxed on
the cluster and with :func:`autograder.grading.pool.run_tasks`; the outcomes and
scores must match. Then a worker is SIGKILLed mid-run (nothing lost or
duplicated), a submission that kills every worker it lands on ends as ``kernel
died`` (simulated with the test-only hook :data:`TEST_KILL_ENV`: nothing a
notebook does inside the sandbox's PID namespace reaches the worker), and an
interrupted run resumes without grading again what it already merged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from fixture_course import ASSIGNMENT, FIXTURE, NOTEBOOK, cell, mistake, source_nb

from autograder.grading import discover, pool, run, submission
from autograder.grading import template as templates
from autograder.grading.cluster import grade_on_cluster
from autograder.grading.cluster_worker import TEST_KILL_ENV
from autograder.grading.ledger import outcome_records, settings_key
from autograder.grading.preflight import Settings

pytestmark = pytest.mark.slow


def _require_dask():
    try:
        import distributed as dist  # noqa: F401
    except ImportError:  # a missing dependency fails, never skips
        pytest.fail("dask[distributed] is not installed: run ./course setup")
    return dist


SLEEP = 4.0
DOOMED = "doomed"


def _json(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _with_code(nb, grade_id, code):
    target = cell(nb, grade_id)
    target.source = code + target.source
    return nb


def _os_exit():
    return _with_code(source_nb(), "mean", "import os\nos._exit(1)\n")


def _sleepy():
    return _with_code(source_nb(), "square", f"import time\ntime.sleep({SLEEP})\n")


#: What a kernel prints of the numerics settings it was given.
ENV_PROBE = (
    "import os\n"
    "print('threads', os.environ.get('OPENBLAS_NUM_THREADS'), "
    "os.environ.get('OMP_NUM_THREADS'))\n"
)
#: The client's BLAS threads in the comparison (Dask's nanny gives workers 1).
CLIENT_BLAS_THREADS = "2"


def _env_probe():
    return _with_code(source_nb(), "square", ENV_PROBE)


CLASS = {
    "reference": lambda: _json(source_nb()),
    "env-probe": lambda: _json(_env_probe()),
    "blank": lambda: (FIXTURE / "release" / ASSIGNMENT / NOTEBOOK).read_bytes(),
    "mistake": lambda: _json(mistake("mean-divides-by-n-minus-1")),
    "os-exit": lambda: _json(_os_exit()),
}


def _course(root: Path, students: dict) -> Path:
    shutil.copytree(FIXTURE / "source", root / "source")
    shutil.copytree(FIXTURE / "release", root / "release")
    for student, make in students.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_bytes(make())
    return root


def _add_symlinked(course: Path) -> None:
    folder = course / "submitted" / "symlink" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / NOTEBOOK).symlink_to(course / "source" / ASSIGNMENT / NOTEBOOK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dask_cli(*args) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]]


class Cluster:
    """A real scheduler and workers, each a separate process."""

    def __init__(self, base: Path, env: dict):
        self.base = base
        self.env = env
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        scheduler_env = {
            **env,
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2",
            "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
        }
        log = open(base / "scheduler.log", "wb")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                _dask_cli(
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-dashboard",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=scheduler_env,
                cwd=base,
            )
        )

    def add_worker(self, name: str, extra_env: dict | None = None) -> None:
        home = self.base / name
        (home / "scratch").mkdir(parents=True, exist_ok=True)
        (home / "cache").mkdir(exist_ok=True)
        (home / "tasks").mkdir(exist_ok=True)
        env = {
            **self.env,
            "AUTOGRADER_CACHE": str(home / "cache"),
            "AUTOGRADER_SCRATCH": str(home / "tasks"),  # each worker its own
            **(extra_env or {}),
        }
        log = open(home / "worker.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            _dask_cli(
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--local-directory",
                str(home / "scratch"),
                "--name",
                name,
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
        self.procs.append(proc)
        self.workers.append(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    dist = _require_dask()
    base = tmp_path_factory.mktemp("dask-cluster")
    running = Cluster(base, _env())
    running.add_worker("w1", {TEST_KILL_ENV: DOOMED})
    running.add_worker("w2", {TEST_KILL_ENV: DOOMED})
    client = dist.Client(running.address, timeout=60)
    try:
        client.wait_for_workers(2, timeout=120)
        yield running, client
    finally:
        client.close()
        running.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-templates")
    template = templates.prepare_template(FIXTURE, ASSIGNMENT, root / "template")
    return template


def _tasks(course: Path, template: Path, **settings) -> list:
    found = discover.discover_submissions(course, [ASSIGNMENT])
    return [
        (
            index,
            submission.GradeTask(
                assignment=assignment,
                student=student,
                submission_dir=folder,
                course_root=course,
                cell_timeout=10,
                notebook_timeout=60,
                template_dir=template,
                sandbox=True,
                require_sandbox=True,
                run_seed=12345,
                **settings,
            ),
        )
        for index, (assignment, student, folder) in enumerate(found)
    ]


def _local(tasks, run_dir: Path) -> dict:
    run_dir.mkdir()
    jobs = [run.grade_job(i, task, run_dir, 1) for i, task in tasks]
    done = pool.run_tasks(jobs, 2)
    return {task.student: done[i] for i, task in tasks}


def _view(result) -> tuple:
    return (result.outcome, result.score, dict(result.scores))


@pytest.fixture(scope="module")
def compared(cluster, prepared, tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run ./course setup (as root)")
    _running, client = cluster
    base = tmp_path_factory.mktemp("dask-class")
    course = _course(base / "course", CLASS)
    _add_symlinked(course)
    tasks = _tasks(course, prepared)
    with pytest.MonkeyPatch.context() as patch:
        # The grader's numerics settings: the workers' kernels must see these,
        # not the one BLAS thread Dask's nanny gives its workers.
        patch.setenv("OPENBLAS_NUM_THREADS", CLIENT_BLAS_THREADS)
        patch.delenv("OMP_NUM_THREADS", raising=False)
        local = _local(tasks, base / "local-run")
        (base / "remote-run").mkdir()
        run = grade_on_cluster(
            client,
            course,
            tasks,
            {ASSIGNMENT: prepared},
            base / "remote-run",
            progress=False,
            merge_every=2,
        )
    remote = {r.student: r for r in run.results.values()}
    return course, local, remote, run


def test_cluster_grades_equal_the_local_pool(compared):
    _course_root, local, remote, _run = compared
    assert set(remote) == set(local) == {*CLASS, "symlink"}
    assert {s: _view(r) for s, r in remote.items()} == {
        s: _view(r) for s, r in local.items()
    }
    assert remote["reference"].score == 30 and remote["blank"].score == 0
    assert remote["mistake"].score == 20
    assert remote["os-exit"].outcome == "kernel died"
    assert remote["symlink"].outcome == "refused"
    assert remote["symlink"].worker == "client"  # never left the client
    assert remote["reference"].flags.unsandboxed is False


def test_kernels_on_workers_see_the_graders_numerics_settings(compared, cluster):
    course, local, _remote, _run = compared
    _running, client = cluster
    # The workers themselves run with Dask's one BLAS thread...
    # (os.getenv travels by reference: it reads the worker's environment.)
    assert set(client.run(os.getenv, "OPENBLAS_NUM_THREADS").values()) == {"1"}

    def printed(notebook: Path) -> str:
        nb = nbformat.read(str(notebook), 4)
        return "".join(o.get("text", "") for o in cell(nb, "square").outputs)

    # ...but the kernel there printed what the local pool's kernel printed.
    here = printed(local["env-probe"].autograded_dir / NOTEBOOK)
    there = printed(course / "autograded" / "env-probe" / ASSIGNMENT / NOTEBOOK)
    assert f"threads {CLIENT_BLAS_THREADS} None" in here
    assert there == here


def test_results_say_which_worker_and_are_merged(compared):
    course, _local, remote, run = compared
    ran_on = {r.worker for s, r in remote.items() if s != "symlink"}
    assert ran_on and all(w.startswith("tcp://127.0.0.1:") for w in ran_on)
    records = {r["student"]: r for r in outcome_records(course)}
    assert set(records) == set(remote)
    assert records["reference"]["worker"] in ran_on
    assert run.merges >= 2  # incremental: every 2 results
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, "reference").score == 30
        assert gb.find_submission(ASSIGNMENT, "mistake").score == 20
    autograded = course / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(str(autograded), 4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_workers_grade_in_their_own_scratch_and_leave_nothing(compared, cluster):
    running, _client = cluster
    for name in ("w1", "w2"):
        tasks = running.base / name / "tasks"
        # Graded here (AUTOGRADER_SCRATCH), each task's folder removed after it.
        assert tasks.is_dir() and not list(tasks.glob("autograder-task-*"))


def test_a_task_folder_left_by_a_killed_worker_is_removed(tmp_path, monkeypatch):
    from autograder.grading import cluster_worker

    monkeypatch.setenv("AUTOGRADER_SCRATCH", str(tmp_path))
    monkeypatch.setattr(cluster_worker, "_SWEPT", [])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"{cluster_worker.TASK_PREFIX}{dead.pid}-000003-abcdef12"
    live = tmp_path / f"{cluster_worker.TASK_PREFIX}{os.getppid()}-000004-abcdef12"
    for folder in (left, live):
        (folder / "run").mkdir(parents=True)
    fresh = cluster_worker._task_scratch(7)
    assert not left.exists() and live.is_dir()
    mine = f"{cluster_worker.TASK_PREFIX}{os.getpid()}-000007-"
    assert fresh.parent == tmp_path and fresh.name.startswith(mine)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster, prepared, tmp_path
):
    running, client = cluster
    import psutil

    students = {f"sleepy-{i}": (lambda: _json(_sleepy())) for i in range(4)}
    course = _course(tmp_path / "course", students)
    tasks = _tasks(course, prepared)
    seen: list[str] = []
    killed: list[int] = []

    def kill_w1():
        # SIGKILL w1's worker process (the nanny's child) while it grades.
        for child in psutil.Process(running.workers[0].pid).children():
            if "spawn_main" in " ".join(child.cmdline()):
                killed.append(child.pid)
                os.kill(child.pid, signal.SIGKILL)

    timer = threading.Timer(SLEEP / 2 + 1, kill_w1)
    timer.start()
    (tmp_path / "run").mkdir()
    run = grade_on_cluster(
        client,
        course,
        tasks,
        {ASSIGNMENT: prepared},
        tmp_path / "run",
        progress=False,
        on_result=lambda _i, result: seen.append(result.student),
    )
    timer.join()
    assert killed, "no worker process was found to kill"
    assert sorted(seen) == sorted(students)  # each once
    assert {r.student: (r.outcome, r.score) for r in run.results.values()} == {
        s: ("graded", 30) for s in students
    }
    records = [r["student"] for r in outcome_records(course)]
    assert sorted(records) == sorted(students)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_a_submission_that_keeps_killing_its_worker_ends_as_kernel_died(
    cluster, prepared, tmp_path
):
    _running, client = cluster
    course = _course(
        tmp_path / "course",
        {DOOMED: lambda: _json(source_nb()), "reference": lambda: _json(source_nb())},
    )
    tasks = _tasks(course, prepared)
    (tmp_path / "run").mkdir()
    run = grade_on_cluster(
        client,
        course,
        tasks,
        {ASSIGNMENT: prepared},
        tmp_path / "run",
        progress=False,
    )
    results = {r.student: r for r in run.results.values()}
    assert results["reference"].outcome == "graded"
    assert results["reference"].score == 30
    doomed = results[DOOMED]
    assert doomed.outcome == "kernel died", doomed.reason
    # Two rounds of three attempts (allowed-failures 2): the class run, then alone.
    assert "lost 6 times" in doomed.reason, doomed.reason
    assert doomed.score == 0
    client.wait_for_workers(2, timeout=120)


def test_an_interrupted_run_resumes_without_grading_again(cluster, prepared, tmp_path):
    _running, client = cluster
    course = _course(tmp_path / "course", CLASS)
    tasks = _tasks(course, prepared)
    keys = {
        ASSIGNMENT: settings_key(
            course,
            ASSIGNMENT,
            prepared,
            Settings(
                sandbox=True,
                require_sandbox=True,
                fork_kernels=True,
                cell_timeout=10,
                notebook_timeout=60.0,
                sandbox_limits=(),
            ),
        )
    }
    first = tasks[:2]
    (tmp_path / "run1").mkdir()
    grade_on_cluster(
        client,
        course,
        first,
        {ASSIGNMENT: prepared},
        tmp_path / "run1",
        keys=keys,
        progress=False,
    )
    before = json.loads((course / "grading_outcomes.json").read_text())
    assert len(before) == 2
    # A changed submission is graded again, an unchanged one is not.
    changed = first[0][1]
    (Path(changed.submission_dir) / NOTEBOOK).write_bytes(
        _json(mistake("mean-divides-by-n-minus-1"))
    )
    (tmp_path / "run2").mkdir()
    second = grade_on_cluster(
        client,
        course,
        tasks,
        {ASSIGNMENT: prepared},
        tmp_path / "run2",
        keys=keys,
        progress=False,
    )
    assert second.skipped == {first[1][0]}
    assert len(second.results) == len(tasks)
    records = {r["student"]: r for r in outcome_records(course)}
    assert set(records) == set(CLASS)
    assert records[changed.student]["score"] == 20


def test_benchmark_smoke_runs_both_pools_and_agrees():
    """The benchmark on 10 submissions: it prints its figures and exits 0 only
    when the local pool and the cluster scored alike."""
    _require_dask()
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dask.py"
    done = subprocess.run(
        [sys.executable, str(script), "--submissions", "10", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dask / local throughput" in done.stdout
    assert "scheduler overhead per no-op task" in done.stdout
    # Each worker's memory, and its zygote's, at the start, half-way, the end.
    memory = re.findall(
        r"RSS (\d+) MiB at start, (\d+) half-way, (\d+) at end; "
        r"its zygote (\d+), (\d+), (\d+) MiB",
        done.stdout,
    )
    assert len(memory) == 2 and all(int(v) > 0 for row in memory for v in row)


def test_the_cli_grades_on_a_scheduler_like_the_local_pool(cluster, tmp_path):
    """``grade --scheduler ADDRESS``, the instructor's command, gives the same
    gradebook as ``grade`` in the local pool (pre-flight included)."""
    running, _client = cluster
    address = running.address
    totals = {}
    for name, extra in (("local", []), ("dask", ["--scheduler", address])):
        course = _course(tmp_path / name, CLASS)
        shutil.copy(FIXTURE.parent.parent.parent / "nbgrader_config.py", course)
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", "--no-progress", *extra],
            cwd=course,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        records = json.loads((course / "grading_outcomes.json").read_text())
        totals[name] = {
            r["student"]: (r["outcome"], r["score"], r["scores"]) for r in records
        }
    assert totals["dask"] == totals["local"]
    assert totals["dask"]["reference"][1] == 30


def test_a_worker_that_cannot_sandbox_stops_the_run_before_any_grade(tmp_path):
    """Where a site disables user namespaces, bubblewrap fails on that worker:
    with ``--require-sandbox`` the workers' pre-flight names it and nothing is
    graded or stored (exit code 7, as a failed pre-flight on one machine)."""
    dist = _require_dask()
    fake = tmp_path / "bin"
    fake.mkdir()
    bwrap = fake / "bwrap"
    bwrap.write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    bwrap.chmod(0o755)
    env = _env()
    running = Cluster(tmp_path, env)
    try:
        running.add_worker("no-userns", {"PATH": f"{fake}{os.pathsep}{env['PATH']}"})
        with dist.Client(running.address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
            (address,) = client.scheduler_info()["workers"]
        course = _course(tmp_path / "course", CLASS)
        shutil.copy(FIXTURE.parent.parent.parent / "nbgrader_config.py", course)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "autograder",
                "grade",
                "--no-progress",
                "--require-sandbox",
                "--scheduler",
                running.address,
            ],
            cwd=course,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        running.close()
    said = proc.stdout + proc.stderr
    assert proc.returncode == 7, said[-3000:]
    assert "pre-flight on the cluster's workers failed" in said
    assert f"worker {address}, {ASSIGNMENT}" in said
    assert "cannot sandbox" in said and "Permission denied" in said
    assert not (course / "grading_outcomes.json").exists()
    assert not (course / "autograded").exists()


def test_a_grading_process_that_wrote_no_result_is_described_in_words():
    from autograder.grading.cluster_worker import _ended

    assert _ended(None, 1920.4) == "ran past its limit (1920 s) and was stopped"
    assert _ended(-9, 1) == "was killed by SIGKILL"
    assert _ended(3, 1) == "died (exit code 3)"
    assert _ended("the zygote died (exit code 1)", 1).startswith("was lost (the zygote")
