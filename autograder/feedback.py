"""One HTML feedback report per student and assignment, without hidden tests.

``python -m autograder feedback`` writes ``feedback/<student>/<assignment>/<nb>.html``:
a table of the graded functions (points and the first line of what the visible
check said), then the autograded notebook rendered by nbconvert.

nbgrader's stock feedback shows the hidden tests, and even with
``ClearHiddenTests`` the tracebacks of failed test cells quote them (IPython
prints the lines around the failing one). Here, before rendering:

- hidden-test regions are cut from every cell (nbgrader's ``ClearHiddenTests``);
- in every traceback, the frames of test cells and of grader code
  (``autograder/``, ``source/``) are dropped; frames of the student's own cells
  stay, and the last line ``ename: evalue`` says what failed.
"""

from __future__ import annotations

import copy
import html
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from . import REPO_ROOT
from .grade import load_outcomes

__all__ = [
    "check_messages",
    "generate_feedback",
    "graded_cells",
    "strip_hidden_tests",
]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_FRAME = re.compile(r"^\s*Cell\s+In\s*\[(\d+)\]")
FILE_FRAME = re.compile(r"^\s*File\s+(.+?):\d+")
MESSAGE_CHARS = 240
#: Paths whose source must not appear in a report (hidden tests, solutions).
PRIVATE_PATHS = (str(Path(__file__).resolve().parent), str(REPO_ROOT / "source"))


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _is_test(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("grade"))


def graded_cells(nb) -> list:
    """The graded (test) cells of a notebook, in order."""
    return [cell for cell in nb.cells if _is_test(cell) and _grade_id(cell)]


def _shorten(text: str, lines: int = 2) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    text = " / ".join(kept[:lines])
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def check_messages(nb) -> dict[str, str]:
    """What each test cell said: its error, else the last line it printed."""
    messages = {}
    for cell in graded_cells(nb):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        stderr = [
            o.text
            for o in cell.get("outputs", [])
            if o.output_type == "stream" and o.get("name") == "stderr"
        ]
        stdout = "".join(
            o.text
            for o in cell.get("outputs", [])
            if o.output_type == "stream" and o.get("name") == "stdout"
        )
        if errors:
            error = errors[-1]
            messages[_grade_id(cell)] = _shorten(f"{error.ename}: {error.evalue}")
        elif stderr:
            messages[_grade_id(cell)] = _shorten("stderr: " + "".join(stderr))
        elif stdout.strip():
            last = stdout.strip().splitlines()[-1]
            messages[_grade_id(cell)] = _shorten(last, lines=1)
        else:
            messages[_grade_id(cell)] = ""
    return messages


def _private_file(path: str, private: Sequence[str]) -> bool:
    path = os.path.realpath(path.strip())
    return any(path.startswith(prefix) for prefix in private)


def _clean_traceback(output, test_counts: set[int], private: Sequence[str]) -> None:
    kept = []
    dropped = 0
    for entry in output.get("traceback", []):
        plain = ANSI.sub("", entry)
        cell = CELL_FRAME.match(plain)
        file = FILE_FRAME.match(plain)
        if cell is not None:
            if int(cell.group(1)) in test_counts:
                dropped += 1
                continue
        elif file is not None:
            if _private_file(file.group(1), private):
                dropped += 1
                continue
        elif "Traceback (most recent call last)" not in plain and not set(
            plain.strip()
        ) <= {"-"}:
            # The closing "ename: evalue" line is re-added below; anything else
            # unrecognised is dropped rather than risk quoting a hidden line.
            continue
        kept.append(entry)
    if dropped:
        kept.append("(frames of the test cell and of the grader are not shown)")
    kept.append(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
    output["traceback"] = kept


def strip_hidden_tests(nb, private: Sequence[str] = PRIVATE_PATHS):
    """Return a copy of an autograded notebook that is safe to show a student.

    Args:
        nb: the autograded notebook (not modified).
        private: folders whose files' lines must not be quoted in tracebacks.
    """
    from nbgrader.preprocessors import ClearHiddenTests

    nb = copy.deepcopy(nb)
    test_counts = {
        cell.execution_count
        for cell in nb.cells
        if cell.cell_type == "code" and _is_test(cell) and cell.execution_count
    }
    ClearHiddenTests(enforce_metadata=False).preprocess(nb, {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                _clean_traceback(output, test_counts, private)
    return nb


def _header(student, assignment, outcome, reason, rows) -> str:
    total = sum(score or 0 for _, score, _, _ in rows)
    full = sum(points for _, _, points, _ in rows)
    body = "".join(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>".format(
            html.escape(name),
            "–" if score is None else f"{score:g} / {points:g}",
            html.escape(message),
        )
        for name, score, points, message in rows
    )
    note = f"<p><b>{html.escape(outcome)}</b>"
    note += f": {html.escape(reason)}</p>" if reason else "</p>"
    return (
        '<div class="autograder-feedback" style="font-family: sans-serif; '
        'max-width: 60em; margin: 1em auto;">'
        f"<h1>{html.escape(assignment)} — {html.escape(student)}</h1>{note}"
        '<table border="1" cellpadding="4" style="border-collapse: collapse;">'
        "<thead><tr><th>graded function</th><th>points</th>"
        "<th>what the check said</th></tr></thead>"
        f"<tbody>{body}</tbody><tfoot><tr><th>total</th>"
        f"<th>{total:g} / {full:g}</th><th></th></tr></tfoot></table>"
        "<p>The code of the graded (hidden) tests is not shown; they use other "
        "inputs than the visible checks.</p></div>"
    )


def _function_name(grade_id: str) -> str:
    return grade_id[5:] if grade_id.startswith("test_") else grade_id


def render_report(
    nb, student, assignment, outcome, reason, scores, private=PRIVATE_PATHS
) -> str:
    """HTML for one notebook: the score table, then the notebook (if any)."""
    from nbconvert import HTMLExporter

    messages = check_messages(nb) if nb is not None else {}
    rows = [
        (_function_name(gid), score, points, messages.get(gid, ""))
        for gid, (score, points) in scores.items()
    ]
    header = _header(student, assignment, outcome, reason, rows)
    if nb is None:
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(assignment)}</title></head><body>{header}"
            "<p>No notebook could be graded.</p></body></html>"
        )
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        strip_hidden_tests(nb, private)
    )
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, body, count=1)


def _gradebook_scores(course_root: Path, course_id: str) -> dict:
    """``{(student, assignment): {notebook: {grade_id: (score, max)}}}``."""
    from nbgrader.api import Gradebook

    path = Path(course_root) / "gradebook.db"
    if not path.is_file():
        return {}
    found: dict = {}
    with Gradebook(f"sqlite:///{path}", course_id) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                per_nb = found.setdefault((submission.student.id, assignment.name), {})
                for nb in submission.notebooks:
                    per_nb[nb.name] = {
                        g.name: (
                            None if g.score is None else float(g.score),
                            float(g.max_score),
                        )
                        for g in nb.grades
                    }
    return found


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)


def generate_feedback(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    students: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write a report for every graded submission; return the files written."""
    from .course import course_config

    course_root = Path(course_root).resolve()
    course_id = course_config(course_root).CourseDirectory.get("course_id", "") or ""
    outcomes = load_outcomes(course_root)
    gradebook = _gradebook_scores(course_root, course_id)
    private = (*PRIVATE_PATHS, str(course_root / "source"))
    written = []
    for student, assignment in sorted(set(gradebook) | set(outcomes)):
        if assignments and assignment not in assignments:
            continue
        if students and student not in students:
            continue
        record = outcomes.get((student, assignment), {})
        outcome = record.get("outcome", "graded")
        reason = record.get("reason", "")
        per_nb = gradebook.get((student, assignment), {})
        names = sorted(per_nb) or [assignment]
        for name in names:
            scores = _ordered(per_nb.get(name), record.get("scores", {}))
            autograded = (
                course_root / "autograded" / student / assignment / f"{name}.ipynb"
            )
            nb = None
            if autograded.is_file():
                nb = nbformat.read(str(autograded), as_version=4)
                order = [_grade_id(c) for c in graded_cells(nb)]
                scores = {g: scores[g] for g in order if g in scores} | scores
            text = render_report(
                nb, student, assignment, outcome, reason, scores, private
            )
            out = course_root / "feedback" / student / assignment / f"{name}.html"
            _write(out, text)
            written.append(out)
    log(f"wrote {len(written)} report(s) under {course_root / 'feedback'}")
    return written


def _ordered(from_db: dict | None, from_outcomes: dict) -> dict:
    if from_db:
        return dict(from_db)
    return {gid: (s, m) for gid, (s, m) in from_outcomes.items()}
