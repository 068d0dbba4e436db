"""The class report in a real (headless) Chromium, with the network blocked.

Three students of the fixture course (``tests/files/course_fixture``: the
reference, the blank release and a typical mistake) are graded by the real
``python -m autograder grade``; ``python -m autograder report`` writes the page,
and Chromium opens it from disk. Every plot must have loaded (a decoded image,
``naturalWidth > 0``), and the page must show the class's counts.
"""

from __future__ import annotations

import json

import pytest
from fixture_course import (
    ASSIGNMENT,
    NOTEBOOK,
    _json,
    build_course,
    mistake,
    release_nb,
)
from fixture_course import source_nb as reference_nb
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, sync_playwright

from autograder.cli import main

__all__ = ["sync_playwright"]  # the fixture, shared with test_browser.py

pytestmark = pytest.mark.slow

LIMITS = ["--cell-timeout", "60", "--notebook-timeout", "240"]
CLASS = {
    "reference": (lambda: {NOTEBOOK: _json(reference_nb())},),
    "blank": (lambda: {NOTEBOOK: _json(release_nb())},),
    "mean-mistake": (lambda: {NOTEBOOK: _json(mistake("mean-divides-by-n-minus-1"))},),
}
IMAGES = """() => [...document.querySelectorAll('img.plot')].map(
    img => ({complete: img.complete, width: img.naturalWidth, alt: img.alt}))"""


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    course = build_course(tmp_path_factory.mktemp("class"), CLASS)
    args = ["--course", str(course)]
    assert main(["grade", *args, "--no-progress", *LIMITS]) == 0
    outcomes = json.loads((course / "grading_outcomes.json").read_text())
    assert sorted(r["score"] for r in outcomes) == [0, 20, 30]
    assert main(["report", *args, "--out", str(course / "pages")]) == 0
    return course / "pages" / f"{ASSIGNMENT}.html"


@pytest.fixture(scope="module")
def opened(page_file, sync_playwright):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests = []

    def refuse_network(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            context.route("**/*", refuse_network)
            page = context.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(ARTIFACTS / "class-report.png"), full_page=True)
            yield page, requests
        finally:
            browser.close()


def test_every_plot_is_loaded_and_drawn(opened):
    page, requests = opened
    images = page.evaluate(IMAGES)
    assert [i["alt"] for i in images] == [
        "outcome counts",
        "histogram",
        "pass rate per cell",
    ], images  # no visible check of the fixture failed: no message plot
    for image in images:
        assert image["complete"] and image["width"] > 0, image
    assert requests == []


def test_the_counts_are_on_the_page(opened):
    page, _ = opened
    summary = page.locator("p.summary").inner_text()
    assert summary == "3 submissions; mean 16.7, median 20 of 30 points."
    outcomes = page.locator("table.outcomes tbody tr").all_inner_texts()
    assert [row.split() for row in outcomes] == [["graded", "3"]]
    rows = {
        row.split()[0]: row.split()
        for row in page.locator("table.pass-rates tbody tr").all_inner_texts()
    }
    assert rows["test_square"][1:4] == ["10", "67", "%"]
    assert rows["test_mean"][1:4] == ["10", "33", "%"]
    assert "Flagged submissions (0)" in page.inner_text("body")
