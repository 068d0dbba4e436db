"""One HTML feedback report per student and assignment: safe, offline, in words.

``python -m autograder feedback`` writes ``feedback/<student>/<assignment>/<nb>.html``:
what grading found (the flags of the run), a table of the graded functions with
their points and what passed or failed, then the autograded notebook rendered
by nbconvert.

**No hidden tests.** nbgrader's stock feedback shows them, and even with
``ClearHiddenTests`` the tracebacks of failed test cells quote them (IPython
prints the lines around the failing one). Here, before rendering:

- hidden-test regions are cut from every cell (nbgrader's ``ClearHiddenTests``);
- in every traceback, the frames of test cells and of grader code
  (``autograder/``, ``source/``) are dropped; frames of the student's own cells
  stay, and the last line ``ename: evalue`` says what failed.

**No active content.** Everything the student controls (outputs, markdown,
raw cells, cell metadata) is rendered by nbconvert and the whole rendered
notebook then goes through the nh3 (ammonia) allow-list sanitizer: no
``<script>``, no event handlers, no iframes, objects, forms, SVG or ``<meta>``,
no ``javascript:`` URLs, images only as ``data:image/…``. JavaScript and widget
outputs are never chosen for display (their text fallback is shown). A
Content-Security-Policy allows one script, the report's own MathJax loader (by
its hash), and what it loads; no network requests at all.

**Maths offline.** MathJax (from the ``jupyter-server-mathjax`` package) is
copied once to ``feedback/.mathjax/`` and each report loads it by a relative
path, so maths is typeset without the network.

**Words from data.** When ``grading_outcomes.json`` holds per-cell results
(``cells``) and ``flags``, the table says what passed and failed
(:func:`describe_cell`) and the header shows the flags; older records fall back
to the last line the notebook's test cell printed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from . import REPO_ROOT
from .feedback_exchange import copy_submission_keys
from .grading.outcomes import load_outcomes

__all__ = [
    "check_messages",
    "describe_cell",
    "generate_feedback",
    "graded_cells",
    "render_report",
    "sanitize_html",
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


# --------------------------------------------------------------------------
# What each graded function did, in words (from the grader's data)
# --------------------------------------------------------------------------

_VISIBLE = {
    "passed": ("passed the visible check", False),
    "failed": ("failed the visible check", True),
    "not run": ("the visible check did not run", True),
}
_HIDDEN = {
    "passed": ("passed the hidden tests", False),
    "failed": ("failed the hidden tests", True),
    "not run": ("the hidden tests did not run", True),
    "not verified": (
        "hidden tests not verified (the notebook's own result counts)",
        False,
    ),
}


def _function_name(grade_id: str) -> str:
    return grade_id[5:] if grade_id.startswith("test_") else grade_id


def _names(grade_ids) -> str:
    if isinstance(grade_ids, str):
        grade_ids = [grade_ids]
    return ", ".join(_function_name(g) for g in grade_ids)


def describe_cell(cell: dict) -> str:
    """Say what passed and what failed for one graded function.

    Args:
        cell: one entry of a record's ``cells``: ``visible`` ("passed",
            "failed", "not checked", "not run"), ``hidden`` ("passed", "failed",
            "not run", "not verified"), ``message`` and ``not_checked_because``
            (the function it calls that fails its own check).

    Returns:
        e.g. ``"passed (visible check and hidden tests)"`` or
        ``"passed the visible check; failed the hidden tests: <message>"``.
    """
    visible, hidden = cell.get("visible"), cell.get("hidden")
    message = _shorten(cell.get("message") or "")
    if visible == hidden == "passed":
        return "passed (visible check and hidden tests)"
    if visible == hidden == "failed":
        return _with_message("failed the visible check and the hidden tests", message)
    if visible == hidden == "not run":
        return _with_message("not run", message)
    if visible == "not checked":
        because = cell.get("not_checked_because")
        first = (
            f"not checked here because it calls {_names(because)}, "
            "which fails its own check"
            if because
            else "not checked here"
        )
        first_failed = False
    else:
        first, first_failed = _VISIBLE.get(visible, (f"visible check: {visible}", True))
    second, second_failed = _HIDDEN.get(hidden, (f"hidden tests: {hidden}", True))
    if first_failed:
        first, message = _with_message(first, message), ""
    if second_failed:
        second = _with_message(second, message)
    return f"{first}; {second}"


def _with_message(words: str, message: str) -> str:
    return f"{words}: {message}" if message else words


def flag_lines(record: dict) -> list[str]:
    """The flags of a grading record, as sentences for the student."""
    flags = record.get("flags") or {}
    lines = []
    if flags.get("refused"):
        lines.append(
            f"Grading was refused: {record.get('reason') or 'no reason given'}"
        )
    if flags.get("disagreement"):
        lines.append(
            "Your notebook's own run and the grader's run disagree on "
            f"{_names(flags['disagreement'])}: the grader's run counts. Does your "
            "code change functions it does not own (numpy's, the checks')?"
        )
    if flags.get("unsandboxed"):
        lines.append(
            "This submission was graded without the sandbox (it was not available "
            "on the grading machine); the scores were computed the same way."
        )
    return lines


def _header(student, assignment, record, rows) -> str:
    """The report's own part: flags, then the table. Every value is escaped."""
    total = sum(score or 0 for _, score, _, _ in rows)
    full = sum(points for _, _, points, _ in rows)
    body = "".join(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>".format(
            html.escape(name),
            "–" if score is None else f"{score:g} / {points:g}",
            html.escape(words),
        )
        for name, score, points, words in rows
    )
    outcome = record.get("outcome", "graded")
    reason = record.get("reason", "")
    flags = flag_lines(record)
    note = f"<p><b>{html.escape(outcome)}</b>"
    refused = (record.get("flags") or {}).get("refused")
    note += f": {html.escape(reason)}</p>" if reason and not refused else "</p>"
    if flags:
        note += '<ul class="autograder-flags">{}</ul>'.format(
            "".join(f"<li>{html.escape(line)}</li>" for line in flags)
        )
    return (
        '<div class="autograder-feedback">'
        f"<h1>{html.escape(assignment)} — {html.escape(student)}</h1>{note}"
        '<table border="1" cellpadding="4">'
        "<thead><tr><th>graded function</th><th>points</th>"
        "<th>what the checks said</th></tr></thead>"
        f"<tbody>{body}</tbody><tfoot><tr><th>total</th>"
        f"<th>{total:g} / {full:g}</th><th></th></tr></tfoot></table>"
        "<p>The code of the graded (hidden) tests is not shown; they use other "
        "inputs than the visible checks.</p></div>"
    )


# --------------------------------------------------------------------------
# Safe HTML: an allow-list sanitizer over everything the student controls
# --------------------------------------------------------------------------

#: The only outputs shown, best first; anything else (JavaScript, widget
#: views, Mermaid, PDF) falls back to its text/plain representation.
SAFE_OUTPUTS = [
    "text/html",
    "text/markdown",
    "text/latex",
    "image/svg+xml",  # as <img src="data:...">: an SVG image runs no script
    "image/png",
    "image/jpeg",
    "text/plain",
]
_ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "div": {"data-mime-type"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
}
_IMAGE_DATA = tuple(
    f"data:image/{kind};base64," for kind in ("png", "jpeg", "gif", "webp", "svg+xml")
)


def _only_image_data(tag: str, attribute: str, value: str) -> str | None:
    # nh3 has already refused javascript: and the other unlisted schemes;
    # data: is kept for the source of an image only.
    lowered = value.strip().lower()
    if not lowered.startswith("data:"):
        return value
    is_image = (tag, attribute) == ("img", "src") and lowered.startswith(_IMAGE_DATA)
    return value if is_image else None


def sanitize_html(fragment: str) -> str:
    """Keep only inert HTML (nh3/ammonia allow-list): text, layout and images."""
    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag, names in _ATTRIBUTES.items():
        attributes.setdefault(tag, set()).update(names)
    return nh3.clean(
        str(fragment),
        tags=nh3.ALLOWED_TAGS - {"area", "map"},
        attributes=attributes,
        url_schemes={"http", "https", "mailto", "data"},
        attribute_filter=_only_image_data,
        strip_comments=True,
    )


# nbconvert's lab template with the report's own head, its header before the
# notebook and the whole rendered notebook passed through ``sanitize_html``.
_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head -%}
<meta http-equiv="Content-Security-Policy" content="{{ resources.report.csp }}">
{{ super() }}
{%- endblock html_head -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block extra_css -%}
<style type="text/css">
.autograder-feedback { font-family: sans-serif; max-width: 60em; margin: 1em auto; }
.autograder-feedback table { border-collapse: collapse; }
.autograder-flags li { margin: 0.3em 0; }
</style>
{%- endblock extra_css -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<script>{{ resources.report.loader }}</script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
{{ resources.report.header }}
{%- endblock body_header -%}
{%- block body_loop -%}
{{ super() | sanitize_report }}
{%- endblock body_loop -%}
{%- block footer -%}
</html>
{%- endblock footer -%}
"""

#: Where MathJax is copied, below ``feedback/``.
MATHJAX_DIR = ".mathjax"
_MATHJAX_CONFIG = {
    "tex2jax": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
    "HTML-CSS": {
        "availableFonts": [],
        "preferredFont": None,
        "webFont": "STIX-Web",
        "imageFont": None,
    },
    "messageStyle": "none",
    "showMathMenu": False,
    "displayAlign": "center",
}


def mathjax_loader(mathjax_js: str) -> str:
    """The report's only script: configure MathJax, then load it from a path."""
    url = json.dumps(f"{mathjax_js}?config=TeX-AMS-MML_HTMLorMML-full,Safe")
    return (
        f"window.MathJax = {json.dumps(_MATHJAX_CONFIG)};\n"
        "(function () {\n"
        '  var script = document.createElement("script");\n'
        f"  script.src = {url};\n"
        "  document.head.appendChild(script);\n"
        "})();"
    )


def content_security_policy(loader: str) -> str:
    """Allow the loader (by hash) and what it loads, nothing from the student."""
    digest = base64.b64encode(hashlib.sha256(loader.encode()).digest()).decode()
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'sha256-{digest}' 'strict-dynamic'",
            # The template's CSS and MathJax's styles are inline <style> elements.
            "style-src 'unsafe-inline'",
            "img-src data:",
            # MathJax's web fonts, next to the report (file: when opened from disk).
            "font-src 'self' file:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def install_mathjax(feedback_root: Path) -> Path:
    """Copy MathJax below ``feedback_root`` once; return its ``MathJax.js``."""
    from importlib.metadata import version as installed

    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    dest = Path(feedback_root) / MATHJAX_DIR
    stamp = dest / ".version"
    version = installed("jupyter-server-mathjax")
    if not (stamp.is_file() and stamp.read_text() == version):
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest)
        stamp.write_text(version)
    return dest / "MathJax.js"


def _safe_notebook(nb):
    """A copy without what is shown only by script (widgets) or not at all."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict(
        {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    )
    return nb


def render_report(
    nb,
    student: str,
    assignment: str,
    record: dict,
    scores: dict,
    *,
    mathjax_js: str = f"../../{MATHJAX_DIR}/MathJax.js",
    private: Sequence[str] = PRIVATE_PATHS,
) -> str:
    """HTML for one notebook: the header and table, then the notebook (if any).

    Args:
        nb: the autograded notebook, or None when none could be graded.
        record: the student's record of ``grading_outcomes.json`` (may be empty).
        scores: ``{grade_id: (score or None, max_score)}`` in notebook order.
        mathjax_js: URL of ``MathJax.js`` relative to the report.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    cells = record.get("cells") or {}
    messages = check_messages(nb) if nb is not None else {}
    rows = [
        (
            _function_name(gid),
            score,
            points,
            describe_cell(cells[gid]) if gid in cells else messages.get(gid, ""),
        )
        for gid, (score, points) in scores.items()
    ]
    header = _header(student, assignment, record, rows)
    loader = mathjax_loader(mathjax_js)
    if nb is None:
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("No notebook could be graded.")]
        )
    exporter = HTMLExporter(
        config=Config(NbConvertBase={"display_data_priority": list(SAFE_OUTPUTS)}),
        template_name="lab",
        template_file="feedback.html.j2",
        extra_loaders=[DictLoader({"feedback.html.j2": _TEMPLATE})],
        # nbconvert's own sanitizing (sanitize_html=True: no JavaScript outputs,
        # markdown and HTML outputs through ``clean_html``) with nh3 in place of
        # its bleach filter, which shows headings and paragraphs as escaped text.
        filters={"clean_html": sanitize_html, "sanitize_report": sanitize_html},
        sanitize_html=True,
    )
    resources = {
        "metadata": {"name": f"{assignment} — {student}"},
        "report": {
            "csp": content_security_policy(loader),
            "loader": loader,
            "header": header,
        },
    }
    body, _ = exporter.from_notebook_node(
        _safe_notebook(strip_hidden_tests(nb, private)), resources=resources
    )
    return body


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
    feedback_root = course_root / "feedback"
    mathjax = None
    unreleasable: list[str] = []
    quiet = lambda _line: None  # noqa: E731 - one summary line is logged instead
    for student, assignment in sorted(set(gradebook) | set(outcomes)):
        if assignments and assignment not in assignments:
            continue
        if students and student not in students:
            continue
        record = outcomes.get((student, assignment), {})
        per_nb = gradebook.get((student, assignment), {})
        names = sorted(per_nb) or [assignment]
        mathjax = mathjax or install_mathjax(feedback_root)
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
            out = feedback_root / student / assignment / f"{name}.html"
            text = render_report(
                nb,
                student,
                assignment,
                record,
                scores,
                mathjax_js=Path(os.path.relpath(mathjax, out.parent)).as_posix(),
                private=private,
            )
            _write(out, text)
            written.append(out)
        if not copy_submission_keys(course_root, student, assignment, log=quiet):
            unreleasable.append(f"{student}/{assignment}")
    log(f"wrote {len(written)} report(s) under {course_root / 'feedback'}")
    if unreleasable:
        log(
            f"{len(unreleasable)} of them did not come through nbgrader's exchange "
            "(no timestamp.txt and submission_secret.txt), so nbgrader "
            f"release_feedback cannot release them: {', '.join(unreleasable[:5])}"
            + (" …" if len(unreleasable) > 5 else "")
        )
    return written


def _ordered(from_db: dict | None, from_outcomes: dict) -> dict:
    if from_db:
        return dict(from_db)
    return {gid: (s, m) for gid, (s, m) in from_outcomes.items()}
