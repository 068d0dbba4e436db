"""The fixture course (``tests/files/course_fixture``) and its scenario submissions.

Assignment ``mini``: three functions, 10 points each. Each scenario is a
submission made from the fixture's source or release notebook; its expected
outcome, score and words in the reason travel with it (:data:`SCENARIOS`).
Limits are small so that the runaway scenarios are quick: 3 s per cell, 12 s
per notebook.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import nbformat

from autograder.authoring.demo import apply_mistake, load_mistakes
from autograder.cli import main

FIXTURE = Path(__file__).parent / "files" / "course_fixture"
ASSIGNMENT = "mini"
NOTEBOOK = "mini.ipynb"
CELL_LIMIT = 3
NOTEBOOK_LIMIT = 12
LIMITS = ["--cell-timeout", str(CELL_LIMIT), "--notebook-timeout", str(NOTEBOOK_LIMIT)]


# --------------------------------------------------------------------------
# Scenario submissions, made from the fixture's source and release
# --------------------------------------------------------------------------


def source_nb():
    return nbformat.read(str(FIXTURE / "source" / ASSIGNMENT / NOTEBOOK), 4)


def release_nb():
    return nbformat.read(str(FIXTURE / "release" / ASSIGNMENT / NOTEBOOK), 4)


def cell(nb, grade_id):
    (found,) = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    ]
    return found


def mistake(name):
    (found,) = [
        m for m in load_mistakes(ASSIGNMENT, FIXTURE / "mistakes") if m["name"] == name
    ]
    return apply_mistake(source_nb(), found)


def deleted_test_cell():
    nb = mistake("mean-divides-by-n-minus-1")
    nb.cells.remove(cell(nb, "test_mean"))
    return nb


def edited_test_cell():
    nb = mistake("mean-divides-by-n-minus-1")
    cell(nb, "test_mean").source = "pass"
    return nb


def changed_points():
    nb = mistake("relu-uses-abs")
    cell(nb, "test_relu").metadata["nbgrader"]["points"] = 0
    cell(nb, "test_square").metadata["nbgrader"]["points"] = 100
    return nb


def infinite_loop():
    nb = source_nb()
    target = cell(nb, "square")
    target.source = "while True:\n    pass\n" + target.source
    return nb


def os_exit():
    nb = source_nb()
    target = cell(nb, "mean")
    target.source = "import os\nos._exit(1)\n" + target.source
    return nb


def duplicate_grade_id():
    nb = source_nb()
    original = cell(nb, "square")
    nb.cells.insert(nb.cells.index(original) + 1, copy.deepcopy(original))
    return nb


def notebook_wallclock():
    # Six pauses of 2.5 s: each under the 3 s cell limit, together over 12 s.
    nb = source_nb()
    for grade_id in ("square", "mean", "relu"):
        target = cell(nb, grade_id)
        target.source = "import time\ntime.sleep(2.5)\n" + target.source
        index = nb.cells.index(target)
        nb.cells.insert(index, nbformat.v4.new_code_cell("time.sleep(2.5)"))
    nb.cells.insert(1, nbformat.v4.new_code_cell("import time"))
    return nb


def _json(nb) -> bytes:
    return nbformat.writes(nb).encode()


#: scenario -> (files, expected outcome, expected score, words in the reason)
SCENARIOS = {
    "reference": (lambda: {NOTEBOOK: _json(source_nb())}, "graded", 30, []),
    "blank": (lambda: {NOTEBOOK: _json(release_nb())}, "graded", 0, []),
    "mistake-mean-divides-by-n-minus-1": (
        lambda: {NOTEBOOK: _json(mistake("mean-divides-by-n-minus-1"))},
        "graded",
        20,
        [],
    ),
    "mistake-relu-uses-abs": (
        lambda: {NOTEBOOK: _json(mistake("relu-uses-abs"))},
        "graded",
        20,
        [],
    ),
    "deleted-test-cell": (
        lambda: {NOTEBOOK: _json(deleted_test_cell())},
        "graded",
        20,
        [],
    ),
    "edited-test-cell": (
        lambda: {NOTEBOOK: _json(edited_test_cell())},
        "graded",
        20,
        [],
    ),
    "changed-points": (lambda: {NOTEBOOK: _json(changed_points())}, "graded", 20, []),
    "renamed-notebook": (
        lambda: {"mini-Copy1.ipynb": _json(source_nb())},
        "unknown/renamed notebook",
        0,
        ["found mini-Copy1.ipynb", "expected mini.ipynb"],
    ),
    "invalid-json": (
        lambda: {NOTEBOOK: b'{"cells": [{"cell_type": "code",'},
        "invalid notebook JSON",
        0,
        ["not valid JSON", "line 1"],
    ),
    "empty-file": (lambda: {NOTEBOOK: b""}, "invalid notebook JSON", 0, ["empty"]),
    "missing-notebook": (
        lambda: {"notes.txt": b"I ran out of time."},
        "missing notebook",
        0,
        ["no mini.ipynb"],
    ),
    "infinite-loop": (
        lambda: {NOTEBOOK: _json(infinite_loop())},
        "timed out",
        20,
        [f"cell limit ({CELL_LIMIT} s)", "(square)", "other cells were graded"],
    ),
    "os-exit": (
        lambda: {NOTEBOOK: _json(os_exit())},
        "kernel died",
        0,
        ["kernel died", "(mean)"],
    ),
    "duplicate-grade-id": (
        lambda: {NOTEBOOK: _json(duplicate_grade_id())},
        "graded",
        30,
        ["square", "more than once", "last cell"],
    ),
    "notebook-wallclock": (
        lambda: {NOTEBOOK: _json(notebook_wallclock())},
        "timed out",
        0,
        [f"notebook limit ({NOTEBOOK_LIMIT} s)"],
    ),
}


def build_course(root: Path, scenarios=SCENARIOS) -> Path:
    """A course folder with the fixture's source and release and one
    submission per scenario (the student id is the scenario name)."""
    shutil.copytree(FIXTURE / "source", root / "source")
    shutil.copytree(FIXTURE / "release", root / "release")
    for student, (files, *_rest) in scenarios.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, data in files().items():
            (folder / name).write_bytes(data)
    return root


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def export_text(course: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["export", "--course", str(course)]) == 0
    return capsys.readouterr().out
