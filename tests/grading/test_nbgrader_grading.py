"""Every assignment through the real nbgrader: reference, blank release, mistakes.

For each assignment a scratch course is built from ``source/``; nbgrader
generates the release and autogrades, in real kernels:

- the source notebook itself (reference solutions): full marks;
- the untouched release: zero, and ``NotImplementedError`` is the only error;
- each typical mistake of ``tests/files/mistakes/<id>.json``: the total minus the
  points of exactly the cells it breaks, with a visible-check message that names
  the mistake's location.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import (
    apply_mistake,
    assignments,
    cell_output_text,
    load_mistakes,
    source_notebook,
)

from autograder.course import Course

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=assignments())
def graded(request, tmp_path_factory):
    """Grade the reference, the blank release and every mistake of one assignment."""
    assignment = request.param
    course = Course(tmp_path_factory.mktemp(assignment), [assignment])
    release_dir = course.generate(assignment)
    name = f"{assignment}.ipynb"
    source = nbformat.read(str(source_notebook(assignment)), as_version=4)
    students = {
        "reference": source,
        "blank": nbformat.read(str(release_dir / name), as_version=4),
    }
    mistakes = {m["name"]: m for m in load_mistakes(assignment)}
    for mistake in mistakes.values():
        students[f"mistake-{mistake['name']}"] = apply_mistake(source, mistake)
    results = {}
    for student, nb in students.items():
        course.submit(student, assignment, {name: nb})
        outcome = course.autograde(assignment, student)
        assert outcome["success"], outcome.get("error") or outcome.get("log")
        results[student] = (
            course.scores(assignment, student),
            course.autograded_notebook(assignment, student, name),
        )
    return assignment, results, mistakes


def _autograded(scores):
    """The autograded cells (written answers are graded by a person)."""
    return {k: s for k, s in scores.items() if not k.startswith("written_")}


def _total(scores):
    values = _autograded(scores).values()
    return sum(s.score for s in values), sum(s.max_score for s in values)


def test_reference_solutions_get_full_marks(graded):
    assignment, results, _ = graded
    scores, _ = results["reference"]
    got, full = _total(scores)
    lost = {
        k: s.score for k, s in _autograded(scores).items() if s.score != s.max_score
    }
    assert full == 100, f"{assignment}: points add up to {full}, expected 100"
    assert got == full, f"{assignment}: reference lost points in {lost}"
    written = {
        k: s.max_score for k, s in scores.items() if k not in _autograded(scores)
    }
    assert list(written.values()) == [5], f"{assignment}: written cells {written}"


def test_untouched_release_scores_zero_with_only_not_implemented(graded):
    assignment, results, _ = graded
    scores, nb = results["blank"]
    got, _ = _total(scores)
    assert got == 0, f"{assignment}: blank release earned {got} points"
    errors = set()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.add(output.ename)
    assert errors == {"NotImplementedError"}, f"{assignment}: errors {errors}"


def test_each_typical_mistake_loses_exactly_its_points(graded):
    assignment, results, mistakes = graded
    if not mistakes:
        pytest.fail(f"{assignment} defines no typical-mistake submissions")
    table, problems = [], []
    for name, mistake in mistakes.items():
        scores, nb = results[f"mistake-{name}"]
        got, full = _total(scores)
        broken = set(mistake["breaks"])
        want = full - sum(scores[b].max_score for b in broken)
        lost = sorted(
            k for k, s in _autograded(scores).items() if s.score < s.max_score
        )
        table.append(f"{name:45s} {got:5.1f} / {full:.0f}   lost: {', '.join(lost)}")
        if got != want or set(lost) != broken:
            problems.append(f"{name}: scored {got}, expected {want}; lost {lost}")
            continue
        first = next(
            c
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == mistake["breaks"][0]
        )
        text = cell_output_text(first)
        if mistake.get("message") and mistake["message"] not in text:
            problems.append(
                f"{name}: the output of {mistake['breaks'][0]} does not mention "
                f"{mistake['message']!r}:\n{text[-800:]}"
            )
    print(f"\n{assignment} mistake scores:\n  " + "\n  ".join(table))
    assert not problems, "\n".join(problems)
