"""Progress of the notebook being graded: which cell runs, and where time went.

nbclient's hooks call :func:`record_progress` and :func:`record_kernel_ready`;
the progress file lets the worker pool say which cell a notebook was running
when it was stopped, and :func:`timing` feeds ``bench``'s breakdown.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

__all__ = [
    "PHASES",
    "mark",
    "record_cell_done",
    "record_kernel_ready",
    "record_progress",
    "reset",
    "timing",
    "when",
    "where",
]

#: (event, monotonic time) of the notebook being graded in this process: a
#: cell's label when it starts, or one of the ``<...>`` marks below.
_TIMELINE: list[tuple[str, float]] = []
#: Callbacks waiting for a mark: ``{event: [callback, ...]}`` (see :func:`when`).
_WAITING: dict[str, list] = {}
#: Marks set by the steps of a task (see :func:`mark`).
KERNEL_LAUNCH = "<kernel launch>"
KERNEL_READY = "<kernel ready>"
CELL_DONE = "<cell done>"
NOTEBOOK_DONE = "<notebook done>"
VERIFY_START = "<verify start>"
RUNNER_LOADED = "<verify runner loaded>"
VERIFY_END = "<verify end>"
#: The label of the course's setup cell (imports numpy, matplotlib, dlcourse).
SETUP_CELL = "setup"
#: The per-submission phases :func:`timing` reports, in pipeline order.
PHASES = (
    "prepare",
    "kernel start",
    "setup cell",
    "notebook cells",
    "nbgrader after cells",
    "runner start + load",
    "verified checks",
    "outcome",
)


#: Whether this process records marks: only while it grades a task (a worker),
#: not in a long-lived process whose kernels merely use the sandbox classes.
_RECORDING = False


def reset() -> None:
    """Start the timeline of a task, forgetting a previous one (a worker grades
    one task)."""
    global _RECORDING
    _TIMELINE.clear()
    _WAITING.clear()
    _RECORDING = True


def when(event: str, callback) -> None:
    """Call ``callback()`` the first time ``event`` is marked (once)."""
    _WAITING.setdefault(event, []).append(callback)


def record_progress(path: str, cell=None, cell_index=None, **_kw) -> None:
    """nbclient ``on_cell_start`` hook: note which cell is running, and when."""
    meta = cell.metadata.get("nbgrader", {}) if cell is not None else {}
    label = meta.get("grade_id") or f"cell {cell_index}"
    if cell is not None and cell.cell_type == "code" and cell.source.strip():
        _TIMELINE.append((label, time.monotonic()))
    with contextlib.suppress(OSError):
        Path(path).write_text(json.dumps({"cell": cell_index, "label": label}))


def record_kernel_ready(**_kw) -> None:
    """nbclient ``on_notebook_start`` hook: the kernel answered."""
    mark(KERNEL_READY)


def record_cell_done(**_kw) -> None:
    """nbclient ``on_cell_executed`` hook: the running cell finished."""
    mark(CELL_DONE)


def mark(event: str) -> None:
    """Note that ``event`` (one of the ``<...>`` marks) happened now, and call
    what waited for it (:func:`when`)."""
    if _RECORDING:
        _TIMELINE.append((event, time.monotonic()))
    for callback in _WAITING.pop(event, []):
        callback()


def _first(events, name: str) -> float | None:
    return next((t for label, t in events if label == name), None)


def _span(events, start: str, end: str) -> float:
    t0, t1 = _first(events, start), _first(events, end)
    return t1 - t0 if t0 is not None and t1 is not None and t1 >= t0 else 0.0


def _cells(events) -> dict[str, float]:
    """Seconds per cell label: from its start to the next event."""
    cells: dict[str, float] = {}
    for (label, t0), (_, t1) in zip(events, events[1:], strict=False):
        if not label.startswith("<"):
            cells[label] = cells.get(label, 0.0) + (t1 - t0)
    return cells


def phases(started: float, ended: float) -> dict[str, float]:
    """Seconds of each of :data:`PHASES` in the task that ran from ``started``
    to ``ended``; the verified run may overlap the notebook's (then the phases
    add up to more than the task's wall time)."""
    events = sorted(_TIMELINE, key=lambda e: e[1])
    launch = _first(events, KERNEL_LAUNCH)
    cells = _cells([e for e in events if not e[0].startswith("<verify")])
    setup = cells.pop(SETUP_CELL, 0.0)
    notebook_end = _first(events, NOTEBOOK_DONE)
    last_cell = max((t for label, t in events if label == CELL_DONE), default=None)
    verify_end = _first(events, VERIFY_END)
    ends = [t for t in (notebook_end, verify_end) if t is not None]
    return {
        "prepare": (launch - started) if launch is not None else 0.0,
        "kernel start": _span(events, KERNEL_LAUNCH, KERNEL_READY),
        "setup cell": setup,
        "notebook cells": sum(cells.values()),
        "nbgrader after cells": (
            notebook_end - last_cell
            if notebook_end is not None and last_cell is not None
            else 0.0
        ),
        "runner start + load": _span(events, VERIFY_START, RUNNER_LOADED),
        "verified checks": _span(events, RUNNER_LOADED, VERIFY_END),
        "outcome": ended - max(ends) if ends else 0.0,
    }


def timing(started: float, ended: float) -> dict:
    """Where a task's time went: setup and kernel start, cells, the rest."""
    notebook = [e for e in _TIMELINE if not e[0].startswith("<verify")]
    notebook = sorted(notebook, key=lambda e: e[1])
    ready = _first(notebook, KERNEL_READY)
    end = _first(notebook, NOTEBOOK_DONE) or ended
    cells = _cells([*notebook, ("<end>", end)])
    slowest = sorted(cells.items(), key=lambda kv: -kv[1])[:3]
    return {
        "until_kernel_ready": round(ready - started, 3) if ready else None,
        "cells": round(sum(cells.values()), 3),
        "total": round(ended - started, 3),
        "slowest_cells": [[label, round(t, 3)] for label, t in slowest],
        "phases": {k: round(v, 3) for k, v in phases(started, ended).items()},
    }


def where(progress_file: Path) -> str:
    try:
        data = json.loads(progress_file.read_text())
    except (OSError, ValueError):
        return "before the first cell ran"
    label = data["label"]
    index = data["cell"]
    if label == f"cell {index}":
        return f"while running cell {index}"
    return f"while running cell {index} ({label})"
