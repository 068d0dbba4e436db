"""``report``: a class report page per assignment, from a real gradebook.

The class is written with nbgrader's Gradebook API (no kernels) plus the
``grading_outcomes.json`` records that ``grade`` writes beside it; one student
id and one check message are HTML payloads, which must come out as text.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course import _ensure_tools_on_path
from autograder.report import collect, render_page

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

EVIL_ID = '<img src=x onerror="alert(1)">'
EVIL_MESSAGE = "expected 3.0 <script>alert('m')</script> $x^2$"
CELLS = {"test_f": 10, "test_g": 10, "written_q": 5}


def _record(student, outcome, score, cells=None, flags=None, reason=""):
    return {
        "student": student,
        "assignment": "a1",
        "outcome": outcome,
        "reason": reason,
        "score": score,
        "max_score": 25.0,
        "scores": {},
        "cells": cells or {},
        "flags": {
            "disagreement": [],
            "unsandboxed": False,
            "refused": False,
            "not_checked": [],
            **(flags or {}),
        },
    }


def _failed(message):
    return {"visible": "failed", "hidden": "failed", "message": message}


RECORDS = [
    _record("ada", "graded", 25.0, {"test_f": {"visible": "passed"}}),
    _record("bob", "graded", 10.0, {"test_f": _failed("expected 3.0")}),
    _record(
        "cy",
        "graded",
        0.0,
        {"test_f": _failed("expected 3.0"), "test_g": _failed(EVIL_MESSAGE)},
        flags={"disagreement": ["test_g"], "unsandboxed": True},
    ),
    _record(EVIL_ID, "refused", 0.0, flags={"refused": True}, reason="a symlink"),
    _record("dee", "timed out", 10.0),
]
#: student -> (test_f, test_g, written_q); None: not graded by hand yet.
SCORES = {
    "ada": (10.0, 10.0, 5.0),
    "bob": (0.0, 10.0, None),
    "cy": (0.0, 0.0, None),
    EVIL_ID: (0.0, 0.0, 0.0),
    "dee": (10.0, 0.0, None),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """One gradebook for the module (nbgrader creates it through alembic: slow)."""
    from nbgrader.api import Gradebook

    tmp_path = tmp_path_factory.mktemp("class")

    _ensure_tools_on_path()
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", "") as gb:
        gb.add_assignment("a1", duedate=datetime(2026, 1, 10))
        gb.add_notebook("a1", "a1")
        for gid, points in CELLS.items():
            kind = "markdown" if gid.startswith("written") else "code"
            gb.add_grade_cell(gid, "a1", "a1", max_score=points, cell_type=kind)
        for student, values in SCORES.items():
            gb.add_student(student)
            sub = gb.add_submission("a1", student)
            for grade in sub.notebooks[0].grades:
                grade.auto_score = dict(zip(CELLS, values, strict=True))[grade.name]
                grade.needs_manual_grade = grade.auto_score is None
            gb.db.commit()
    (tmp_path / "grading_outcomes.json").write_text(json.dumps(RECORDS))
    return tmp_path


def test_collect_counts_outcomes_scores_pass_rates_and_messages(course):
    (data,) = collect(course).values()
    assert data.name == "a1" and data.max_score == 25
    assert data.scores == {"ada": 25, "bob": 10, "cy": 0, EVIL_ID: 0, "dee": 10}
    assert data.outcomes == {"graded": 3, "refused": 1, "timed out": 1}
    f, g, written = (data.cells[gid] for gid in CELLS)
    assert (f.full, f.partial_or_zero, f.pass_rate) == (2, 3, 0.4)
    assert (g.full, g.partial_or_zero) == (2, 3)
    assert (written.full, written.partial_or_zero, written.ungraded) == (1, 1, 3)
    assert data.messages.most_common(1) == [(("test_f", "expected 3.0"), 2)]
    assert data.messages[("test_g", EVIL_MESSAGE)] == 1
    assert [r["student"] for r in data.flagged] == [EVIL_ID, "cy"]  # by id


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_page_shows_counts_and_flags_and_escapes_student_text(course):
    page = render_page(collect(course)["a1"])
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "&lt;script&gt;alert(&#x27;m&#x27;)&lt;/script&gt;" in page
    text = _text(page)
    assert "5 submissions; mean 9.0, median 10 of 25 points." in text
    assert "refused 1" in text and "timed out 1" in text and "graded 3" in text
    assert "test_f 10 40 % 2 3 0" in text
    assert "written_q 5 50 % 1 1 3" in text
    assert "1 test_f 2 expected 3.0" in text
    assert "disagreement: test_g" in text and "unsandboxed" in text
    assert "Flagged submissions (2)" in text


def test_every_plot_is_an_embedded_png(course):
    page = render_page(collect(course)["a1"])
    sources = re.findall(r'<img class="plot" alt="[^"]*" src="([^"]+)"', page)
    assert len(sources) == 4  # outcomes, histogram, pass rates, messages
    for uri in sources:
        head, data = uri.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"<img (?![^>]*class=\"plot\")", page) is None


def test_command_writes_one_page_per_assignment(course, tmp_path, capsys):
    out = tmp_path / "pages"
    assert main(["report", "--course", str(course), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["a1.html"]
    assert "wrote 1 page(s)" in capsys.readouterr().out
    assert "Content-Security-Policy" in (out / "a1.html").read_text()
