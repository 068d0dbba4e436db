"""The stored expected outputs are exactly what the reference solutions compute."""

import pytest

from autograder.expected import case_sets, write_expected
from autograder.reference import reference_namespace
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
