"""A novice's slips, replayed: every visible check names the place and the slip.

Each typical-mistake file (``tests/files/mistakes/<id>.json``) marks with
``"slip"`` the scenarios that reproduce a slip novices make (forgetting ``+ b``,
sigmoid in every layer, a flipped update step, ...). For each of those, the
source notebook is run in-process with that one change, and the visible check of
the broken cell must fail with a message that names the function and the output
key (``"where"``) and gives a hint about that very slip (``"message"``), never a
bare "values differ".
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from notebook_sim import notebook_namespace

from dlcourse.checks import CheckFailure

MISTAKES = Path(__file__).parent / "files" / "mistakes"

#: The slips of issue #17 that must each get a hint, and where one is shown.
REQUIRED_SLIPS = {
    "forgetting + b",
    "sigmoid in every layer",
    "update step with the wrong sign",
    "update_parameters' result discarded",
    "reshape(-1, m) mixes pictures",
    ">= vs > at exactly 0.5",
    "hard-coded learning_rate",
    "tanh derivative 1 - A1 instead of 1 - A1**2",
    "rows vs columns on an integer output",
}


def _slips():
    found = []
    for path in sorted(MISTAKES.glob("*.json")):
        for mistake in json.loads(path.read_text("utf-8")):
            if "slip" in mistake:
                found.append((path.stem, mistake))
    return found


SLIPS = _slips()


def test_every_slip_of_the_issue_has_a_scenario():
    assert {mistake["slip"] for _, mistake in SLIPS} >= REQUIRED_SLIPS


def _visible_check_output(assignment: str, mistake: dict) -> str:
    """Run the visible checks of the broken cell; return what the student sees."""
    namespace = notebook_namespace(
        assignment, cell=mistake["cell"], replace=mistake["replace"]
    )
    tc = namespace["tc"]  # the notebook's own test cases, as a student runs them
    function = mistake["breaks"][0].removeprefix("test_")
    names = [n for n, case in tc.CASES.cases.items() if case.function == function]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for name in names:
            try:
                tc.check(name, namespace[function])
            except CheckFailure as failure:
                return f"{out.getvalue()}{failure}"
    pytest.fail(
        f"{assignment}/{mistake['name']}: the visible check of {function} passed; "
        f"it printed:\n{out.getvalue()}"
    )


@pytest.mark.parametrize(
    ("assignment", "mistake"),
    SLIPS,
    ids=[f"{a}-{m['name']}" for a, m in SLIPS],
)
def test_visible_check_names_function_key_and_the_slip(assignment, mistake):
    text = _visible_check_output(assignment, mistake)
    assert mistake["where"] in text, f"does not name {mistake['where']!r}:\n{text}"
    hints = [line for line in text.splitlines() if line.strip().startswith("Hint:")]
    assert any(mistake["message"] in hint for hint in hints), (
        f"no hint saying {mistake['message']!r}:\n{text}"
    )
