"""Verified scoring: the data protocol, the trusted side, and the real assignments.

The fast tests pin the protocol between the trusted grader and the sandboxed
runner (only plain data crosses it) and the trusted side's bookkeeping (which
reference code the runner may see, fresh seeds, reconciliation with nbgrader).
The slow ones verify every real assignment: the reference earns full marks, the
untouched release nothing, and each typical mistake of
``tests/files/mistakes/<id>.json`` loses exactly the cells it breaks, as it does
under nbgrader.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import nbformat
import numpy as np
import pytest
from conftest import apply_mistake, assignments, load_mistakes, source_notebook

from autograder import REPO_ROOT
from autograder.sandbox.availability import sandbox_status
from autograder.sandbox.config import SandboxConfig
from autograder.sandbox.files import runner as protocol
from autograder.source import (
    called_definitions,
    course_root,
    graded_cells,
    load_source_notebook,
    reference_calls,
    reference_code,
)
from autograder.verify.reconcile import reconcile
from autograder.verify.seeds import choose_run_seed, fresh_inputs, reference_failures
from autograder.verify.submission import _student_cells, verify_submission
from autograder.verify.verdicts import CellVerdict, Verification

HOSTILE = REPO_ROOT / "tests" / "files" / "hostile"
FIXTURE_COURSE = HOSTILE / "course"
if str(HOSTILE) not in sys.path:
    sys.path.insert(0, str(HOSTILE))

SANDBOX_WORKS, SANDBOX_WHY = sandbox_status(SandboxConfig())
# Outside CI a machine without working bubblewrap skips these; in CI they run
# (and fail) so that a broken sandbox can never pass as skipped.
needs_bwrap = pytest.mark.skipif(
    not SANDBOX_WORKS and not os.environ.get("CI"), reason=SANDBOX_WHY
)
FIXTURE_SOURCE = FIXTURE_COURSE / "source" / "mini" / "mini.ipynb"


def _roundtrip(value):
    tree, payload = protocol.encode(value)
    tree = json.loads(json.dumps(tree))  # what actually travels
    return protocol.decode(tree, protocol.open_payload(payload))


# --- the protocol -------------------------------------------------------------------


def test_plain_data_crosses_the_protocol_unchanged():
    value = {
        "W1": np.arange(6.0).reshape(2, 3),
        "mask": np.array([[True, False]]),
        "ids": np.arange(4, dtype=np.int32),
        3: (1, 2.5, -0.0, float("inf"), complex(1, -2), None, True, "text"),
        ("a", 1): [np.float64(0.1), np.int64(7), np.bool_(True), np.array(2.0)],
        "nan": float("nan"),
    }
    back = _roundtrip(value)
    assert set(back) == set(value)
    np.testing.assert_array_equal(back["W1"], value["W1"])
    assert back["mask"].dtype == np.bool_ and back["ids"].dtype == np.int32
    assert back[3][:3] == (1, 2.5, -0.0) and back[3][3] == float("inf")
    assert back[3][4:] == (complex(1, -2), None, True, "text")
    assert type(back[3][0]) is int and type(back[3][1]) is float
    scalars = back[("a", 1)]
    assert [type(x) for x in scalars[:3]] == [np.float64, np.int64, np.bool_]
    assert isinstance(scalars[3], np.ndarray) and scalars[3].shape == ()
    assert np.isnan(back["nan"])
    assert isinstance(back[3], tuple) and isinstance(back[("a", 1)], list)


def test_array_subclasses_arrive_as_plain_arrays_with_their_values():
    class AlwaysEqual(np.ndarray):
        def __eq__(self, other):
            return np.ones(self.shape, dtype=bool)

    sneaky = np.zeros(3).view(AlwaysEqual)
    back = _roundtrip(sneaky)
    assert type(back) is np.ndarray
    assert not np.array_equal(back, [1.0, 4.0, 9.0])
    masked = _roundtrip(np.ma.masked_array([1.0, 2.0], mask=[True, False]))
    assert type(masked) is np.ndarray and masked.shape == (2,)


@pytest.mark.parametrize(
    "value",
    [object(), lambda: 1, np.array([object()], dtype=object), {1, 2}, b"bytes"],
    ids=["object", "function", "object-array", "set", "bytes"],
)
def test_values_that_are_not_plain_data_are_refused(value):
    with pytest.raises(protocol.UnsupportedValue):
        protocol.encode(value)


def test_a_self_containing_list_is_refused_not_recursed_forever():
    loop = []
    loop.append(loop)
    with pytest.raises(protocol.UnsupportedValue, match="nested too deeply"):
        protocol.encode(loop)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_payloads_with_pickles_compression_or_garbage_are_refused():
    pickled = io.BytesIO()
    with zipfile.ZipFile(pickled, "w") as archive:
        with archive.open("a0.npy", "w") as member:
            np.lib.format.write_array(
                member, np.array([{"x": 1}], dtype=object), allow_pickle=True
            )
    compressed = io.BytesIO()
    np.savez_compressed(compressed, a0=np.zeros(3))
    structured = _npz(a0=np.zeros(2, dtype=[("x", "f8"), ("y", "i4")]))
    for payload in (pickled.getvalue(), compressed.getvalue(), structured, b"junk"):
        with pytest.raises(protocol.ProtocolError):
            protocol.open_payload(payload)


@pytest.mark.parametrize(
    "tree",
    [
        {"t": "pickle", "v": "gASV"},
        {"t": "array", "k": "a9"},
        {"t": "str", "v": 3},
        {"t": "int", "v": "9" * 5000},
        {"t": "float", "v": "not-a-float"},
        {"t": "dict", "v": [[{"t": "list", "v": []}, {"t": "none"}]]},
        {"t": "npscalar", "k": "a0"},
        "just a string",
    ],
    ids=[
        "unknown-kind",
        "missing-array",
        "wrong-type",
        "huge-int",
        "bad-float",
        "unhashable-key",
        "scalar-with-shape",
        "not-a-node",
    ],
)
def test_malformed_values_are_refused(tree):
    arrays = protocol.open_payload(_npz(a0=np.zeros(2)))
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(tree, arrays)


def test_deeply_nested_values_are_refused():
    tree = {"t": "none"}
    for _ in range(protocol.MAX_DEPTH + 2):
        tree = {"t": "list", "v": [tree]}
    with pytest.raises(protocol.ProtocolError, match="nested"):
        protocol.decode(tree, {})


def test_frames_with_bad_magic_or_huge_lengths_are_refused():
    good = protocol._HEADER.pack(protocol.MAGIC, 10, 0)
    assert protocol.parse_lengths(good) == (10, 0)
    with pytest.raises(protocol.ProtocolError, match="magic"):
        protocol.parse_lengths(protocol._HEADER.pack(b"EVIL", 10, 0))
    with pytest.raises(protocol.ProtocolError, match="too large"):
        protocol.parse_lengths(protocol._HEADER.pack(protocol.MAGIC, 1, 2**40))
    with pytest.raises(protocol.ProtocolError, match="not JSON"):
        protocol.parse_header(b"\xff\xfe")


# --- the trusted side ----------------------------------------------------------------


def test_graded_cells_are_read_from_the_source_notebook():
    cells = graded_cells("mini", source_root=FIXTURE_COURSE)
    assert [(c.grade_id, c.function, c.points) for c in cells] == [
        ("test_square", "square", 10.0),
        ("test_mean", "mean", 10.0),
        ("test_sum_of_squares", "sum_of_squares", 10.0),
    ]
    assert {c.module for c in cells} == {"mini_hidden"}


def test_the_runner_gets_reference_code_only_of_earlier_functions():
    source = load_source_notebook(FIXTURE_SOURCE)
    code = reference_code(source, ["square"], forbidden={"sum_of_squares"})
    assert "def square" in code and "import numpy as np" in code
    assert "def sum_of_squares" not in code and "def mean" not in code
    # Never the function being graded, even if a test asked to patch it.
    assert "def " not in reference_code(source, ["sum_of_squares"], {"sum_of_squares"})


def test_what_calls_what_follows_calls_through_each_other_in_notebook_order():
    uses = {"a": set(), "b": {"a", "x"}, "c": {"b", "np"}, "d": {"c", "d"}}
    assert called_definitions(uses, ["d"]) == ["a", "b", "c", "d"]
    assert called_definitions(uses, ["c"]) == ["a", "b", "c"]
    assert called_definitions(uses, ["d"], forbidden={"b"}) == ["c", "d"]
    assert called_definitions(uses, ["x"]) == []


def test_hidden_tests_patch_in_what_the_reference_calls():
    with course_root(FIXTURE_COURSE):
        assert reference_calls("sum_of_squares", "mini") == ["square"]
        assert reference_calls("square", "mini") == []
    # Through a function in between: 01's model reaches sigmoid via optimize.
    assert reference_calls("model", "01_logistic_regression") == [
        "sigmoid",
        "initialize_with_zeros",
        "propagate",
        "optimize",
        "predict",
    ]


def test_locked_cells_come_from_the_source_and_extra_cells_only_define():
    source = load_source_notebook(FIXTURE_SOURCE)
    nb = nbformat.read(str(FIXTURE_SOURCE), as_version=4)
    nb.cells[1].source = "import numpy as np\nnp.allclose = None"  # the setup cell
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "print('slow exploration')\ndef helper():\n    return 1"
        )
    )
    cells = _student_cells(nb, source)
    sources = [c["source"] for c in cells]
    assert "np.allclose = None" not in sources[0]
    assert not any("hidden.GRADER" in s for s in sources)  # no test cells
    assert sum("def square" in s for s in sources) == 1
    assert cells[-1]["only"] == "definitions"
    assert not any(c.get("only") for c in cells[:-1])
    # The runner (in the sandbox) keeps only definitions of such cells.
    kept = protocol._definitions_only(cells[-1]["source"])
    assert kept == "def helper():\n    return 1"
    assert protocol._definitions_only("def broken(:") == ""


def test_fresh_inputs_reseed_only_the_hidden_test_modules():
    here = {__name__}
    literal = np.random.default_rng(5).standard_normal(3)
    other_module = {"__name__": "somewhere.else", "np": np}
    with fresh_inputs(123, here):
        fresh = np.random.default_rng(5).standard_normal(3)
        again = np.random.default_rng(5).standard_normal(3)
        exec("elsewhere = np.random.default_rng(5).standard_normal(3)", other_module)
    with fresh_inputs(124, here):
        other_run = np.random.default_rng(5).standard_normal(3)
    with fresh_inputs(None, here):
        unchanged = np.random.default_rng(5).standard_normal(3)
    assert not np.allclose(fresh, literal) and np.array_equal(fresh, again)
    assert not np.allclose(fresh, other_run)
    np.testing.assert_array_equal(other_module["elsewhere"], literal)
    np.testing.assert_array_equal(unchanged, literal)
    np.testing.assert_array_equal(np.random.default_rng(5).standard_normal(3), literal)


def test_chosen_run_seeds_let_the_reference_pass():
    seed = choose_run_seed("mini", source_root=FIXTURE_COURSE)
    assert isinstance(seed, int) and seed >= 0
    assert reference_failures("mini", seed, source_root=FIXTURE_COURSE) == []


def test_reconcile_lets_the_verified_score_count_and_flags_disagreements():
    """A disagreement is the notebook's run and the grader's run of the *same*
    visible check differing; a hidden-test failure alone is not one."""
    verification = Verification(
        {
            # visible check failed in the trusted run, passed in the notebook
            "test_a": CellVerdict(0.0, 10.0, "0: visible check failed", "failed"),
            "test_b": CellVerdict(10.0, 10.0, "passed", "passed", "passed"),
            "test_c": CellVerdict(None, 5.0, "not verified: no hidden grader"),
            # no notebook score (the kernel died): not a disagreement
            "test_d": CellVerdict(10.0, 10.0, "passed", "passed", "passed"),
            # visible passed on both sides, hidden failed: an honest mistake
            "test_e": CellVerdict(0.0, 10.0, "0: wrong on hidden", "passed", "failed"),
            # the notebook failed a check the grader's run passes
            "test_f": CellVerdict(10.0, 10.0, "passed", "passed", "passed"),
        }
    )
    nbgrader = {"test_a": 10.0, "test_b": 10.0, "test_c": 5.0, "test_e": 10.0}
    out = reconcile({**nbgrader, "test_f": 0.0}, verification)
    assert out["test_a"].score == 0.0 and out["test_a"].disagree
    assert "visible check failed" in out["test_a"].note
    assert out["test_b"].score == 10.0 and not out["test_b"].disagree
    assert out["test_c"].score == 5.0 and out["test_c"].verified is None
    assert not out["test_c"].disagree
    assert out["test_d"].score == 10.0 and not out["test_d"].disagree
    assert out["test_e"].score == 0.0 and not out["test_e"].disagree
    assert out["test_f"].score == 10.0 and out["test_f"].disagree


def test_reconcile_does_not_flag_a_cell_whose_visible_check_was_skipped():
    """A check that skipped its function (it calls a broken exercise) passes in
    both runs: the hidden tests' verified score counts, without a flag."""
    verification = Verification(
        {
            "test_a": CellVerdict(0.0, 10.0, "0: a is wrong", "not checked", "failed"),
            "test_b": CellVerdict(10.0, 10.0, "passed", "not checked", "passed"),
        }
    )
    out = reconcile({"test_a": 10.0, "test_b": 10.0}, verification)
    assert out["test_a"].score == 0.0 and not out["test_a"].disagree
    assert out["test_b"].score == 10.0 and not out["test_b"].disagree


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01binary\xff", b'{"cells": [', b"x" * 2048],
    ids=["empty", "binary", "cut-json", "too-large"],
)
def test_unreadable_notebooks_score_zero_without_running_code(tmp_path, content):
    path = tmp_path / "mini.ipynb"
    path.write_bytes(content)
    # A missing bwrap proves nothing was started: it would warn or fail.
    config = SandboxConfig(bwrap=str(tmp_path / "none"), require_sandbox=True)
    result = verify_submission(
        path,
        "mini",
        sandbox_config=config,
        source_root=FIXTURE_COURSE,
        max_notebook_bytes=1024,
        run_seed=None,
    )
    assert {g: v.points for g, v in result.items()} == {
        "test_square": 0.0,
        "test_mean": 0.0,
        "test_sum_of_squares": 0.0,
    }
    assert result.notes


# --- through the sandboxed runner ---------------------------------------------------


def _cells_with(nb, **sources):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell.source = sources[grade_id]
    return nb


@needs_bwrap
@pytest.mark.slow
def test_reference_objects_never_leak_the_graded_function(tmp_path):
    """Patched-in reference functions cannot lead to the reference being graded."""
    nb = nbformat.read(str(FIXTURE_SOURCE), as_version=4)
    thief = (
        "def sum_of_squares(X):\n"
        "    found = square.__globals__.get('sum_of_squares')\n"
        "    if found is not None and found is not sum_of_squares:\n"
        "        return found(X)\n"
        "    return np.zeros((X.shape[0], 1))"
    )
    path = tmp_path / "mini.ipynb"
    nbformat.write(_cells_with(nb, sum_of_squares=thief), str(path))
    config = SandboxConfig(scratch_dir=str(tmp_path), stub_modules=(), data_dirs=())
    result = verify_submission(
        path, "mini", sandbox_config=config, source_root=FIXTURE_COURSE
    )
    assert result["test_square"].points == 10.0
    assert result["test_sum_of_squares"].points == 0.0


@needs_bwrap
@pytest.mark.slow
def test_in_place_changes_to_inputs_are_seen_by_the_hidden_tests(tmp_path):
    nb = nbformat.read(str(FIXTURE_SOURCE), as_version=4)
    # Right values, but the caller's array is changed.
    mutating = "def square(x):\n    x *= x\n    return x.copy()"
    path = tmp_path / "mini.ipynb"
    nbformat.write(_cells_with(nb, square=mutating), str(path))
    config = SandboxConfig(scratch_dir=str(tmp_path), stub_modules=(), data_dirs=())
    result = verify_submission(
        path, "mini", sandbox_config=config, source_root=FIXTURE_COURSE
    )
    assert result["test_square"].points == 0.0
    assert "in place" in result["test_square"].message


def _assignment_config(tmp_path) -> SandboxConfig:
    return SandboxConfig(scratch_dir=str(tmp_path))


def _needs_data(assignment: str):
    if assignment.startswith(("01_", "05_")):
        from dlcourse.data import DatasetError, load_cat_dataset

        try:
            load_cat_dataset()
        except DatasetError as exc:
            (pytest.fail if os.environ.get("CI") else pytest.skip)(
                f"cat dataset unavailable: {exc}"
            )


def _blank(nb):
    """The student version of a source notebook (nbgrader's ClearSolutions)."""
    from nbgrader.preprocessors import ClearSolutions
    from traitlets.config import Config

    from autograder.course import load_config

    config = Config(load_config(REPO_ROOT))
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb, _ = ClearSolutions(config=config).preprocess(nb, {})
    return nb


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignments())
def test_reference_verifies_to_full_marks_and_blank_to_zero(assignment, tmp_path):
    _needs_data(assignment)
    source = source_notebook(assignment)
    config = _assignment_config(tmp_path)
    full = verify_submission(
        source, assignment, sandbox_config=config, workdir=source.parent
    )
    lost = {g: v.message for g, v in full.items() if v.points != v.max_points}
    assert not lost, f"{assignment} (seed {full.run_seed}): {lost}"
    assert full.sandboxed is True
    blank = tmp_path / f"{assignment}.ipynb"
    nbformat.write(_blank(nbformat.read(str(source), as_version=4)), str(blank))
    zero = verify_submission(
        blank, assignment, sandbox_config=config, workdir=source.parent
    )
    earned = {g: v.points for g, v in zero.items() if v.points}
    assert not earned, f"{assignment}: the blank release earned {earned}"
    assert all("not implemented" in v.message for v in zero.values() if v.points == 0)


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignments())
def test_each_typical_mistake_loses_exactly_its_cells_when_verified(
    assignment, tmp_path
):
    _needs_data(assignment)
    mistakes = load_mistakes(assignment)
    if not mistakes:
        pytest.skip(f"{assignment} has no typical mistakes")
    source = source_notebook(assignment)
    nb = nbformat.read(str(source), as_version=4)
    config = _assignment_config(tmp_path)
    problems = []
    for mistake in mistakes:
        path = tmp_path / f"{mistake['name']}.ipynb"
        nbformat.write(apply_mistake(nb, mistake), str(path))
        # The hidden tests' literal seeds, as nbgrader runs them: the same cells
        # must break. (Some hidden inputs tell a mistake apart only on some seeds.)
        result = verify_submission(
            path,
            assignment,
            sandbox_config=config,
            workdir=source.parent,
            run_seed=None,
        )
        lost = {
            g
            for g, v in result.items()
            if v.points is not None and v.points < v.max_points
        }
        if lost != set(mistake["breaks"]):
            details = {g: result[g].message[:200] for g in lost}
            problems.append(
                f"{mistake['name']} (seed {result.run_seed}): lost {sorted(lost)}, "
                f"expected {mistake['breaks']}: {details}"
            )
    assert not problems, "\n".join(problems)
