"""The stored expected outputs are exactly what the reference solutions compute."""

import re

import pytest
from notebook_sim import demo_outputs, grade_id, is_solution, notebook

from autograder.authoring.expected import case_sets, write_expected
from autograder.source import reference_namespace
from dlcourse.testcases import decode, encode


def test_every_assignment_with_a_case_set_has_a_current_expected_file():
    sets = case_sets()
    assert sets, "no test-case module defines CASES"
    write_expected(check=True)


@pytest.mark.parametrize("assignment", sorted(case_sets()))
def test_every_case_calls_a_function_the_reference_defines(assignment):
    reference = reference_namespace(assignment)
    for name, case in case_sets()[assignment].cases.items():
        assert callable(reference.get(case.function)), f"{name} -> {case.function}"


def test_encode_decode_round_trip_is_exact():
    import numpy as np

    value = {
        "W1": np.array([[0.1 + 1e-17, -3.3e-300]]),
        "cost": np.float64(0.41493159961539694),
        "cache": (np.arange(3), [1, 2.5, "relu"]),
    }
    back = decode(encode(value))
    np.testing.assert_array_equal(back["W1"], value["W1"])
    assert back["cost"] == value["cost"] and type(back["cost"]) is np.float64
    assert isinstance(back["cache"], tuple)
    np.testing.assert_array_equal(back["cache"][0], np.arange(3))
    assert back["cache"][1] == [1, 2.5, "relu"]


# --------------------------------------------- expected-output blocks, in-process

FENCE = re.compile(r"```\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("assignment", sorted(case_sets()))
def test_every_graded_exercise_has_a_demo_cell_and_an_expected_output_block(
    assignment,
):
    cells = notebook(assignment).cells
    ids = [grade_id(cell) for cell in cells]
    missing = []
    for start, cell in enumerate(cells):
        if not is_solution(cell):
            continue
        end = ids.index(f"test_{grade_id(cell)}")
        demos = [
            i
            for i in range(start + 1, end)
            if "expected-output" in cells[i].metadata.get("tags", [])
        ]
        shown = [
            i
            for i in demos
            if cells[i + 1].source.startswith("**Expected output**")
            and FENCE.search(cells[i + 1].source)
        ]
        if not shown:
            missing.append(grade_id(cell))
    assert missing == [], f"{assignment}: no demo + Expected output for {missing}"


@pytest.mark.parametrize("assignment", sorted(case_sets()))
def test_expected_output_blocks_are_what_the_reference_prints(assignment):
    """The same comparison as the slow kernel run, in-process and in seconds."""
    cells = notebook(assignment).cells
    for index, printed in demo_outputs(assignment):
        shown = FENCE.search(cells[index + 1].source).group(1)
        assert shown == printed, (
            f"{assignment} cell {index}: the block shows\n{shown}\n"
            f"but the reference prints\n{printed}"
        )
