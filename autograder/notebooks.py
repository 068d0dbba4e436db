"""Notebook hygiene: what a committed source or companion notebook may contain.

Committed notebooks carry no outputs, no execution counts, notebook metadata
reduced to the kernel and language, and cell metadata reduced to ``nbgrader``
and ``tags`` (nbgrader's key must survive: it marks solution and test cells).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

__all__ = ["clean_notebook", "hygiene_problems", "clean_files"]

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
KEPT_CELL_KEYS = ("nbgrader", "tags")


def clean_notebook(nb):
    """Return ``nb`` with outputs and volatile metadata removed (in place too)."""
    nb.metadata = nbformat.from_dict(
        {
            "kernelspec": dict(nb.metadata.get("kernelspec") or KERNELSPEC),
            "language_info": {"name": "python"},
        }
    )
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {k: cell.metadata[k] for k in KEPT_CELL_KEYS if k in cell.metadata}
        )
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def hygiene_problems(path: Path) -> list[str]:
    """List what makes a committed notebook unclean (empty list: clean)."""
    nb = nbformat.read(str(path), as_version=4)
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                problems.append(f"{path}: cell {index} has outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"{path}: cell {index} has an execution count")
        extra = set(cell.metadata) - set(KEPT_CELL_KEYS)
        if extra:
            problems.append(f"{path}: cell {index} has metadata {sorted(extra)}")
    extra = set(nb.metadata) - {"kernelspec", "language_info"}
    if extra:
        problems.append(f"{path}: notebook metadata {sorted(extra)}")
    return problems


def clean_files(paths) -> list[Path]:
    """Clean notebooks in place; return the ones that changed."""
    changed = []
    for path in map(Path, paths):
        before = path.read_text(encoding="utf-8")
        nb = clean_notebook(nbformat.read(str(path), as_version=4))
        after = nbformat.writes(nb) + "\n"
        if after != before:
            path.write_text(after, encoding="utf-8")
            changed.append(path)
    return changed
