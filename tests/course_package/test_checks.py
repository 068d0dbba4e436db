"""The visible-check engine: messages that name the place, hints, mutation, scalars."""

import numpy as np
import pytest

from dlcourse.checks import PASS_MESSAGE, CheckFailure, check, compare, patched_globals


def test_passing_check_prints_the_pass_message_and_returns_the_output(capsys):
    out = check(lambda x: x * 2, (np.ones((2, 2)),), expected=2 * np.ones((2, 2)))
    assert capsys.readouterr().out.strip() == f"<lambda>: {PASS_MESSAGE}."
    np.testing.assert_array_equal(out, 2 * np.ones((2, 2)))


def test_message_names_the_dict_key_and_shows_expected_and_got():
    expected = {"dW1": np.ones((2, 3)), "db1": np.zeros((2, 1))}
    got = {"dW1": np.ones((2, 3)), "db1": np.array([[0.0], [0.5]])}
    message = compare(got, expected, name="grads")
    assert message.startswith("grads['db1']:")
    assert "first at index (1, 0): expected 0, got 0.5" in message


def test_nested_tuple_path_is_named():
    expected = (np.zeros(2), (np.ones(2), np.ones(3)))
    got = (np.zeros(2), (np.ones(2), np.zeros(3)))
    assert compare(got, expected, name="cache").startswith("cache[1][1]:")


@pytest.mark.parametrize(
    "got",
    [0.25, np.float64(0.25), np.float32(0.25), np.array(0.25)],
    ids=["float", "float64", "float32", "0-d array"],
)
def test_any_scalar_type_is_accepted_for_a_scalar(got):
    assert compare(got, np.float64(0.25), rtol=1e-6) is None


def test_a_one_by_one_array_is_not_a_scalar_and_the_fix_is_named():
    message = compare(np.array([[0.25]]), 0.25)
    assert "expected a scalar, got an array of shape (1, 1)" in message
    assert "float(...)" in message


def test_transposed_result_is_recognised():
    expected = np.arange(6.0).reshape(2, 3)
    message = compare(expected.T.copy(), expected)
    assert "shape (3, 2), expected (2, 3)" in message
    assert "transposed" in message


def test_missing_one_over_m_is_recognised():
    expected = np.array([[0.5, -0.25, 1.0]])
    message = compare(expected * 7, expected, m=7)
    assert "missing" in message and "1/m" in message


def test_sign_flip_is_recognised():
    expected = np.array([[0.5, -0.25]])
    assert "wrong sign" in compare(-expected, expected)


def test_sum_over_the_wrong_axis_is_hinted():
    message = compare(np.ones((1, 4)), np.ones((3, 1)))
    assert "wrong axis" in message


def test_missing_and_extra_keys_are_listed():
    assert "missing key(s) ['db2']" in compare({"dW2": 1.0}, {"dW2": 1.0, "db2": 2.0})
    assert "unexpected key(s) ['x']" in compare({"a": 1.0, "x": 2.0}, {"a": 1.0})


def test_in_place_modification_of_an_input_fails_with_its_name():
    def scale_in_place(dZ, m):
        dZ /= m
        return dZ

    with pytest.raises(CheckFailure, match="modified its input dZ in place"):
        check(
            scale_in_place,
            (np.ones((2, 2)), 2),
            expected=0.5 * np.ones((2, 2)),
            arg_names=("dZ", "m"),
        )


def test_the_callers_arrays_are_never_touched_even_by_a_bad_function():
    dZ = np.ones((2, 2))

    def scale_in_place(a):
        a *= 3
        return a

    with pytest.raises(CheckFailure):
        check(scale_in_place, (dZ,), expected=np.ones((2, 2)))
    np.testing.assert_array_equal(dZ, np.ones((2, 2)))


def test_alternatives_name_a_known_mistake():
    with pytest.raises(CheckFailure, match="sigmoid used where relu belongs"):
        check(
            lambda: np.array([[0.7]]),
            expected=np.array([[1.2]]),
            alternatives={"sigmoid used where relu belongs": np.array([[0.7]])},
        )


def test_not_implemented_propagates_unchanged():
    def todo():
        raise NotImplementedError("write your code here")

    with pytest.raises(NotImplementedError):
        check(todo, expected=1.0)


def test_warnings_are_printed_on_stdout_not_stderr(capsys):
    def warns_but_is_right():
        np.log(np.array([0.0]))
        return np.array([1.0])

    check(warns_but_is_right, expected=np.array([1.0]))
    captured = capsys.readouterr()
    assert "RuntimeWarning" in captured.out
    assert captured.err == ""


def test_nan_is_reported_as_a_mismatch():
    assert "values differ" in compare(np.array([np.nan]), np.array([1.0]))


def test_patched_globals_restores_and_removes():
    namespace = {"f": 1}
    with patched_globals(namespace, f=2, g=3):
        assert namespace == {"f": 2, "g": 3}
    assert namespace == {"f": 1}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.041102381, "0.04110238"),
        (np.float64(0.5), "0.50000000"),
        (np.array(0.25), "0.25000000"),
        (3, "3"),
        (np.array([[0.041102381]]), "array of shape (1, 1): [[0.04110238]]"),
        (None, "None"),
    ],
)
def test_format_value_never_crashes_a_demo_print(value, shown):
    from dlcourse.checks import format_value

    assert format_value(value) == shown


def test_integer_outputs_get_no_guessed_factor_or_sign():
    assert "Hint" not in compare(3, 5)
    assert "Hint" not in compare(np.array([[0, 0, 1]]), np.array([[1, 0, 0]]))
