"""A class report: one self-contained HTML page per assignment, for instructors.

``python -m autograder report [--course DIR] [--out DIR]`` reads the course's
``gradebook.db`` (nbgrader's Gradebook API: the scores that count) and
``grading_outcomes.json`` (what grading found: outcomes, per-cell visible and
hidden results, messages, flags) and writes ``<out>/<assignment>.html`` with:

- the outcome counts (graded, refused, timed out, …) and a score histogram;
- the pass rate of every graded cell (full marks; a manually graded cell that is
  not graded yet is counted apart);
- the most common visible-check messages among submissions whose visible check
  failed, cell by cell;
- the flagged submissions (disagreement, unsandboxed, refused).

Plots are PNG images inside the page (``data:`` URIs), so the page is one file
that opens offline. Every string that a student can influence (ids, messages,
reasons) is HTML-escaped, and a Content-Security-Policy allows no script and no
request at all.
"""

from __future__ import annotations

import base64
import html
import io
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .grading.outcomes import OUTCOMES, load_outcomes

__all__ = ["AssignmentData", "collect", "render_page", "write_report"]

#: How many distinct failing messages each page lists.
TOP_MESSAGES = 10
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class CellStats:
    """How one graded cell did across the class."""

    max_score: float
    full: int = 0
    partial_or_zero: int = 0
    ungraded: int = 0  # a manually graded cell nobody has graded yet

    @property
    def graded(self) -> int:
        return self.full + self.partial_or_zero

    @property
    def pass_rate(self) -> float | None:
        return self.full / self.graded if self.graded else None


@dataclass
class AssignmentData:
    """What one assignment's page shows (gathered by :func:`collect`)."""

    name: str
    max_score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)  # student -> total
    cells: dict[str, CellStats] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    messages: Counter = field(default_factory=Counter)  # (grade id, message) -> n
    flagged: list[dict] = field(default_factory=list)


def _gradebook(course_root: Path, course_id: str) -> dict[str, AssignmentData]:
    from nbgrader.api import Gradebook

    from .course import _ensure_tools_on_path

    path = Path(course_root) / "gradebook.db"
    found: dict[str, AssignmentData] = {}
    if not path.is_file():
        return found
    _ensure_tools_on_path()  # nbgrader runs `alembic` to check the database
    with Gradebook(f"sqlite:///{path}", course_id) as gb:
        for assignment in gb.assignments:
            data = found.setdefault(assignment.name, AssignmentData(assignment.name))
            data.max_score = float(assignment.max_score)
            for notebook in assignment.notebooks:
                for cell in notebook.grade_cells:
                    data.cells.setdefault(cell.name, CellStats(float(cell.max_score)))
            for submission in assignment.submissions:
                data.scores[submission.student.id] = float(submission.score)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        stats = data.cells.setdefault(
                            grade.name, CellStats(float(grade.max_score))
                        )
                        if grade.needs_manual_grade:
                            stats.ungraded += 1
                        elif float(grade.score) >= float(grade.max_score):
                            stats.full += 1
                        else:
                            stats.partial_or_zero += 1
    return found


def collect(course_root: Path, course_id: str = "") -> dict[str, AssignmentData]:
    """Gather every assignment's data from the gradebook and the outcomes file."""
    data = _gradebook(course_root, course_id)
    for (student, assignment), record in sorted(load_outcomes(course_root).items()):
        page = data.setdefault(assignment, AssignmentData(assignment))
        page.outcomes[record.get("outcome", "graded")] += 1
        if student not in page.scores:
            page.scores[student] = float(record.get("score") or 0.0)
        if not page.max_score:
            page.max_score = float(record.get("max_score") or 0.0)
        for gid, cell in (record.get("cells") or {}).items():
            if cell.get("visible") == "failed":
                message = (cell.get("message") or "").strip() or "(no message)"
                page.messages[(gid, message)] += 1
        flags = record.get("flags") or {}
        if (
            flags.get("disagreement")
            or flags.get("unsandboxed")
            or flags.get("refused")
        ):
            page.flagged.append(record)
    return data


# --------------------------------------------------------------------------
# Plots (matplotlib's object API: no pyplot state, no display needed)
# --------------------------------------------------------------------------


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(height: float = 3.2):
    import matplotlib
    from matplotlib.figure import Figure

    # Labels hold student text: never read "$...$" in it as maths.
    matplotlib.rcParams["text.parse_math"] = False
    fig = Figure(figsize=(7, height))
    return fig, fig.add_subplot()


def histogram_png(scores: Sequence[float], max_score: float) -> str:
    fig, ax = _figure()
    top = max([max_score, *scores, 1.0])
    ax.hist(list(scores), bins=min(20, max(5, int(top) // 5)), range=(0, top))
    ax.set_xlabel("total score")
    ax.set_ylabel("submissions")
    ax.set_title(f"Scores ({len(scores)} submissions, out of {max_score:g})")
    return _png(fig)


def pass_rate_png(cells: dict[str, CellStats]) -> str:
    names = [g for g, s in cells.items() if s.pass_rate is not None]
    fig, ax = _figure(max(2.0, 0.35 * len(names) + 1))
    rates = [100 * cells[g].pass_rate for g in names]
    ax.barh(names[::-1], rates[::-1], color="tab:green")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions with full marks")
    ax.set_title("Pass rate per graded cell")
    return _png(fig)


def outcomes_png(outcomes: Counter) -> str:
    known = [o for o in OUTCOMES if outcomes.get(o)]
    labels = known + sorted(set(outcomes) - set(known))
    fig, ax = _figure(max(2.0, 0.35 * len(labels) + 1))
    ax.barh(labels[::-1], [outcomes[o] for o in labels][::-1], color="tab:blue")
    ax.set_xlabel("submissions")
    ax.set_title("Outcomes")
    return _png(fig)


def messages_png(messages: Counter, top: int = TOP_MESSAGES) -> str:
    common = messages.most_common(top)
    labels = [f"{i + 1}. {gid}" for i, ((gid, _), _) in enumerate(common)]
    fig, ax = _figure(max(2.0, 0.35 * len(labels) + 1))
    ax.barh(labels[::-1], [n for _, n in common][::-1], color="tab:red")
    ax.set_xlabel("failing submissions")
    ax.set_title("Most common visible-check failures (messages in the table)")
    return _png(fig)


# --------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _img(uri: str, alt: str, css_class: str) -> str:
    return f'<img class="{css_class}" alt="{_e(alt)}" src="{uri}">'


def _table(head: Sequence[str], rows: Sequence[Sequence], css_class: str) -> str:
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="{css_class}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _flag_words(record: dict) -> str:
    flags = record.get("flags") or {}
    words = []
    if flags.get("refused"):
        words.append("refused")
    if flags.get("unsandboxed"):
        words.append("unsandboxed")
    if flags.get("disagreement"):
        words.append("disagreement: " + ", ".join(map(str, flags["disagreement"])))
    return "; ".join(words)


def render_page(data: AssignmentData) -> str:
    """The HTML of one assignment's page; every student-controlled value escaped."""
    scores = list(data.scores.values())
    mean = f"{statistics.fmean(scores):.1f}" if scores else "–"
    median = f"{statistics.median(scores):g}" if scores else "–"
    parts = [
        f"<h1>{_e(data.name)}</h1>",
        f'<p class="summary">{len(scores)} submissions; mean {mean}, median '
        f"{median} of {data.max_score:g} points.</p>",
        "<h2>Outcomes</h2>",
        _table(
            ["outcome", "submissions"],
            sorted(data.outcomes.items(), key=lambda kv: (-kv[1], kv[0])),
            "outcomes",
        ),
    ]
    if data.outcomes:
        parts.append(_img(outcomes_png(data.outcomes), "outcome counts", "plot"))
    parts.append("<h2>Scores</h2>")
    if scores:
        parts.append(_img(histogram_png(scores, data.max_score), "histogram", "plot"))
    parts.append("<h2>Pass rate per graded cell</h2>")
    rows = [
        (
            gid,
            f"{s.max_score:g}",
            "–" if s.pass_rate is None else f"{100 * s.pass_rate:.0f} %",
            s.full,
            s.partial_or_zero,
            s.ungraded,
        )
        for gid, s in data.cells.items()
    ]
    parts.append(
        _table(
            ["cell", "points", "pass rate", "full marks", "not full", "to grade"],
            rows,
            "pass-rates",
        )
    )
    if any(s.pass_rate is not None for s in data.cells.values()):
        parts.append(_img(pass_rate_png(data.cells), "pass rate per cell", "plot"))
    parts.append("<h2>Most common visible-check failures</h2>")
    if data.messages:
        common = data.messages.most_common(TOP_MESSAGES)
        parts.append(
            _table(
                ["#", "cell", "submissions", "message"],
                [(i + 1, gid, n, msg) for i, ((gid, msg), n) in enumerate(common)],
                "messages",
            )
        )
        parts.append(_img(messages_png(data.messages), "failing messages", "plot"))
    else:
        parts.append("<p>No visible check failed.</p>")
    parts.append(f"<h2>Flagged submissions ({len(data.flagged)})</h2>")
    if data.flagged:
        parts.append(
            _table(
                ["student", "outcome", "score", "flags", "reason"],
                [
                    (
                        r.get("student", ""),
                        r.get("outcome", ""),
                        f"{float(r.get('score') or 0):g}",
                        _flag_words(r),
                        r.get("reason", ""),
                    )
                    for r in data.flagged
                ],
                "flagged",
            )
        )
    else:
        parts.append("<p>None.</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>Class report — {_e(data.name)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:1em auto}"
        "table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #999;padding:0.2em 0.5em;text-align:left}"
        "img.plot{display:block;max-width:100%;margin:0.5em 0}"
        "</style></head><body>" + "".join(parts) + "</body></html>\n"
    )


def write_report(
    course_root: Path,
    out: Path | None = None,
    assignments: Sequence[str] | None = None,
    *,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write one page per assignment into ``out`` (default ``<course>/report``)."""
    from .course import course_config

    course_root = Path(course_root).resolve()
    out = Path(out) if out is not None else course_root / "report"
    course_id = course_config(course_root).CourseDirectory.get("course_id", "") or ""
    written = []
    for name, data in sorted(collect(course_root, course_id).items()):
        if assignments and name not in assignments:
            continue
        if not _SAFE_NAME.fullmatch(name):
            log(f"skipped assignment {name!r}: not a safe file name")
            continue
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.html"
        staged = path.with_name(f".{path.name}.new")
        staged.write_text(render_page(data), encoding="utf-8")
        staged.replace(path)
        written.append(path)
    log(f"wrote {len(written)} page(s) under {out}")
    return written
