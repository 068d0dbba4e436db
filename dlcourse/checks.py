"""The engine behind every visible check.

A check runs a student's function on prepared inputs and compares what comes back
with the expected output, recursing into dicts, tuples and lists so that a failure
names the exact place (``grads['db1']``, ``cache[0][1]``). It accepts a Python
float, a numpy scalar or a 0-d array wherever a scalar is expected, checks that
the inputs were not modified in place, and turns common mistakes (a transposed
result, a missing ``1/m``, a flipped sign) into a hint.

A passing check prints ``All visible checks passed`` and nothing more: the hidden
tests, run when the work is graded, use other inputs.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CheckFailure",
    "check",
    "compare",
    "format_value",
    "patched_globals",
]

PASS_MESSAGE = "All visible checks passed"


class CheckFailure(AssertionError):
    """A student's output differs from the expected one; the message says where."""


@dataclass
class _Mismatch:
    path: str
    message: str
    hints: list[str] = field(default_factory=list)

    def render(self, function_name: str) -> str:
        text = f"{function_name}: {self.path}: {self.message}"
        for hint in self.hints:
            text += f"\n  Hint: {hint}"
        return text


def _is_scalar_like(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, np.ndarray) and value.shape == ()


def _is_array_like(value) -> bool:
    return isinstance(value, np.ndarray) or _is_scalar_like(value)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _format_array(values: np.ndarray) -> str:
    with np.printoptions(precision=8, suppress=False, threshold=20, edgeitems=3):
        return np.array2string(np.asarray(values), separator=" ")


def _is_integer_valued(values: np.ndarray) -> bool:
    """Whether every value is a whole number (counts, sizes, 0/1 labels)."""
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return True
    finite = np.isfinite(values)
    return bool(np.all(finite)) and bool(np.all(values == np.round(values)))


def _value_hints(got: np.ndarray, expected: np.ndarray, *, m: int | None) -> list[str]:
    """Name the common mistake that turns ``expected`` into ``got``, if any.

    Whole-number outputs (sizes, labels) get no guess: a ratio or a sign between
    two small integers says nothing about the mistake behind them.
    """
    hints = []
    close = dict(rtol=1e-6, atol=1e-9)
    if _is_integer_valued(expected):
        return hints
    if expected.ndim == 2 and got.shape == expected.shape[::-1]:
        if np.allclose(got, expected.T, **close):
            return ["the values are right but transposed"]
    if got.shape != expected.shape:
        return hints
    if np.any(expected != 0) and np.allclose(got, -expected, **close):
        return ["every value has the wrong sign"]
    nonzero = np.abs(expected) > 1e-12
    if np.any(nonzero) and np.all(np.abs(got[~nonzero]) < 1e-9):
        ratios = got[nonzero] / expected[nonzero]
        ratio = float(np.median(ratios))
        if np.allclose(ratios, ratio, rtol=1e-6) and not np.isclose(ratio, 1.0):
            if m is not None and np.isclose(ratio, m, rtol=1e-6):
                hints.append(
                    f"every value is {m} (= m) times too large: "
                    "is the 1/m factor missing?"
                )
            elif m is not None and np.isclose(ratio, 1.0 / m, rtol=1e-6):
                hints.append(
                    f"every value is {m} (= m) times too small: is there a 1/m too "
                    "many? (dA and dZ carry no 1/m; only dW and db do)"
                )
            else:
                hints.append(f"every value is off by the same factor ({ratio:.6g})")
    if not hints and got.size > 1:
        same_values = np.allclose(
            np.sort(got, axis=None), np.sort(expected, axis=None), **close
        )
        if same_values:
            hints.append(
                "the right values, but in the wrong places: check how the array "
                "is reshaped (which axis is which) or indexed"
            )
    return hints


def _compare_arrays(got, expected, path, *, rtol, atol, m) -> _Mismatch | None:
    expected = np.asarray(expected)
    if expected.shape == ():
        if not _is_scalar_like(got):
            if isinstance(got, np.ndarray) and got.size == 1:
                return _Mismatch(
                    path,
                    f"expected a scalar, got an array of shape {got.shape}",
                    ["turn it into a number with float(...) or np.squeeze(...)"],
                )
            return _Mismatch(path, f"expected a number, got {_describe(got)}")
        got_arr = np.asarray(got, dtype=np.float64)
        if not np.isfinite(got_arr):
            return _Mismatch(path, f"expected {float(expected):.10g}, got {got_arr}")
        if not np.allclose(got_arr, expected, rtol=rtol, atol=atol):
            return _Mismatch(
                path,
                f"expected {float(expected):.10g}, got {float(got_arr):.10g}",
                _value_hints(got_arr.reshape(1), expected.reshape(1), m=m),
            )
        return None
    if not isinstance(got, np.ndarray):
        return _Mismatch(
            path, f"expected an array of shape {expected.shape}, got {_describe(got)}"
        )
    if got.shape != expected.shape:
        hints = []
        if got.shape == expected.shape[::-1]:
            hints = _value_hints(got, expected, m=m) or ["is it transposed?"]
        elif got.size == expected.size:
            hints = ["the number of values is right: check how it is reshaped"]
        elif expected.ndim == 2 and got.ndim == 1:
            hints = ["keep the 2-D column/row shape (keepdims=True or reshape)"]
        elif expected.ndim == 2 and expected.shape[1] == 1 and got.shape[0] == 1:
            hints = ["is the sum taken over the wrong axis?"]
        return _Mismatch(path, f"shape {got.shape}, expected {expected.shape}", hints)
    if not np.issubdtype(got.dtype, np.number) and got.dtype != np.bool_:
        return _Mismatch(path, f"expected numbers, got dtype {got.dtype}")
    got64 = got.astype(np.float64)
    exp64 = expected.astype(np.float64)
    bad = ~np.isclose(got64, exp64, rtol=rtol, atol=atol, equal_nan=False)
    if not np.any(bad):
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    message = (
        f"{int(bad.sum())} of {bad.size} values differ; first at index {first}: "
        f"expected {exp64[first]:.10g}, got {got64[first]:.10g}\n"
        f"  expected:\n{_indent(_format_array(exp64))}\n"
        f"  got:\n{_indent(_format_array(got64))}"
    )
    return _Mismatch(path, message, _value_hints(got64, exp64, m=m))


def format_value(value, digits: int = 8) -> str:
    """Format a number or an array for a notebook's demo print, whatever it is.

    A demo cell must not crash before the visible check can explain what is
    wrong: a number that came back as an array of shape (1, 1), a string or None
    is shown as it is, with its shape, instead of failing inside an f-string.

    Args:
        value: a Python or numpy number, a 0-d array, an array, or anything else.
        digits: digits after the decimal point for floats.

    Returns:
        ``"0.04110238"`` for a number; ``"array of shape (1, 1): [[0.04110238]]"``
        for an array with more than zero dimensions; ``repr(value)`` otherwise.
    """
    if isinstance(value, (bool, np.bool_)):
        return repr(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) or (
        isinstance(value, np.ndarray) and value.shape == ()
    ):
        try:
            return f"{float(value):.{digits}f}"
        except (TypeError, ValueError):
            return repr(value)
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=digits, suppress=True):
            text = np.array2string(value, separator=" ")
        return f"array of shape {value.shape}: {text}"
    return repr(value)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _compare(got, expected, path, *, rtol, atol, m) -> _Mismatch | None:
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return _Mismatch(path, f"expected a dict, got {_describe(got)}")
        missing = [k for k in expected if k not in got]
        if missing:
            return _Mismatch(
                path,
                f"missing key(s) {missing}; got keys {sorted(map(str, got))}",
            )
        extra = [k for k in got if k not in expected]
        if extra:
            return _Mismatch(
                path,
                f"unexpected key(s) {extra}; "
                f"expected keys {sorted(map(str, expected))}",
            )
        for key in expected:
            found = _compare(
                got[key], expected[key], f"{path}[{key!r}]", rtol=rtol, atol=atol, m=m
            )
            if found:
                return found
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return _Mismatch(
                path,
                f"expected a {type(expected).__name__} of {len(expected)} items, "
                f"got {_describe(got)}",
            )
        if len(got) != len(expected):
            return _Mismatch(path, f"expected {len(expected)} items, got {len(got)}")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            found = _compare(g, e, f"{path}[{i}]", rtol=rtol, atol=atol, m=m)
            if found:
                return found
        return None
    if isinstance(expected, str):
        if got != expected:
            return _Mismatch(path, f"expected {expected!r}, got {got!r}")
        return None
    if _is_array_like(expected):
        return _compare_arrays(got, expected, path, rtol=rtol, atol=atol, m=m)
    if got != expected:
        return _Mismatch(path, f"expected {expected!r}, got {got!r}")
    return None


def compare(
    got,
    expected,
    *,
    name: str = "output",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    m: int | None = None,
) -> str | None:
    """Compare a (possibly nested) output with the expected one.

    Args:
        got: what the student's code returned: an array, a number, or dicts,
            tuples and lists of them.
        expected: the reference output, same structure.
        name: how to call the output in messages, e.g. ``"grads"``.
        rtol, atol: tolerances for ``np.isclose``.
        m: number of examples, if known, so that a missing ``1/m`` is recognised.

    Returns:
        None if they agree, else a message naming the first place they differ.
    """
    found = _compare(got, expected, name, rtol=rtol, atol=atol, m=m)
    return None if found is None else found.render(name).split(": ", 1)[1]


def _snapshot(values):
    try:
        return copy.deepcopy(values)
    except Exception:  # noqa: BLE001 - an uncopyable input just skips the check
        return None


def _mutation(before, after, names: Sequence[str]) -> str | None:
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        label = names[i] if i < len(names) else f"argument {i + 1}"
        if _compare(a, b, label, rtol=0.0, atol=0.0, m=None) is not None:
            return label
    return None


def check(
    fn: Callable,
    args: Sequence = (),
    kwargs: Mapping | None = None,
    *,
    expected,
    name: str | None = None,
    arg_names: Sequence[str] = (),
    output_name: str | None = None,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    m: int | None = None,
    alternatives: Mapping[str, object] | None = None,
    quiet: bool = False,
):
    """Run ``fn`` on copies of the inputs and compare its output with ``expected``.

    Args:
        fn: the student's function.
        args, kwargs: the inputs. ``fn`` receives deep copies; the originals are
            compared with what ``fn`` left behind, to catch in-place changes.
        expected: the reference output (arrays, numbers, dicts, tuples, lists).
        name: the function's name in messages (default ``fn.__name__``).
        arg_names: names of the positional arguments, for messages.
        output_name: name of the output in messages (default ``"output"``).
        rtol, atol: tolerances for ``np.isclose``.
        m: number of examples, so that a missing ``1/m`` is recognised.
        alternatives: known wrong outputs, ``{description of the mistake: output}``;
            if the student's output matches one, the message says which mistake.
        quiet: do not print the pass message.

    Returns:
        What ``fn`` returned.

    Raises:
        CheckFailure: with a message naming where the output differs, or which
            argument was modified in place.
        NotImplementedError: unchanged, if the exercise has not been done yet.
    """
    name = name or getattr(fn, "__name__", "function")
    output_name = output_name or "output"
    kwargs = dict(kwargs or {})
    call_args = copy.deepcopy(list(args))
    call_kwargs = copy.deepcopy(kwargs)
    before = _snapshot(list(args))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"):
            got = fn(*call_args, **call_kwargs)
    # Warnings go to stdout: under nbgrader, anything on stderr voids a test cell.
    for warning in caught[:3]:
        print(
            f"Note: {name} raised a warning: {warning.category.__name__}: "
            f"{warning.message}"
        )
    if before is not None:
        changed = _mutation(before, call_args, list(arg_names))
        if changed is not None:
            raise CheckFailure(
                f"{name} modified its input {changed} in place. Work on a copy "
                "(or use out-of-place operations such as `x = x / m`, not `x /= m`): "
                "the caller still needs the original values."
            )
    mismatch = _compare(got, expected, output_name, rtol=rtol, atol=atol, m=m)
    if mismatch is not None:
        for description, wrong in (alternatives or {}).items():
            if _compare(got, wrong, output_name, rtol=rtol, atol=atol, m=m) is None:
                mismatch.hints.insert(0, description)
                break
        raise CheckFailure(mismatch.render(name))
    if not quiet:
        print(f"{name}: {PASS_MESSAGE}.")
    return got


@contextmanager
def patched_globals(namespace: dict, **replacements):
    """Temporarily replace names in a namespace (e.g. a notebook's ``globals()``).

    Used by hidden tests to grade one function with correct versions of the
    functions it calls, so that a bug in one exercise costs only its own points.

    Args:
        namespace: the dict to patch, usually ``globals()``.
        **replacements: name -> object to put in place while the block runs.
    """
    missing = object()
    saved = {key: namespace.get(key, missing) for key in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                namespace.pop(key, None)
            else:
                namespace[key] = value
