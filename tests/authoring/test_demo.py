"""``python -m autograder demo``: release, grade, feedback, export on a demo class."""

from __future__ import annotations

import csv
import html

import pytest
from conftest import hidden_lines, visible_text
from fixture_course import FIXTURE

from autograder import REPO_ROOT
from autograder.authoring.demo import build_demo, load_mistakes
from autograder.cli import main
from autograder.course import list_assignments
from autograder.errors import UsageError

pytestmark = pytest.mark.slow


def _check_reports(dest, source_dir):
    lines = hidden_lines(source_dir)
    reports = sorted((dest / "feedback").rglob("*.html"))
    assert reports
    for path in reports:
        raw = path.read_text()
        seen = visible_text(raw)
        for line in lines:
            assert line not in seen and html.escape(line) not in raw, (path, line)
    return reports


def test_demo_on_the_fixture_course_runs_every_step(tmp_path, capsys):
    dest = build_demo(
        tmp_path / "demo",
        source_root=FIXTURE,
        mistakes_dir=FIXTURE / "mistakes",
        progress=False,
    )
    out = capsys.readouterr().out
    assert (dest / "release" / "mini" / "mini.ipynb").is_file()
    students = {"reference", "blank"} | {
        f"mistake-{m['name']}" for m in load_mistakes("mini", FIXTURE / "mistakes")
    }
    rows = {
        r["student"]: r
        for r in csv.DictReader((dest / "grades-by-function.csv").open())
    }
    assert set(rows) == students
    assert rows["reference"]["total"] == "30" and rows["blank"]["total"] == "0"
    assert all(rows[s]["total"] == "20" for s in students if s.startswith("mistake-"))
    assert len(_check_reports(dest, dest / "source")) == len(students)
    for word in ("== release", "== grade", "== feedback", "== export", "reports (4)"):
        assert word in out


def test_demo_refuses_to_overwrite_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a demo folder"):
        build_demo(tmp_path, source_root=FIXTURE, mistakes_dir=FIXTURE / "mistakes")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_on_a_real_assignment_through_the_cli(tmp_path, capsys):
    real = [a for a in list_assignments(REPO_ROOT) if load_mistakes(a)]
    if not real:
        pytest.skip("no assignment with typical mistakes under source/ yet")
    assignment = real[0]
    dest = tmp_path / "demo"
    assert main(["demo", assignment, "--dir", str(dest)]) == 0
    out = capsys.readouterr().out
    expected = 2 + len(load_mistakes(assignment))
    assert f"{expected} submission(s)" in out
    _check_reports(dest, REPO_ROOT / "source")
    rows = list(csv.DictReader((dest / "grades-by-function.csv").open()))
    assert {r["student"] for r in rows} >= {"reference", "blank"}
