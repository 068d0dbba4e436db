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

__all__ = ["record_kernel_ready", "record_progress", "reset", "timing", "where"]

#: (event, monotonic time) of the notebook being graded in this process.
_TIMELINE: list[tuple[str, float]] = []


def reset() -> None:
    """Forget the timeline of a previous notebook (a worker grades one task)."""
    _TIMELINE.clear()


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
    _TIMELINE.append(("<kernel ready>", time.monotonic()))


def timing(started: float, ended: float) -> dict:
    """Where a task's time went: setup and kernel start, cells, the rest."""
    events = [*_TIMELINE, ("<end>", ended)]
    ready = [t for label, t in events if label == "<kernel ready>"]
    cells: dict[str, float] = {}
    for (label, t0), (_, t1) in zip(events, events[1:], strict=False):
        if label not in ("<kernel ready>", "<end>"):
            cells[label] = cells.get(label, 0.0) + (t1 - t0)
    slowest = sorted(cells.items(), key=lambda kv: -kv[1])[:3]
    return {
        "until_kernel_ready": round(ready[0] - started, 3) if ready else None,
        "cells": round(sum(cells.values()), 3),
        "total": round(ended - started, 3),
        "slowest_cells": [[label, round(t, 3)] for label, t in slowest],
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
