"""How long does Run All take on each solved notebook?

Students wait on the training cells: every source notebook (the release notebook
with its solutions filled in) should run top to bottom in at most 30 seconds on
the course's two-core machine, and the prose before a long cell should state its
time honestly. This benchmark executes each ``source/<id>/<id>.ipynb`` in a fresh
Jupyter kernel, the way "Restart & Run All" does, in a scratch copy of its
folder, and prints for each notebook:

- the kernel's start-up time (paid once, before the first cell);
- the Run All time, first cell to last: wall clock, and the CPU time the kernel
  used (all its threads);
- every cell slower than ``--slow`` seconds, with its first line, so the times
  quoted in the notebooks can be compared with what was measured.

On a machine shared with other work the wall-clock figures grow with the load
(printed before and after). The CPU time does not wait for other programs:
with ``--threads 1`` (one BLAS thread) it is about the wall-clock time the
same cell takes alone on one core of an idle machine, an upper bound for two
cores. This is a measurement, not a test: it never fails.

Usage::

    DLCOURSE_DATA=/path/to/datasets python benchmarks/bench_notebooks.py
    python benchmarks/bench_notebooks.py 05_deep_network_application --threads 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
#: Run All budget of one notebook, in seconds (issue 13).
TARGET = 30.0
#: Environment variables that set the number of BLAS / OpenMP threads.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_all(assignment: str) -> tuple[float, list[tuple[int, str, float, float]]]:
    """Execute a source notebook; return kernel start-up and per-cell times.

    Returns:
        ``(start-up seconds, [(cell index, first line, wall s, CPU s), ...])``
        for the code cells, in order.

    Raises:
        nbclient.exceptions.CellExecutionError: if a cell fails (a solved
            notebook must run without errors).
    """
    with tempfile.TemporaryDirectory(prefix=f"bench-{assignment}-") as tmp:
        work = Path(tmp) / assignment
        shutil.copytree(SOURCE / assignment, work)
        nb = nbformat.read(str(work / f"{assignment}.ipynb"), as_version=4)
        client = NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(work)}},
        )
        started = time.perf_counter()
        with client.setup_kernel():
            startup = time.perf_counter() - started
            pid = client.km.provisioner.pid
            times = []
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                wall, cpu = time.perf_counter(), _cpu_seconds(pid)
                client.execute_cell(cell, index)
                wall, cpu = time.perf_counter() - wall, _cpu_seconds(pid) - cpu
                first = cell.source.strip().splitlines()[0] if cell.source else ""
                times.append((index, first, wall, cpu))
    return startup, times


def _report(assignment: str, runs: list, slow: float) -> tuple[float, float, float]:
    """Print one notebook's figures (fastest of the runs); return them."""
    startup = min(run[0] for run in runs)
    walls = [sum(cell[2] for cell in run[1]) for run in runs]
    cpus = [sum(cell[3] for cell in run[1]) for run in runs]
    wall, cpu = min(walls), min(cpus)
    verdict = "within" if wall <= TARGET else "OVER"
    print(
        f"\n{assignment}: Run All {wall:.1f} s wall ({verdict} the {TARGET:g} s "
        f"budget), {cpu:.1f} s CPU; kernel start {startup:.1f} s; "
        f"{len(runs[0][1])} code cells"
    )
    if len(runs) > 1:
        print("  wall time of each run: " + ", ".join(f"{t:.1f} s" for t in walls))
    for cells in zip(*(run[1] for run in runs), strict=True):
        index, first = cells[0][:2]
        cell_wall = min(cell[2] for cell in cells)
        cell_cpu = min(cell[3] for cell in cells)
        if max(cell_wall, cell_cpu) > slow:
            print(
                f"  cell {index:3d}  {cell_wall:5.1f} s wall {cell_cpu:5.1f} s CPU  "
                f"{first[:50]}"
            )
    return startup, wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "assignments",
        nargs="*",
        help="assignment ids (default: every folder under source/)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each notebook N times, one after the other, and keep each "
        "cell's fastest time and the fastest Run All (default 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="give the kernel N BLAS threads (default: the library's choice)",
    )
    parser.add_argument(
        "--slow",
        type=float,
        default=2.0,
        metavar="S",
        help="list the cells that take longer than S seconds (default 2)",
    )
    args = parser.parse_args(argv)
    assignments = args.assignments or sorted(
        p.name for p in SOURCE.iterdir() if (p / f"{p.name}.ipynb").is_file()
    )
    if args.threads:
        # The kernel inherits this process's environment.
        os.environ.update({name: str(args.threads) for name in THREAD_VARIABLES})
    if not os.environ.get("DLCOURSE_DATA"):
        print("note: DLCOURSE_DATA is not set; the notebooks look for the data")
    threads = args.threads or "default"
    print(f"BLAS threads: {threads}; load average before: {_load()}")
    rows = []
    for assignment in assignments:
        runs = [run_all(assignment) for _ in range(max(1, args.repeat))]
        rows.append((assignment, *_report(assignment, runs, args.slow)))
    print(f"\nload average after: {_load()}")
    print(f"\n{'assignment':<32} {'kernel start':>12} {'Run All':>9} {'CPU':>9}")
    for assignment, startup, wall, cpu in rows:
        print(f"{assignment:<32} {startup:>10.1f} s {wall:>7.1f} s {cpu:>7.1f} s")


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
