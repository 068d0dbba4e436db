"""``bench --profile``: where the default path (``grade``, sandboxed) spends its
time, phase by phase, and the single-submission and ``check`` figures.

Three measurements, each beside its stock counterpart in the same run:

- **the class run** already timed by :func:`~.bench.run_bench`: its per-run
  phases (what ``grade`` prints on its ``time:`` line; interpreter start and
  CLI imports are the command's wall time minus the run's own) and the mean
  per-submission phases that every task records
  (:func:`autograder.grading.progress.phases`);
- **one submission**: ``grade A --student S`` of one late submission (the
  class's pre-flight cached, as after a class run) against
  ``nbgrader autograde A --student S`` of the same notebook;
- **``check``** of each assignment's solved notebook (the source), once to
  fill the pre-flight cache and once timed.

The sandbox's own start-up (bubblewrap, the limits script, mounts) is not
visible from the kernel's timeline: it is measured apart, as the wall time of a
trivial command in the sandbox minus the same command without it, and taken out
of the kernel's start.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import REPO_ROOT
from ..grading.outcomes import OUTCOMES_FILE
from ..grading.progress import PHASES

__all__ = ["log_profile", "profile_check", "profile_single", "sandbox_start"]

#: Rows of the table, in pipeline order: (label, where the figure comes from).
RUN_ROWS = (
    ("interpreter + CLI imports", "startup"),
    ("templates", "templates"),
    ("pre-flight (cached or run)", "preflight"),
)
END_ROWS = (("merge + gradebook write + install", "merge"),)
#: Width of the table's first column.
LABEL = 50


def _run_phases(stdout: str, wall: float) -> dict[str, float]:
    """The per-run phases from ``grade``'s summary lines, and the start-up."""
    found = re.search(r"^time: (.*)$", stdout, re.M)
    phases = {}
    for part in found.group(1).split(", ") if found else []:
        name, _, value = part.rpartition(" ")[0].rpartition(" ")
        phases[name] = float(value)
    total = re.search(r"submission\(s\) in ([\d.]+) s", stdout)
    own = float(total.group(1)) if total else sum(phases.values())
    return {
        "startup": wall - own + phases.get("imports", 0.0),
        "templates": phases.get("templates", 0.0),
        "preflight": phases.get("preflight", 0.0),
        "grading": phases.get("grading", 0.0),
        "merge": phases.get("merge", 0.0) + phases.get("install", 0.0),
    }


def mean_phases(records: Sequence[dict]) -> dict[str, float]:
    """Mean seconds of each per-submission phase over ``records``."""
    rows = [r["timing"]["phases"] for r in records if r.get("timing", {}).get("phases")]
    out = {
        p: statistics.mean(r.get(p, 0.0) for r in rows) if rows else 0.0 for p in PHASES
    }
    out["wall"] = (
        statistics.mean(r["timing"]["total"] for r in records if r.get("timing"))
        if records
        else 0.0
    )
    return out


def sandbox_start(repeats: int = 5) -> float:
    """Seconds the sandbox adds to starting a process (median of ``repeats``)."""
    from ..sandbox.config import SandboxConfig
    from ..sandbox.process import Launch

    def once(sandboxed: bool) -> float:
        with tempfile.TemporaryDirectory() as folder:
            launch = Launch(
                [sys.executable, "-I", "-S", "-c", "pass"],
                workdir=folder,
                config=SandboxConfig(scratch_dir=folder),
                what="probe",
            )
            argv, env = launch.prepare(sandboxed=sandboxed)
            started = time.perf_counter()
            subprocess.run(argv, env=env, cwd=launch.folder, check=False)  # noqa: S603
            launch.cleanup()
            return time.perf_counter() - started

    boxed = statistics.median(once(True) for _ in range(repeats))
    plain = statistics.median(once(False) for _ in range(repeats))
    return max(boxed - plain, 0.0)


def profile_single(
    measured: Callable, classes: tuple[Path, Path], assignments: Sequence[str], env
) -> list[dict]:
    """One late submission per assignment: ``grade`` against stock nbgrader.

    Args:
        measured: runs a command, returns ``(wall, usage, stdout)``.
        classes: a graded stock copy and a graded sandboxed copy of the class
            (their pre-flights are cached by then).
    """
    stock_class, boxed_class = classes
    out = []
    for assignment in assignments:
        student = "student000"
        for course in classes:
            shutil.rmtree(course / "autograded" / student / assignment, True)
        stock_wall, _, _ = measured(
            [sys.executable, "-m", "nbgrader", "autograde", assignment]
            + [f"--student={student}", "--force"],
            stock_class,
            env,
        )
        cmd = [sys.executable, "-m", "autograder", "grade", assignment, "--course"]
        cmd += [str(boxed_class), "--student", student, "--no-progress"]
        wall, _, stdout = measured(cmd, REPO_ROOT, env)
        records = json.loads((boxed_class / OUTCOMES_FILE).read_text())
        mine = [
            r
            for r in records
            if r["student"] == student and r["assignment"] == assignment
        ]
        out.append(
            {
                "assignment": assignment,
                "stock_s": round(stock_wall, 2),
                "grade_s": round(wall, 2),
                "run": _run_phases(stdout, wall),
                "task": mean_phases(mine),
            }
        )
    return out


def profile_check(
    measured: Callable, course_root: Path, assignments: Sequence[str], env
) -> list[dict]:
    """``check`` of each assignment's solved notebook: first run (fills the
    pre-flight cache if empty) and second run, wall seconds."""
    out = []
    for assignment in assignments:
        notebook = course_root / "source" / assignment / f"{assignment}.ipynb"
        cmd = [sys.executable, "-m", "autograder", "check", str(notebook)]
        cmd += ["--course", str(course_root)]
        first, _, _ = measured(cmd, REPO_ROOT, env)
        second, _, stdout = measured(cmd, REPO_ROOT, env)
        full = re.search(r"^total\s+(\S+)\s+(\S+)", stdout, re.M)
        out.append(
            {
                "assignment": assignment,
                "first_s": round(first, 2),
                "check_s": round(second, 2),
                "score": f"{full.group(1)}/{full.group(2)}" if full else "?",
            }
        )
    return out


def _row(label: str, *values: float | None) -> str:
    cells = ["" if v is None else f"{v:8.2f}" for v in values]
    return f"  {label:<{LABEL}}" + "".join(f"{c:>10}" for c in cells)


def log_profile(
    figures: dict,
    class_run: dict,
    class_tasks: dict,
    single: Sequence[dict],
    checks: Sequence[dict],
    log: Callable[[str], None] = print,
) -> None:
    """Print the per-phase table and the three ratios."""
    box = figures["sandbox_start_s"]
    n = figures["notebooks"]
    one = single[0] if single else None
    log("")
    log("per-phase profile of the default path (grade: sandboxed, verified)")
    first = one["assignment"][:2] if one else "-"
    log(f"  {'phase (seconds)':<{LABEL}}{'class':>10}{'one (' + first + ')':>10}")
    for label, key in RUN_ROWS:
        log(_row(label, class_run[key], one["run"][key] if one else None))
    log(
        _row(
            "grading (pool wall)",
            class_run["grading"],
            one["run"]["grading"] if one else None,
        )
    )
    for label, key in END_ROWS:
        log(_row(label, class_run[key], one["run"][key] if one else None))
    log(f"  {'per submission (mean, s; in a worker)':<{LABEL}}{'class':>10}{'one':>10}")
    task_one = one["task"] if one else None
    for phase in PHASES:
        if phase == "kernel start":
            for label, value in (
                ("sandbox start (bwrap, limits; measured apart)", box),
                ("kernel start (interpreter, ipykernel)", None),
            ):
                if value is None:
                    log(
                        _row(
                            "  " + label,
                            max(class_tasks[phase] - box, 0.0),
                            max(task_one[phase] - box, 0.0) if task_one else None,
                        )
                    )
                else:
                    log(_row("  " + label, value, value if task_one else None))
            continue
        log(
            _row(
                "  " + phase, class_tasks[phase], task_one[phase] if task_one else None
            )
        )
    log(
        _row(
            "  wall of one task",
            class_tasks["wall"],
            task_one["wall"] if task_one else None,
        )
    )
    log(
        "  (the verified run's two rows overlap the notebook's rows when it runs "
        "beside the kernel)"
    )
    log("")
    log(
        f"class throughput: stock {figures['stock_wall_s']:.1f} s, grade "
        f"{figures['sandboxed_wall_s']:.1f} s for {n} notebooks: "
        f"{figures['sandboxed_speedup']:.2f}x stock (target >= 4x)"
    )
    log(
        f"  4x stock leaves {figures['stock_s_per_notebook'] / 4:.2f} s per notebook; "
        f"grade --no-sandbox takes {figures['grade_s_per_notebook']:.2f} s "
        f"({figures['speedup']:.2f}x) with kernels forked from a warm process "
        "(no interpreter start, no imports) and no verified run: what a warm "
        "interpreter forked inside the sandbox could at best approach"
    )
    for s in single:
        log(
            f"one submission {s['assignment']}: stock nbgrader {s['stock_s']:.2f} s, "
            f"grade {s['grade_s']:.2f} s: {s['stock_s'] / s['grade_s']:.2f}x stock "
            "(target >= 1x)"
        )
    for c in checks:
        log(
            f"check {c['assignment']}: {c['check_s']:.2f} s (first run "
            f"{c['first_s']:.2f} s), {c['score']} (target <= 3 s)"
        )
