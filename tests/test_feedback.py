"""``feedback`` reports: no active content from the student, and words from data.

The reports are written by :func:`autograder.feedback.generate_feedback` from a
course folder made here by hand (an autograded notebook and a
``grading_outcomes.json`` record), so every output kind a student can produce
is present, whatever the real grader would make of it. The real pipeline and a
real browser are exercised by ``tests/test_browser_feedback.py``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from autograder.feedback import describe_cell, generate_feedback

MARK = "PWNED"
#: Elements that run code, load documents or navigate by themselves.
ACTIVE_TAGS = {
    "applet",
    "base",
    "embed",
    "form",
    "frame",
    "frameset",
    "iframe",
    "link",
    "math",
    "object",
    "svg",
}
URL_ATTRIBUTES = {
    "action",
    "background",
    "data",
    "formaction",
    "href",
    "poster",
    "src",
    "xlink:href",
}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:text/html", "livescript:")


# --------------------------------------------------------------------------
# What a student can put in a notebook
# --------------------------------------------------------------------------


def png_bytes() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [0, 1, 4])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def display(data: dict, metadata: dict | None = None):
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})


SCRIPT = f"<script>document.title='{MARK}'; window.{MARK} = 1;</script>"
HTML_PAYLOADS = [
    SCRIPT,
    f'<img src=x onerror="window.{MARK}=2">',
    f'<iframe srcdoc="<script>parent.{MARK}=3</script>"></iframe>',
    f'<a href="javascript:window.{MARK}=4">click</a>',
    f'<a href=" jav&#x09;ascript:window.{MARK}=5">tabbed</a>',
    f'<meta http-equiv="refresh" content="0; url=javascript:window.{MARK}=6">',
    f'<svg onload="window.{MARK}=7"><script>window.{MARK}=8</script></svg>',
    f'<object data="javascript:window.{MARK}=9"></object>',
    f'<embed src="javascript:window.{MARK}=10">',
    f'<details open ontoggle="window.{MARK}=11"><summary>s</summary></details>',
    f'<form action="javascript:window.{MARK}=12"><button>go</button></form>',
    f'<base href="javascript:window.{MARK}=13//">',
    f"<style>body {{ background: url('javascript:{MARK}') }}</style>",
    f'<math><maction actiontype="statusline" xlink:href="javascript:{MARK}">'
    "x</maction></math>",
    f'<div style="background-image: url(javascript:{MARK})">styled</div>',
]


def hostile_notebook(png: bytes) -> nbformat.NotebookNode:
    """An autograded notebook whose student put active content everywhere."""
    png64 = base64.b64encode(png).decode()
    solution = nbformat.v4.new_code_cell(
        "def square(x):\n    return x * x", execution_count=1
    )
    solution.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "square",
        "solution": True,
        "locked": False,
        "schema_version": 3,
    }
    # Cell tags end up in a class attribute: try to break out of it.
    solution.metadata["tags"] = [f'x" onmouseover="window.{MARK}=20']
    test = nbformat.v4.new_code_cell(
        "# Checks square\nassert square(3) == 9", execution_count=2
    )
    test.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_square",
        "points": 10,
        "solution": False,
        "locked": True,
        "schema_version": 3,
    }
    test.outputs = [
        nbformat.v4.new_output(
            "stream", name="stdout", text="All visible checks passed\n"
        )
    ]
    outputs = [display({"text/html": payload}) for payload in HTML_PAYLOADS]
    outputs += [
        display(
            {
                "application/javascript": f"window.{MARK} = 30;",
                "text/plain": "<IPython.core.display.Javascript object>",
            }
        ),
        display({"text/markdown": f"**md** {SCRIPT} [x](javascript:window.{MARK})"}),
        display(
            {
                "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg">'
                f"<script>window.{MARK}=31</script></svg>",
                "text/plain": "<svg>",
            }
        ),
        display({"text/vnd.mermaid": f"</pre>{SCRIPT}<pre>"}),
        display({"text/latex": f"$x$ </div>{SCRIPT}"}),
        display(
            {
                "application/vnd.jupyter.widget-view+json": {
                    "model_id": f"</script>{SCRIPT}",
                    "version_major": 2,
                    "version_minor": 0,
                },
                "text/plain": "widget",
            }
        ),
        # Unquoted width attribute in nbconvert's template: break out of it.
        display(
            {"image/png": png64, "text/plain": "<Figure>"},
            {"image/png": {"width": f"1 onerror=window.{MARK}=32"}},
        ),
        display({"image/png": png64, "text/plain": "<Figure size 200x150>"}),
        nbformat.v4.new_output("stream", name="stdout", text=f"printed {SCRIPT}\n"),
        nbformat.v4.new_output(
            "execute_result",
            data={"text/html": SCRIPT, "text/plain": "'x'"},
            execution_count=3,
        ),
    ]
    hostile = nbformat.v4.new_code_cell("show_everything()", execution_count=3)
    hostile.outputs = outputs
    markdown = nbformat.v4.new_markdown_cell(
        "## My notes\n\nThe cost is $J = \\frac{1}{m} \\sum_{i=1}^m a < b$.\n\n"
        + "\n\n".join(HTML_PAYLOADS)
        + f"\n\n[link](javascript:window.{MARK}=40) and $<img src=x "
        f"onerror=window.{MARK}=41>$\n\n![img](javascript:window.{MARK}=42)"
    )
    raw = nbformat.v4.new_raw_cell(SCRIPT)
    raw_html = nbformat.v4.new_raw_cell(SCRIPT, metadata={"raw_mimetype": "text/html"})
    nb = nbformat.v4.new_notebook(
        cells=[markdown, solution, test, hostile, raw, raw_html],
        metadata={
            "title": f"</title>{SCRIPT}",
            "widgets": {
                "application/vnd.jupyter.widget-state+json": {
                    "state": {},
                    "note": f"</script>{SCRIPT}",
                }
            },
        },
    )
    return nb


def write_course(root: Path, nb, record: dict) -> Path:
    """A course folder holding one autograded notebook and its outcome record."""
    folder = root / "autograded" / record["student"] / record["assignment"]
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{record['assignment']}.ipynb"))
    (root / "grading_outcomes.json").write_text(json.dumps([record]))
    return root


def record_for(student="mallory", **extra) -> dict:
    record = {
        "student": student,
        "assignment": "mini",
        "outcome": "graded",
        "reason": "",
        "score": 10.0,
        "max_score": 10.0,
        "scores": {"test_square": [10.0, 10.0]},
        "notes": [],
    }
    record.update(extra)
    return record


# --------------------------------------------------------------------------
# Reading a report as a browser would
# --------------------------------------------------------------------------


class Audit(HTMLParser):
    """Every element of a page, with where it sits (head or body)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict, str]] = []
        self.scripts: list[tuple[dict, str, str]] = []
        self._part = "top"
        self._script: dict | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "body"):
            self._part = tag
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes, self._part))
        if tag == "script":
            self._script, self._text = attributes, []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self.handle_endtag(tag)

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text), self._part))
            self._script = None


def audit(page: str) -> Audit:
    parser = Audit()
    parser.feed(page)
    parser.close()
    return parser


def active_content(page: str) -> list[str]:
    """Everything in ``page`` that could run code or navigate on its own."""
    found = []
    parsed = audit(page)
    for tag, attributes, part in parsed.elements:
        if tag in ACTIVE_TAGS:
            found.append(f"<{tag}> in {part}")
        if tag == "meta" and attributes.get("http-equiv", "").lower() not in (
            "",
            "content-security-policy",
        ):
            found.append(f"<meta http-equiv={attributes['http-equiv']}>")
        if tag == "style" and part != "head":
            found.append("<style> in body")
        for name, value in attributes.items():
            if name.startswith("on") or name in ("srcdoc", "style"):
                found.append(f"<{tag} {name}=...>")
            squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
            if name in URL_ATTRIBUTES and squeezed.startswith(BAD_SCHEMES):
                found.append(f"<{tag} {name}={value[:40]!r}>")
    for attributes, text, part in parsed.scripts:
        if part != "head":
            found.append("<script> in body")
        if "src" in attributes:
            found.append(f"<script src={attributes['src']!r}>")
        if MARK in text:
            found.append(f"student script {text[:60]!r}")
    return found


def content_security_policy(page: str) -> dict[str, list[str]]:
    for tag, attributes, _ in audit(page).elements:
        if (
            tag == "meta"
            and attributes.get("http-equiv", "").lower() == "content-security-policy"
        ):
            policy = {}
            for directive in attributes.get("content", "").split(";"):
                name, *values = directive.split()
                policy[name] = values
            return policy
    return {}


def visible_text(page: str) -> str:
    text = re.sub(r"<style.*?</style>|<script.*?</script>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@pytest.fixture(scope="module")
def png():
    return png_bytes()


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, png):
    root = write_course(
        tmp_path_factory.mktemp("course"), hostile_notebook(png), record_for()
    )
    (path,) = generate_feedback(root, log=lambda _: None)
    return path


# --------------------------------------------------------------------------
# Safe: no active content survives
# --------------------------------------------------------------------------


def test_no_active_content_from_the_student_survives(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    assert active_content(page) == []


def test_only_the_reports_own_script_may_run(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    policy = content_security_policy(page)
    assert policy, "the report declares a Content-Security-Policy"
    assert policy["default-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert not [s for s in policy["script-src"] if re.match(r"https?:|\*", s)]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    scripts = audit(page).scripts
    assert len(scripts) == 1, "one script: the loader of the local MathJax"
    assert "MathJax" in scripts[0][1]


def test_scores_text_and_images_still_show(hostile_report, png):
    page = hostile_report.read_text(encoding="utf-8")
    text = visible_text(page)
    assert re.search(r"square\s*10 / 10", text)
    assert "All visible checks passed" in text
    assert "def square(x)" in text
    images = [
        attributes["src"]
        for tag, attributes, _ in audit(page).elements
        if tag == "img" and attributes.get("src", "").startswith("data:image/png")
    ]
    assert base64.b64encode(png).decode() in "".join(images)
    assert len(images) == 2


def test_markdown_is_rendered_as_markup(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    tags = {tag for tag, _, part in audit(page).elements if part == "body"}
    assert {"h2", "p", "a", "img", "code", "pre", "table"} <= tags
    assert "<h2" not in visible_text(page)


def test_student_text_is_shown_as_text_not_dropped(hostile_report):
    text = visible_text(hostile_report.read_text(encoding="utf-8"))
    assert f"printed {SCRIPT}" in text  # stdout, escaped
    assert "<IPython.core.display.Javascript object>" in text  # instead of the JS
    assert "My notes" in text


def test_markdown_maths_is_kept_for_the_typesetter(hostile_report):
    text = visible_text(hostile_report.read_text(encoding="utf-8"))
    assert "$J = \\frac{1}{m} \\sum_{i=1}^m a < b$" in text


def test_mathjax_is_copied_next_to_the_reports(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    (loader,) = [text for _, text, _ in audit(page).scripts]
    (relative,) = re.findall(r"[\"']([^\"']*MathJax\.js)[^\"']*[\"']", loader)
    assert not re.match(r"[a-z]+:", relative), "a relative path, no network"
    assert (hostile_report.parent / relative).resolve().is_file()


# --------------------------------------------------------------------------
# Understandable: words from the grading data
# --------------------------------------------------------------------------


def cell_record(visible, hidden, message="", because=None, score=0.0):
    return {
        "score": score,
        "max_score": 10.0,
        "visible": visible,
        "hidden": hidden,
        "message": message,
        "not_checked_because": because,
    }


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        (
            cell_record("passed", "passed", score=10.0),
            "passed (visible check and hidden tests)",
        ),
        (
            cell_record("failed", "failed", "AssertionError: mean([1, 2, 6]) != 3"),
            "failed the visible check and the hidden tests: "
            "AssertionError: mean([1, 2, 6]) != 3",
        ),
        (
            cell_record("passed", "failed", "mean of 10 values is off by 0.5"),
            "passed the visible check; failed the hidden tests: "
            "mean of 10 values is off by 0.5",
        ),
        (
            cell_record("failed", "passed", "NameError: np", score=10.0),
            "failed the visible check: NameError: np; passed the hidden tests",
        ),
        (
            cell_record("not checked", "passed", because="relu", score=10.0),
            "not checked here because it calls relu, which fails its own check; "
            "passed the hidden tests",
        ),
        (
            cell_record("not checked", "failed", "wrong shape", because="test_relu"),
            "not checked here because it calls relu, which fails its own check; "
            "failed the hidden tests: wrong shape",
        ),
        (
            cell_record("not run", "not run", "the cell limit (3 s) was reached"),
            "not run: the cell limit (3 s) was reached",
        ),
        (
            cell_record("passed", "not verified", score=10.0),
            "passed the visible check; hidden tests not verified "
            "(the notebook's own result counts)",
        ),
    ],
)
def test_each_function_is_described_in_words(cell, words):
    assert describe_cell(cell) == words


def graded_notebook(png=None) -> nbformat.NotebookNode:
    nb = hostile_notebook(png or b"")
    nb.cells = [c for c in nb.cells if c.cell_type == "code"][:2]
    nb.cells[1].outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stdout",
            text="All visible checks passed\n"
            "square: hidden tests run outside this notebook when it is graded.\n",
        )
    ]
    return nb


def report_text(tmp_path, record) -> str:
    root = write_course(tmp_path, graded_notebook(), record)
    (path,) = generate_feedback(root, log=lambda _: None)
    return visible_text(path.read_text(encoding="utf-8"))


def test_the_table_says_what_passed_from_the_cells_data(tmp_path):
    record = record_for(
        cells={"test_square": cell_record("passed", "passed", score=10.0)},
        flags={
            "disagreement": [],
            "unsandboxed": False,
            "refused": False,
            "not_checked": [],
        },
    )
    text = report_text(tmp_path, record)
    assert re.search(
        r"square\s*10 / 10\s*passed \(visible check and hidden tests\)", text
    )
    header = text.split("The code of the graded")[0]
    assert "hidden tests run outside" not in header
    assert "disagree" not in header and "sandbox" not in header


def test_flags_are_shown_in_the_header(tmp_path):
    record = record_for(
        outcome="refused",
        reason="the submission holds a symbolic link (data.npz)",
        cells={"test_square": cell_record("failed", "passed", "oops", score=10.0)},
        flags={
            "disagreement": ["test_square"],
            "unsandboxed": True,
            "refused": True,
            "not_checked": [],
        },
    )
    text = report_text(tmp_path, record)
    header = text.split("graded function")[0]
    assert re.search(
        r"your notebook.s own run and the grader.s run disagree.*square", header, re.I
    )
    assert "without the sandbox" in header
    assert "refused: the submission holds a symbolic link (data.npz)" in header


def test_old_records_without_cells_keep_the_notebooks_message(tmp_path):
    text = report_text(tmp_path, record_for())
    assert re.search(r"square\s*10 / 10\s*square: hidden tests run outside", text)
