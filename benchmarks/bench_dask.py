"""Throughput of grading on a Dask LocalCluster against the local pool.

Builds a synthetic class of N submissions of the fixture course
(``tests/files/course_fixture``: copies of the reference and of a typical
mistake, alternating), then grades it twice with the same number of workers:

- the local pool (:func:`autograder.grading.pool.run_tasks`, forked processes);
- a ``LocalCluster`` of single-threaded worker processes through
  :func:`autograder.grading.cluster.grade_on_cluster` (packing, intake on the
  client, a fresh fork of the worker's warm zygote per submission, incremental
  merges).

each from the first submission to the last result merged into the course's
``gradebook.db`` (the local side merges, records and installs once at the end,
as ``grade`` does; the cluster's ledger as results arrive), and prints
submissions per second for both and their ratio, each worker's RSS and its
zygote's (psutil) at the start, half-way and at the end, and the scheduler's
overhead per task (the round trip of 200 no-op tasks). The scores of both
runs must agree, or it exits 1. Sandboxed grading (the production default)
unless ``--no-sandbox``.

Usage::

    python benchmarks/bench_dask.py --submissions 1000 --workers 2
    python benchmarks/bench_dask.py --submissions 10      # smoke
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "files" / "course_fixture"
ASSIGNMENT = "mini"
NOTEBOOK = "mini.ipynb"


def build_class(root: Path, n: int) -> Path:
    from autograder.authoring.demo import apply_mistake, load_mistakes

    shutil.copytree(FIXTURE / "source", root / "source")
    shutil.copytree(FIXTURE / "release", root / "release")
    source = nbformat.read(str(FIXTURE / "source" / ASSIGNMENT / NOTEBOOK), 4)
    wrong = apply_mistake(source, load_mistakes(ASSIGNMENT, FIXTURE / "mistakes")[0])
    texts = [nbformat.writes(source), nbformat.writes(wrong)]
    for i in range(n):
        folder = root / "submitted" / f"s{i:05d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_text(texts[i % 2])
    return root


def make_tasks(course: Path, template: Path, sandbox: bool) -> list:
    from autograder.grading import discover, submission

    found = discover.discover_submissions(course, [ASSIGNMENT])
    return [
        (
            i,
            submission.GradeTask(
                assignment=a,
                student=s,
                submission_dir=folder,
                course_root=course,
                cell_timeout=30,
                notebook_timeout=120,
                template_dir=template,
                sandbox=sandbox,
                require_sandbox=sandbox,
                run_seed=7 if sandbox else None,
            ),
        )
        for i, (a, s, folder) in enumerate(found)
    ]


def worker_rss(client) -> dict[str, tuple[float, float | None]]:
    """Each worker's RSS and its zygote's (None before it started), MiB."""

    def rss() -> tuple[float, float | None]:
        import psutil

        from autograder.grading import cluster_worker

        zygote = cluster_worker._ZYGOTE._proc
        running = zygote is not None and zygote.poll() is None
        of_zygote = psutil.Process(zygote.pid).memory_info().rss if running else None
        return (
            round(psutil.Process().memory_info().rss / 2**20, 1),
            None if of_zygote is None else round(of_zygote / 2**20, 1),
        )

    return client.run(rss)


def noop_overhead(client, n: int = 200) -> float:
    from distributed import wait

    started = time.perf_counter()
    wait([client.submit(int, i, pure=False) for i in range(n)])
    return (time.perf_counter() - started) / n


def grade_locally(course: Path, tasks, template: Path, base: Path, workers: int):
    """The local pool, then what ``grade`` does after it, as the cluster's ledger
    does too: merge into gradebook.db, record the outcomes, install the
    notebooks. Returns (seconds, {index: result})."""
    from autograder.grading import pool, run
    from autograder.grading.gradebook import merge_results
    from autograder.grading.outcomes import write_outcomes

    (base / "local-run").mkdir()
    (base / "local-merge").mkdir()
    started = time.perf_counter()
    jobs = [run.grade_job(i, t, base / "local-run", 1) for i, t in tasks]
    done = pool.run_tasks(jobs, workers)
    results = [done[i] for i, _ in tasks]
    merge_results(course, results, {ASSIGNMENT: template}, base / "local-merge")
    write_outcomes(course, results)
    run._install_all(course, results)
    return time.perf_counter() - started, done


def report(args, figures, inside, overhead, run, rss) -> None:
    """Print the figures: throughput, time inside tasks, overhead, memory."""
    from statistics import mean

    from autograder.authoring.bench_profile import mean_phases
    from autograder.grading.cluster import summary_by_worker
    from autograder.grading.progress import PHASES

    rss_start, rss_half, rss_end = rss
    n = args.submissions
    print(f"{n} submissions, {args.workers} workers, sandbox={args.sandbox}")
    for name, seconds in figures.items():
        print(f"  {name:18s} {seconds:8.1f} s  {n / seconds:6.2f} submissions/s")
    busy = {k: mean(r.duration for r in v) for k, v in inside.items()}
    print(
        "  mean seconds inside grade_submission: "
        + ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
        + " (the rest of a submission's share of the wall time is overhead)"
    )
    phases = {
        k: mean_phases([{"timing": r.timing} for r in v]) for k, v in inside.items()
    }
    local, dask = phases["local pool"], phases["dask LocalCluster"]
    print(
        "  of which, per phase (mean s, local pool / dask): "
        + ", ".join(f"{p} {local[p]:.2f}/{dask[p]:.2f}" for p in PHASES)
    )
    ratio = figures["local pool"] / figures["dask LocalCluster"]
    print(f"  dask / local throughput: {ratio:.2f}")
    print(f"  scheduler overhead per no-op task: {overhead * 1000:.2f} ms")
    print(f"  gradebook merges: {run.merges}; {summary_by_worker(run)}")
    for address in sorted(rss_start):
        (w0, z0), (w1, z1) = rss_start[address], rss_end.get(address, (None, None))
        wh, zh = rss_half.get(address, (None, None))
        print(
            f"  worker {address}: RSS {w0:.0f} MiB at start, {wh or 0:.0f} half-way, "
            f"{w1 or 0:.0f} at end; its zygote {z0 or 0:.0f}, {zh or 0:.0f}, "
            f"{z1 or 0:.0f} MiB"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-sandbox", dest="sandbox", action="store_false")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from autograder.grading import fastkernels
    from autograder.grading import template as templates
    from autograder.grading.cluster import grade_on_cluster
    from autograder.grading.cluster_worker import start_zygote
    from autograder.sandbox.command import passed_environ

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        base = Path(tmp)
        template = templates.prepare_template(FIXTURE, ASSIGNMENT, base / "template")
        figures = {}
        scores = {}

        course = build_class(base / "local", args.submissions)
        tasks = make_tasks(course, template, args.sandbox)
        fastkernels.warm_up()
        figures["local pool"], done = grade_locally(
            course, tasks, template, base, args.workers
        )
        scores["local pool"] = {t.student: done[i].score for i, t in tasks}
        inside = {"local pool": list(done.values())}

        course = build_class(base / "dask", args.submissions)
        tasks = make_tasks(course, template, args.sandbox)
        (base / "dask-run").mkdir()
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                dashboard_address=None,
                local_directory=str(base / "dask-scratch"),
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            # Warm, as the local pool's parent is before its timing starts.
            client.run(start_zygote, warm=True, environ=passed_environ())
            rss_start = worker_rss(client)
            overhead = noop_overhead(client)
            rss_half: dict = {}
            arrived: list[int] = []

            def half_way(index, _result) -> None:
                arrived.append(index)
                if len(arrived) == len(tasks) // 2:
                    rss_half.update(worker_rss(client))

            started = time.perf_counter()
            run = grade_on_cluster(
                client,
                course,
                tasks,
                {ASSIGNMENT: template},
                base / "dask-run",
                progress=False,
                merge_every=100,
                # The local pool above runs no pre-flight either.
                preflight=False,
                on_result=half_way,
            )
            figures["dask LocalCluster"] = time.perf_counter() - started
            rss_end = worker_rss(client)
        scores["dask LocalCluster"] = {r.student: r.score for r in run.results.values()}
        inside["dask LocalCluster"] = list(run.results.values())

    report(args, figures, inside, overhead, run, (rss_start, rss_half, rss_end))
    if scores["local pool"] != scores["dask LocalCluster"]:
        print("MISMATCH: the two runs scored differently", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
