"""Benchmark (not a test): stock ``nbgrader autograde`` against ``grade``.

``python -m autograder bench [--students N]`` builds a synthetic class (``N``
students, every assignment; each student hands in the reference solution, the
untouched release or one of the typical mistakes, in turn), copies it twice, and
grades one copy with the stock command line (``nbgrader autograde <a>`` per
assignment, sequential, as an instructor would run it) and the other with
``python -m autograder grade``. It prints both wall times, their ratio, seconds
per notebook, the peak memory of a worker and of a kernel, whether every score
is identical, and where ``grade`` spends its time (imports, templates, kernel
start, cells, the slowest cells).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from .. import REPO_ROOT
from ..course import Course, course_config, list_assignments
from ..errors import AutograderError, UsageError
from ..grading.outcomes import OUTCOMES_FILE
from ..grading.run import default_workers
from ..grading.template import new_gradebook
from .demo import CONFIG, MISTAKES_DIR, apply_mistake, load_mistakes

__all__ = ["build_class", "run_bench"]

#: Runs a command and prints its children's resource usage as JSON (the peak
#: resident memory of the largest process it started, kernels included).
_MEASURE = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': code, 'cpu': u.ru_utime + u.ru_stime,\n"
    "                  'maxrss_mb': u.ru_maxrss / 1024}), file=sys.stderr)\n"
)


def build_class(
    dest: Path,
    n_students: int,
    assignments: Sequence[str],
    *,
    course_root: Path = REPO_ROOT,
    mistakes_dir: Path = MISTAKES_DIR,
) -> int:
    """Build a course at ``dest`` with ``n_students`` submissions per assignment.

    Returns:
        The number of submitted notebooks.
    """
    dest.mkdir(parents=True)
    (dest / "nbgrader_config.py").write_text(
        CONFIG.format(config=str(REPO_ROOT / "nbgrader_config.py"))
    )
    new_gradebook(dest / "gradebook.db")
    course = Course(
        dest, assignments, source_root=course_root, config=course_config(dest)
    )
    count = 0
    for assignment in assignments:
        release = course.generate(assignment)
        source = dest / "source" / assignment
        names = sorted(p.name for p in source.glob("*.ipynb"))
        originals = {n: nbformat.read(str(source / n), as_version=4) for n in names}
        variants = [originals, {n: nbformat.read(str(release / n), 4) for n in names}]
        for mistake in load_mistakes(assignment, mistakes_dir):
            changed = dict(originals)
            for name, nb in originals.items():
                ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
                if mistake["cell"] in ids:
                    changed[name] = apply_mistake(nb, mistake)
            variants.append(changed)
        for i in range(n_students):
            folder = dest / "submitted" / f"student{i:03d}" / assignment
            folder.mkdir(parents=True)
            for name, nb in variants[i % len(variants)].items():
                nbformat.write(nb, str(folder / name))
                count += 1
    return count


def _measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, dict, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    usage = json.loads(done.stderr.strip().splitlines()[-1])
    if usage["rc"] != 0:
        raise AutograderError(
            f"{' '.join(cmd)} failed (exit {usage['rc']}):\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-2000:]}"
        )
    return wall, usage, done.stdout


def _scores(course: Path) -> dict:
    from nbgrader.api import Gradebook

    course_id = course_config(course).CourseDirectory.get("course_id", "") or ""
    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                for nb in submission.notebooks:
                    for grade in nb.grades:
                        key = (assignment.name, submission.student.id, grade.name)
                        found[key] = grade.score
    return found


def _compare(a: dict, b: dict) -> tuple[bool, list]:
    """Whether two runs' scores are identical (and not empty), and the keys
    that differ."""
    return a == b and len(a) > 0, sorted(
        k for k in set(a) | set(b) if a.get(k) != b.get(k)
    )


def _where_time_goes(records: list[dict], phases: str) -> list[str]:
    timing = [r["timing"] for r in records if r.get("timing")]
    lines = [f"  grade phases: {phases}"]
    if timing:
        ready = [t["until_kernel_ready"] for t in timing if t["until_kernel_ready"]]
        cells = [t["cells"] for t in timing]
        total = [t["total"] for t in timing]
        lines.append(
            f"  per submission (mean): {statistics.mean(total):.2f} s = "
            f"{statistics.mean(ready) if ready else 0:.2f} s until the kernel is ready "
            f"+ {statistics.mean(cells):.2f} s running cells + the rest (nbgrader "
            "bookkeeping, gradebook)"
        )
        per_cell: dict = {}
        for t in timing:
            for label, seconds in t["slowest_cells"]:
                per_cell.setdefault(label, []).append(seconds)
        slow = sorted(per_cell.items(), key=lambda kv: -statistics.mean(kv[1]))[:5]
        lines.append(
            "  slowest cells (mean s): "
            + ", ".join(f"{label} {statistics.mean(v):.2f}" for label, v in slow)
        )
    return lines


def run_bench(
    n_students: int = 20,
    assignments: Sequence[str] | None = None,
    *,
    course_root: Path = REPO_ROOT,
    workers: int | None = None,
    keep: Path | str | None = None,
    profile: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Grade one synthetic class three times (stock, ``grade --no-sandbox``,
    ``grade``); print and return the figures.

    With ``profile``, also print where ``grade`` spends its time, phase by
    phase, one late submission per assignment against stock nbgrader, and
    ``check`` of each assignment (:mod:`.bench_profile`).
    """
    course_root = Path(course_root).resolve()
    known = list_assignments(course_root)
    wanted = list(assignments) if assignments else known
    unknown = [a for a in wanted if a not in known]
    if unknown or not wanted:
        raise UsageError(f"unknown assignment(s) {unknown}; known: {', '.join(known)}")
    mistakes_dir = course_root / "mistakes"
    if not mistakes_dir.is_dir():
        mistakes_dir = MISTAKES_DIR
    base = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="bench-"))
    if keep and base.exists():
        shutil.rmtree(base)
    workers = workers or default_workers()
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    try:
        log(f"building a class of {n_students} students x {len(wanted)} assignment(s)")
        n_notebooks = build_class(
            base / "class",
            n_students,
            wanted,
            course_root=course_root,
            mistakes_dir=mistakes_dir,
        )
        stock, ours, boxed = base / "stock", base / "ours", base / "sandboxed"
        _copy_class(base / "class", stock, ours, boxed)

        log(f"stock: nbgrader autograde, sequential, {n_notebooks} notebooks ...")
        stock_wall, stock_use = _stock_run(wanted, stock, env)

        def ours_run(course: Path, *extra: str):
            cmd = [sys.executable, "-m", "autograder", "grade", *wanted, "--course"]
            cmd += [str(course), "--workers", str(workers), "--no-progress", *extra]
            return _measured(cmd, REPO_ROOT, env)

        log(f"grade --no-sandbox: --workers {workers} (trusted code, forked kernels)")
        ours_wall, ours_use, out = ours_run(ours, "--no-sandbox")
        log(f"grade (sandboxed, verified scores): --workers {workers} ...")
        boxed_wall, boxed_use, boxed_out = ours_run(boxed)
        records = json.loads((ours / OUTCOMES_FILE).read_text())
        phases = re.search(r"^time: (.*)$", out, re.M)

        a, b, c = _scores(stock), _scores(ours), _scores(boxed)
        identical, differing = _compare(a, b)
        boxed_identical, boxed_differing = _compare(a, c)
        worker_mb = max(r["peak_rss_mb"].get("worker", 0) for r in records)
        kernel_mb = max(r["peak_rss_mb"].get("kernel", 0) for r in records)
        figures = {
            "students": n_students,
            "assignments": wanted,
            "notebooks": n_notebooks,
            "workers": workers,
            "stock_wall_s": round(stock_wall, 2),
            "grade_wall_s": round(ours_wall, 2),
            "sandboxed_wall_s": round(boxed_wall, 2),
            "speedup": round(stock_wall / ours_wall, 2),
            "sandboxed_speedup": round(stock_wall / boxed_wall, 2),
            "stock_s_per_notebook": round(stock_wall / n_notebooks, 3),
            "grade_s_per_notebook": round(ours_wall / n_notebooks, 3),
            "sandboxed_s_per_notebook": round(boxed_wall / n_notebooks, 3),
            "stock_cpu_s": round(stock_use["cpu"], 1),
            "grade_cpu_s": round(ours_use["cpu"], 1),
            "sandboxed_cpu_s": round(boxed_use["cpu"], 1),
            "stock_peak_mb": round(stock_use["maxrss_mb"], 1),
            "grade_worker_peak_mb": worker_mb,
            "grade_kernel_peak_mb": kernel_mb,
            "identical_scores": identical,
            "sandboxed_identical_scores": boxed_identical,
            "differing": [list(k) for k in differing[:10]],
            "sandboxed_differing": [list(k) for k in boxed_differing[:10]],
        }
        walls = (stock_wall, ours_wall, boxed_wall)
        _log_figures(figures, walls, (differing, boxed_differing), log)
        log("where grade --no-sandbox spends its time:")
        for line in _where_time_goes(records, phases.group(1) if phases else "?"):
            log(line)
        if profile:
            figures["profile"] = _profile(
                figures, (stock, boxed), (boxed_wall, boxed_out), course_root, env, log
            )
        if keep:
            log(f"kept: {base}")
        return figures
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def _profile(figures, classes, boxed_run, course_root, env, log) -> dict:
    """The per-phase profile of the sandboxed run, one submission, ``check``."""
    from . import bench_profile as bp

    stock, boxed = classes
    log("profile: the sandbox's start-up, one submission per assignment, check ...")
    figures["sandbox_start_s"] = round(bp.sandbox_start(), 3)
    class_run = bp._run_phases(boxed_run[1], boxed_run[0])
    class_tasks = bp.mean_phases(json.loads((boxed / OUTCOMES_FILE).read_text()))
    wanted = figures["assignments"]
    single = bp.profile_single(_measured, (stock, boxed), wanted, env)
    checks = bp.profile_check(_measured, course_root, wanted, env)
    bp.log_profile(figures, class_run, class_tasks, single, checks, log)
    return {
        "class_run": class_run,
        "class_tasks": class_tasks,
        "single": single,
        "check": checks,
    }


def _copy_class(built: Path, stock: Path, *others: Path) -> None:
    """One copy of the class per run; the stock copy's nbgrader is nbgrader as
    it ships, without the course's plugin (sandbox and verified scores inside
    nbgrader's own converter)."""
    for copy in (stock, *others):
        shutil.copytree(built, copy)
    with open(stock / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(STOCK_PIPELINE)


STOCK_PIPELINE = """
# Stock nbgrader: its own autograde pipeline, without the course's plugin.
from autograder.nbgrader_plugin import stock_autograde_config  # noqa: E402

c.merge(stock_autograde_config())  # noqa: F821
"""


def _stock_run(wanted: Sequence[str], course: Path, env: dict) -> tuple[float, dict]:
    """Wall time and resource use of ``nbgrader autograde``, one assignment at a
    time, as an instructor would run it."""
    wall_total, use_total = 0.0, {"cpu": 0.0, "maxrss_mb": 0.0}
    for assignment in wanted:
        wall, use, _ = _measured(
            [sys.executable, "-m", "nbgrader", "autograde", assignment], course, env
        )
        wall_total += wall
        use_total["cpu"] += use["cpu"]
        use_total["maxrss_mb"] = max(use_total["maxrss_mb"], use["maxrss_mb"])
    return wall_total, use_total


def _log_figures(figures: dict, walls: tuple, differing: tuple, log) -> None:
    """Print the figures of :func:`run_bench` for a reader."""
    stock_wall, ours_wall, boxed_wall = walls
    differing, boxed_differing = differing
    n_students, wanted = figures["students"], figures["assignments"]
    n_notebooks, workers = figures["notebooks"], figures["workers"]
    worker_mb = figures["grade_worker_peak_mb"]
    kernel_mb = figures["grade_kernel_peak_mb"]
    identical = figures["identical_scores"]
    boxed_identical = figures["sandboxed_identical_scores"]
    log("")
    log(
        f"class: {n_students} students x {len(wanted)} assignment(s) = "
        f"{n_notebooks} notebooks; {workers} workers on {os.cpu_count()} CPUs"
    )
    log(
        f"stock nbgrader autograde:     {stock_wall:7.1f} s  "
        f"({figures['stock_s_per_notebook']:.2f} s/notebook, "
        f"CPU {figures['stock_cpu_s']} s, peak {figures['stock_peak_mb']} MB)"
    )
    log(
        f"autograder grade --no-sandbox: {ours_wall:6.1f} s  "
        f"({figures['grade_s_per_notebook']:.2f} s/notebook, "
        f"CPU {figures['grade_cpu_s']} s)  speed-up {figures['speedup']:.2f}x"
    )
    log(
        f"autograder grade (sandboxed):  {boxed_wall:6.1f} s  "
        f"({figures['sandboxed_s_per_notebook']:.2f} s/notebook, "
        f"CPU {figures['sandboxed_cpu_s']} s)  "
        f"speed-up {figures['sandboxed_speedup']:.2f}x; sandbox cost "
        f"{(boxed_wall - ours_wall) / n_notebooks:+.2f} s/notebook"
    )
    log(
        f"peak memory per worker: {worker_mb} MB (RSS, shared pages included); "
        f"per kernel: {kernel_mb} MB"
    )
    for label, same, diff in (
        ("--no-sandbox", identical, differing),
        ("sandboxed", boxed_identical, boxed_differing),
    ):
        log(
            f"scores identical to stock ({label}): "
            + ("yes" if same else f"NO ({len(diff)} differ: {diff[:5]})")
        )
