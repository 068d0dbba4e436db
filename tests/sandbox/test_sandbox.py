"""The sandbox and verified scoring against hostile submissions.

A class of scenario-named submissions (``tests/files/hostile/scenarios/``) of a
three-function fixture assignment (``tests/files/hostile/course``) is graded the
way the pipeline grades: nbgrader autogrades each student in a sandboxed kernel,
then :func:`autograder.verify.submission.verify_submission` judges every graded function
outside the student's process. For every scenario the test requires a definite
outcome and exactly the points its honest parts earn (``Earned:``); for the
class, that ``submitted/`` is untouched, that no marker file appears outside the
sandbox, that the listener the test opens on 127.0.0.1 is never reached, and
that the honest students graded after the hostile ones get full marks.

Scenario files: ``# Key: value`` header lines, then ``# %% <grade_id>`` sections
replacing that cell's code (``# %% new`` appends a cell, ``# %% duplicate
<grade_id>`` inserts a second cell with the same grade id). ``@@NAME@@``
placeholders are filled in by the test (port, paths, a random token).
"""

from __future__ import annotations

import copy
import json
import os
import random
import secrets
import shutil
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from conftest import tree_digest

from autograder import REPO_ROOT
from autograder.course import Course, load_config
from autograder.errors import SandboxUnavailable
from autograder.sandbox.availability import sandbox_status
from autograder.sandbox.config import (
    GiB,
    KiB,
    MiB,
    SandboxConfig,
    SandboxLimits,
    UnsandboxedWarning,
    sandbox_events,
)
from autograder.sandbox.kernel import SandboxKernelManager, sandbox_config_for
from autograder.sandbox.process import Launch
from autograder.verify.reconcile import reconcile
from autograder.verify.seeds import choose_run_seed
from autograder.verify.submission import verify_submission

HOSTILE = REPO_ROOT / "tests" / "files" / "hostile"
FIXTURE_COURSE = HOSTILE / "course"
SCENARIOS = HOSTILE / "scenarios"
ASSIGNMENT = "mini"
GRADE_IDS = ("test_square", "test_mean", "test_sum_of_squares")
POINTS = {grade_id: 10.0 for grade_id in GRADE_IDS}
STUBS = ("autograder.hidden", "mini_hidden")

if str(HOSTILE) not in sys.path:
    sys.path.insert(0, str(HOSTILE))  # mini_hidden, the fixture's hidden tests

#: Tight limits keep the hostile class fast; the defaults are far roomier.
LIMITS = SandboxLimits(
    memory=2 * GiB,
    processes=128,
    file_size=32 * MiB,
    scratch_size=64 * MiB,
    tmp_size=64 * MiB,
    output_per_cell=256 * KiB,
    cell_timeout=4,
    notebook_timeout=15,
)

SANDBOX_WORKS, SANDBOX_WHY = sandbox_status(SandboxConfig())
# Outside CI a machine without working bubblewrap skips these; in CI they run
# (and fail) so that a broken sandbox can never pass as skipped.
needs_bwrap = pytest.mark.skipif(
    not SANDBOX_WORKS and not os.environ.get("CI"), reason=SANDBOX_WHY
)

CATEGORIES = {"resource", "escape", "crash", "tampering", "deception", "malformed"}
#: The scenarios the issue names, by the file that covers each.
REQUIRED = {
    "memory-bomb", "fork-bomb", "disk-filler", "output-flood", "infinite-loop",
    "sleep", "read-source-solutions", "read-gradebook", "read-other-submission",
    "write-outside-scratch", "modify-installed-dlcourse", "connect-localhost-listener",
    "os-exit", "sys-exit-in-solution", "segfault-ctypes", "kernel-kills-itself",
    "monkeypatch-allclose", "monkeypatch-np-testing", "monkeypatch-dlcourse-checks",
    "monkeypatch-builtins", "ndarray-subclass-always-equal", "object-always-equal",
    "edit-locked-cells", "delete-test-cells", "change-points-metadata",
    "duplicate-grade-ids", "print-all-tests-passed", "hardcode-visible-outputs",
    "nbgrader-execution-env", "invalid-json", "old-nbformat", "empty-file",
    "very-large-notebook", "binary-data-ipynb", "wrong-file-name", "notebook-missing",
}  # fmt: skip


# --- scenarios -------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    category: str
    what: str
    earned: frozenset[str]
    fools: frozenset[str] = frozenset()
    nbgrader: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    notebook: str = "solutions"
    deletes: tuple[str, ...] = ()
    sets: list[tuple[str, str, object]] = field(default_factory=list)
    edits: list[tuple[str, str]] = field(default_factory=list)


def parse_scenario(path: Path) -> Scenario:
    header: dict[str, list[str]] = {}
    edits: list[tuple[str, str]] = []
    target, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %% "):
            if target is not None:
                edits.append((target, "\n".join(lines).strip("\n")))
            target, lines = line[5:].strip(), []
        elif target is None and line.startswith("# ") and ":" in line:
            key, value = line[2:].split(":", 1)
            header.setdefault(key.strip().lower(), []).append(value.strip())
        elif target is not None:
            lines.append(line)
    if target is not None:
        edits.append((target, "\n".join(lines).strip("\n")))

    def ids(key):
        words = " ".join(header.get(key, [])).split()
        return frozenset(w for w in words if w != "none")

    notes = {}
    for text in header.get("note", []):
        grade_id, expected = (part.strip() for part in text.split("~", 1))
        notes[grade_id] = expected
    sets = []
    for text in header.get("set", []):
        grade_id, assignment = text.split()
        key, value = assignment.split("=", 1)
        sets.append((grade_id, key, json.loads(value)))
    return Scenario(
        name=path.stem,
        category=header["category"][0],
        what=header["what"][0],
        earned=ids("earned"),
        fools=ids("fools"),
        nbgrader=(header.get("nbgrader") or [None])[0],
        notes=notes,
        notebook=(header.get("notebook") or ["solutions"])[0],
        deletes=tuple(ids("delete")),
        sets=sets,
        edits=edits,
    )


def load_scenarios() -> list[Scenario]:
    return [parse_scenario(p) for p in sorted(SCENARIOS.glob("*.scenario"))]


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def make_submission(scenario: Scenario, source, release, fill: dict) -> dict:
    """The files of one student's submission folder."""
    kind = scenario.notebook
    if kind == "missing":
        return {"README.txt": "I could not finish the notebook, sorry.\n"}
    if kind == "empty":
        return {"mini.ipynb": b""}
    if kind == "binary":
        return {"mini.ipynb": random.Random(7).randbytes(65536)}
    nb = copy.deepcopy(release)
    if kind != "release":
        solutions = {_grade_id(c): c.source for c in source.cells}
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = solutions[_grade_id(cell)]
    for target, code in scenario.edits:
        for name, value in fill.items():
            code = code.replace(f"@@{name}@@", str(value))
        if target == "new":
            cell = nbformat.v4.new_code_cell(code)
            cell.pop("id", None)  # the release is nbformat 4.4: no cell ids
            nb.cells.append(cell)
            continue
        if target.startswith("duplicate "):
            grade_id = target.split()[1]
            index = next(i for i, c in enumerate(nb.cells) if _grade_id(c) == grade_id)
            clone = copy.deepcopy(nb.cells[index])
            clone.source = code
            nb.cells.insert(index + 1, clone)
            continue
        matches = [c for c in nb.cells if _grade_id(c) == target]
        assert len(matches) == 1, f"{scenario.name}: no unique cell {target!r}"
        matches[0].source = code
    nb.cells = [c for c in nb.cells if _grade_id(c) not in scenario.deletes]
    for grade_id, key, value in scenario.sets:
        for cell in nb.cells:
            if _grade_id(cell) == grade_id:
                cell.metadata["nbgrader"][key] = value
    if kind == "large":
        cell = nbformat.v4.new_markdown_cell("lorem ipsum " * 1_750_000)
        cell.pop("id", None)
        nb.cells.append(cell)
    if kind == "nbformat3":
        code = [
            c.source for c in nb.cells if c.cell_type == "code" and "def " in c.source
        ]
        setup = "import numpy as np\nfrom dlcourse.checks import check"
        old = nbformat.v3.new_notebook(
            worksheets=[
                nbformat.v3.new_worksheet(
                    cells=[nbformat.v3.new_code_cell(input=s) for s in [setup, *code]]
                )
            ]
        )
        return {"mini.ipynb": json.dumps(old, indent=1)}
    text = nbformat.writes(nb)
    if kind == "invalid-json":
        return {"mini.ipynb": text[: len(text) // 2]}
    if kind == "wrong-name":
        return {"mini (1).ipynb": text}
    return {"mini.ipynb": text}


# --- the graded class -----------------------------------------------------------


@dataclass
class Graded:
    scenario: Scenario
    nbgrader_ok: bool
    nbgrader_log: str
    nbgrader_scores: dict
    verification: dict
    final: dict
    outputs: str
    seconds: float


class _Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _markers(token: str, roots) -> list[str]:
    found = []
    for root, recursive in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        pattern = f"**/*{token}*" if recursive else f"*{token}*"
        found += [str(p) for p in root.glob(pattern)]
    return found


def _outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text") or f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Grade every scenario as one class; yield the results and the evidence."""
    if not SANDBOX_WORKS:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(SANDBOX_WHY)
    base = tmp_path_factory.mktemp("hostile")
    root, scratch = base / "course", base / "scratch"
    token = secrets.token_hex(8)
    canary = Path.home() / f".autograder-canary-{secrets.token_hex(4)}"
    canary.write_text(f"secret {token}\n")
    listener = _Listener()
    os.environ["AUTOGRADER_TEST_SECRET"] = token
    sandbox = dict(stub_modules=STUBS, data_dirs=())
    config = load_config(root)
    config.merge(sandbox_config_for(scratch, LIMITS, **sandbox))
    sandbox_config = SandboxConfig(limits=LIMITS, scratch_dir=str(scratch), **sandbox)
    try:
        course = Course(root, [ASSIGNMENT], source_root=FIXTURE_COURSE, config=config)
        release_dir = course.generate(ASSIGNMENT)
        source = nbformat.read(
            str(FIXTURE_COURSE / "source" / ASSIGNMENT / "mini.ipynb"), as_version=4
        )
        release = nbformat.read(str(release_dir / "mini.ipynb"), as_version=4)
        fill = {
            "PORT": listener.port,
            "TOKEN": token,
            "REPO_ROOT": REPO_ROOT,
            "COURSE_ROOT": root,
            "HOME": Path.home(),
            "HOME_CANARY": canary,
            "GRADER_PID": os.getpid(),
        }
        scenarios = {s.name: s for s in load_scenarios()}
        for name, scenario in scenarios.items():
            course.submit(name, ASSIGNMENT, {})
            files = make_submission(scenario, source, release, fill)
            course.submit(name, ASSIGNMENT, files)
        before = tree_digest(root / "submitted")
        # Honest students last: the rest of the class is graded normally.
        order = sorted(
            scenarios, key=lambda n: (scenarios[n].category == "baseline", n)
        )
        run_seed = choose_run_seed(ASSIGNMENT, source_root=FIXTURE_COURSE)
        results = {}
        for name in order:
            results[name] = _grade_one(
                course, scenarios[name], sandbox_config, run_seed, base
            )
        evidence = {
            "submitted_before": before,
            "submitted_after": tree_digest(root / "submitted"),
            "connections": listener.connections,
            "markers": _markers(
                token,
                [
                    (root, True),
                    (REPO_ROOT, False),
                    (REPO_ROOT / "dlcourse", True),
                    (REPO_ROOT / "autograder", True),
                    (Path(nbformat.__file__).parent.parent / "numpy", False),
                    (Path.home(), False),
                    (Path("/tmp"), False),
                ],
            ),
            "events": sandbox_events(scratch),
            "root": root,
        }
        yield results, evidence
    finally:
        listener.close()
        canary.unlink(missing_ok=True)
        os.environ.pop("AUTOGRADER_TEST_SECRET", None)


def _grade_one(course, scenario, sandbox_config, run_seed, base) -> Graded:
    started = time.monotonic()
    name = scenario.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = course.autograde(ASSIGNMENT, name)
    scores, outputs = {}, ""
    if outcome["success"]:
        scores = {k: s.score for k, s in course.scores(ASSIGNMENT, name).items()}
        outputs = _outputs(course.autograded_notebook(ASSIGNMENT, name, "mini.ipynb"))
    workdir = course.root / "autograded" / name / ASSIGNMENT
    if not workdir.is_dir():
        workdir = base / "empty" / name
        workdir.mkdir(parents=True)
    verification = verify_submission(
        course.root / "submitted" / name / ASSIGNMENT / "mini.ipynb",
        ASSIGNMENT,
        sandbox_config=sandbox_config,
        source_root=FIXTURE_COURSE,
        workdir=workdir,
        run_seed=run_seed,
    )
    final = reconcile(scores, verification)
    return Graded(
        scenario,
        bool(outcome["success"]),
        str(outcome.get("log", "")) + str(outcome.get("error", "")),
        scores,
        verification,
        final,
        outputs,
        time.monotonic() - started,
    )


SCENARIO_NAMES = [s.name for s in load_scenarios()]


# --- the class, scenario by scenario ----------------------------------------------


def test_scenarios_cover_every_category_of_the_issue():
    scenarios = load_scenarios()
    hostile = [s for s in scenarios if s.category != "baseline"]
    assert len(hostile) >= 25
    assert {s.category for s in hostile} == CATEGORIES
    missing = REQUIRED - {s.name for s in scenarios}
    assert not missing, f"no scenario file for {sorted(missing)}"
    for s in scenarios:
        assert s.earned <= set(GRADE_IDS), s.name
        assert s.fools <= set(GRADE_IDS) - s.earned, s.name


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenario_earns_exactly_its_honest_points(graded_class, name):
    results, _ = graded_class
    graded = results[name]
    scenario = graded.scenario
    final = graded.final
    assert set(final) == set(GRADE_IDS), f"{name}: cells {sorted(final)}"
    got = {g: final[g].score for g in GRADE_IDS}
    want = {g: (POINTS[g] if g in scenario.earned else 0.0) for g in GRADE_IDS}
    detail = "\n".join(f"  {g}: {final[g].note}" for g in GRADE_IDS)
    assert got == want, (
        f"{name} ({scenario.what}):\n{detail}\n{graded.nbgrader_log[-600:]}"
    )
    for grade_id in GRADE_IDS:
        assert graded.verification[grade_id].max_points == POINTS[grade_id]
    assert graded.verification.sandboxed is not False


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenario_has_a_definite_outcome(graded_class, name):
    results, _ = graded_class
    graded = results[name]
    scenario = graded.scenario
    if scenario.nbgrader == "graded":
        assert graded.nbgrader_ok, (
            f"{name}: nbgrader failed:\n{graded.nbgrader_log[-800:]}"
        )
    elif scenario.nbgrader == "failed":
        assert not graded.nbgrader_ok, f"{name}: nbgrader graded it"
    for grade_id, expected in scenario.notes.items():
        message = graded.verification[grade_id].message
        assert expected in message, f"{name}: {grade_id}: {message!r}"
    # Bounded: no scenario takes longer than its notebook and verification limits.
    assert graded.seconds < 2 * LIMITS.notebook_timeout + 20, (
        f"{name}: {graded.seconds}"
    )


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in load_scenarios() if s.fools], ids=str)
def test_fooled_notebook_checks_are_flagged_and_overruled(graded_class, name):
    results, _ = graded_class
    graded = results[name]
    for grade_id in graded.scenario.fools:
        nb_score = graded.nbgrader_scores.get(grade_id)
        assert nb_score == POINTS[grade_id], (
            f"{name}: the notebook run was expected to be fooled on {grade_id}, "
            f"it gave {nb_score}"
        )
        final = graded.final[grade_id]
        assert final.disagree and "the same visible check failed" in final.note
        assert final.score == 0.0


@needs_bwrap
@pytest.mark.slow
def test_resource_limits_show_in_the_notebooks(graded_class):
    results, evidence = graded_class
    expected = {
        "memory-bomb": "MemoryError",
        "fork-bomb": "Resource temporarily unavailable",
        "disk-filler": "File too large",
        "output-flood": "OutputLimitExceeded",
        "infinite-loop": "KeyboardInterrupt",
    }
    for name, text in expected.items():
        assert text in results[name].outputs, f"{name}:\n{results[name].outputs[-800:]}"
    assert "stopped after" in results["disk-filler"].outputs
    killed = [e for e in evidence["events"] if e.get("event") == "killed"]
    assert any("time limit" in e["reason"] for e in killed), killed


@needs_bwrap
@pytest.mark.slow
def test_submitted_folder_is_untouched(graded_class):
    _, evidence = graded_class
    assert evidence["submitted_before"] == evidence["submitted_after"]


@needs_bwrap
@pytest.mark.slow
def test_nothing_is_written_outside_the_scratch_folder(graded_class):
    _, evidence = graded_class
    assert evidence["markers"] == []


@needs_bwrap
@pytest.mark.slow
def test_no_connection_reaches_the_listener(graded_class):
    _, evidence = graded_class
    assert evidence["connections"] == 0


@needs_bwrap
@pytest.mark.slow
def test_honest_students_after_the_hostile_ones_get_full_marks(graded_class):
    results, _ = graded_class
    honest = results["honest-reference"]
    assert honest.nbgrader_ok
    assert honest.nbgrader_scores == POINTS
    assert {g: v.points for g, v in honest.verification.items()} == POINTS
    assert not any(r.disagree for r in honest.final.values())


# --- the kernel's view -------------------------------------------------------------

_PROBE = r"""
import json, os, socket, resource
import dlcourse
DLCOURSE = os.path.dirname(dlcourse.__file__)
def can_read(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False
report = {
    "cwd": os.getcwd(), "home": os.environ.get("HOME"), "uid": os.getuid(),
    "workdir": listing("."), "repo": listing(@REPO@), "course": listing(@COURSE@),
    "home_listing": listing(@HOME@), "read_gradebook": can_read(@GRADEBOOK@),
    "read_source": can_read(@SOURCE@), "read_other": can_read(@OTHER@),
    "read_canary": can_read(@CANARY@), "write_cwd": can_write("scratch.txt"),
    "write_course": can_write(@COURSE@ + "/PWNED"),
    "write_repo": can_write(@REPO@ + "/PWNED"),
    "write_dlcourse": can_write(os.path.join(DLCOURSE, "PWNED")),
    "secret": os.environ.get("AUTOGRADER_TEST_SECRET"), "connects": connects(@PORT@),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
}
print(json.dumps(report))
"""


def _run_cells(cells, workdir, config, timeout=10):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(
        nb,
        kernel_manager_class=SandboxKernelManager,
        timeout=timeout,
        interrupt_on_timeout=True,
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.km = client.create_kernel_manager()
    client.km.sandbox_options = config.to_dict()
    client.execute()
    return nb


@pytest.fixture
def fake_course(tmp_path):
    """A course-like tree around one submission folder, with secrets beside it."""
    root = tmp_path / "course"
    (root / "source" / "a").mkdir(parents=True)
    (root / "source" / "a" / "a.ipynb").write_text("SOLUTIONS")
    (root / "gradebook.db").write_text("SQLite format 3")
    (root / "submitted" / "other" / "a").mkdir(parents=True)
    (root / "submitted" / "other" / "a" / "a.ipynb").write_text("OTHER")
    work = root / "autograded" / "me" / "a"
    work.mkdir(parents=True)
    (work / "helper.py").write_text("VALUE = 42\n")
    (work / "a.ipynb").write_text("HIDDEN TESTS INSIDE")
    return root, work


@needs_bwrap
@pytest.mark.slow
def test_sandboxed_kernel_sees_only_its_submission(fake_course, tmp_path, monkeypatch):
    root, work = fake_course
    canary = Path.home() / f".autograder-canary-{secrets.token_hex(4)}"
    canary.write_text("secret")
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "leaked")
    listener = _Listener()
    probe = _PROBE
    for key, value in {
        "REPO": REPO_ROOT,
        "COURSE": root,
        "HOME": Path.home(),
        "GRADEBOOK": root / "gradebook.db",
        "SOURCE": root / "source" / "a" / "a.ipynb",
        "OTHER": root / "submitted" / "other" / "a" / "a.ipynb",
        "CANARY": canary,
        "PORT": listener.port,
    }.items():
        probe = probe.replace(
            f"@{key}@", repr(str(value)) if key != "PORT" else str(value)
        )
    before = tree_digest(root)
    config = SandboxConfig(scratch_dir=str(tmp_path / "scratch"), data_dirs=())
    try:
        nb = _run_cells(["import helper; print(helper.VALUE)", probe], work, config)
    finally:
        listener.close()
        canary.unlink()
    assert nb.cells[0].outputs[0].text.strip() == "42"
    report = json.loads(nb.cells[1].outputs[0].text)
    assert report["cwd"] == str(work) and report["home"] == str(work)
    assert report["workdir"] == ["helper.py"]  # no notebook (it holds hidden tests)
    assert report["repo"] == [".venv", "dlcourse"] or set(report["repo"]) <= {
        ".venv",
        "dlcourse",
        "datasets",
    }
    assert report["course"] == ["autograded"]
    assert not any(
        report[k]
        for k in ("read_gradebook", "read_source", "read_other", "read_canary")
    )
    assert report["write_cwd"] is True
    assert not any(report[k] for k in ("write_course", "write_repo", "write_dlcourse"))
    assert report["secret"] is None and report["connects"] is False
    assert listener.connections == 0
    assert max(report["pids"]) < 100  # its own process namespace
    assert report["nproc"] == SandboxLimits().processes
    assert report["as"] == SandboxLimits().memory
    if os.geteuid() == 0:
        assert report["uid"] != 0
    assert tree_digest(root) == before  # the scratch file lived in a tmpfs


@needs_bwrap
@pytest.mark.slow
def test_cell_interrupt_keeps_the_kernel_and_notebook_limit_kills_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    limits = SandboxLimits(notebook_timeout=6)
    config = SandboxConfig(limits=limits, scratch_dir=str(tmp_path / "s"), data_dirs=())
    nb = _run_cells(
        ["import time\ntime.sleep(1000)", "print('next cell runs')"], work, config, 2
    )
    assert nb.cells[1].outputs[0].text.strip() == "next cell runs"
    from nbclient.exceptions import DeadKernelError

    stubborn = (
        "while True:\n"
        "    try:\n"
        "        time.sleep(1000)\n"
        "    except BaseException:\n"
        "        pass"
    )
    started = time.monotonic()
    with pytest.raises(DeadKernelError):
        _run_cells(["import time", stubborn], work, config, 30)
    assert time.monotonic() - started < 20
    reasons = [e.get("reason", "") for e in sandbox_events(tmp_path / "s")]
    assert any("notebook time limit (6 s)" in r for r in reasons)


# --- without bubblewrap ------------------------------------------------------------


def test_missing_bwrap_grades_unsandboxed_with_a_loud_warning(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    config = SandboxConfig(
        bwrap=str(tmp_path / "no-such-bwrap"), scratch_dir=str(tmp_path / "s")
    )
    launch = Launch(
        [sys.executable, "-c", "import os; print(os.getcwd())"],
        workdir=work,
        config=config,
    )
    with pytest.warns(UnsandboxedWarning, match="UNSANDBOXED"):
        argv, env = launch.prepare()
    assert launch.sandboxed is False
    assert "bwrap" not in " ".join(argv)
    import subprocess

    done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True)
    assert done.stdout.strip() == str(work)
    assert "UNSANDBOXED GRADING" in capsys.readouterr().err
    launch.cleanup()


@pytest.mark.slow
def test_missing_bwrap_kernel_runs_unsandboxed_and_is_logged(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    scratch = tmp_path / "s"
    config = SandboxConfig(
        bwrap=str(tmp_path / "no-such-bwrap"), scratch_dir=str(scratch), data_dirs=()
    )
    with pytest.warns(UnsandboxedWarning):
        nb = _run_cells(
            [
                "import os, resource\nprint(os.getcwd())",
                "print(resource.getrlimit(resource.RLIMIT_AS)[0])",
            ],
            work,
            config,
        )
    assert nb.cells[0].outputs[0].text.strip() == str(work)
    assert int(nb.cells[1].outputs[0].text) == SandboxLimits().memory
    starts = [e for e in sandbox_events(scratch) if e["event"] == "start"]
    assert starts and all(e["sandboxed"] is False for e in starts)


@pytest.mark.slow
def test_missing_bwrap_verification_is_marked_unsandboxed(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    config = SandboxConfig(
        bwrap=str(tmp_path / "no-such-bwrap"),
        scratch_dir=str(tmp_path / "s"),
        stub_modules=STUBS,
        data_dirs=(),
    )
    notebook = FIXTURE_COURSE / "source" / ASSIGNMENT / "mini.ipynb"
    with pytest.warns(UnsandboxedWarning):
        result = verify_submission(
            notebook,
            ASSIGNMENT,
            sandbox_config=config,
            source_root=FIXTURE_COURSE,
            workdir=work,
        )
    assert result.sandboxed is False
    assert any("UNSANDBOXED" in note for note in result.notes)
    assert result.total == (30.0, 30.0)


def test_require_sandbox_without_bwrap_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "no-such-bwrap")
    with pytest.raises(SandboxUnavailable, match="sandbox is required"):
        sandbox_config_for(tmp_path / "s", bwrap=missing, require_sandbox=True)
    config = SandboxConfig(bwrap=missing, require_sandbox=True, data_dirs=())
    notebook = FIXTURE_COURSE / "source" / ASSIGNMENT / "mini.ipynb"
    with pytest.raises(SandboxUnavailable, match="not found"):
        verify_submission(
            notebook,
            ASSIGNMENT,
            sandbox_config=config,
            source_root=FIXTURE_COURSE,
            workdir=tmp_path,
        )


def test_sandbox_config_replaces_nbgrader_execute(tmp_path):
    from nbgrader.preprocessors import Execute

    from autograder.sandbox.kernel import SandboxExecute

    c = sandbox_config_for(tmp_path, {"cell_timeout": 7})
    chain = c.Autograde.autograde_preprocessors
    assert SandboxExecute in chain and Execute not in chain
    assert c.Execute.timeout == 7
    assert SandboxConfig.from_dict(c.SandboxKernelManager.sandbox_options).limits == (
        SandboxLimits(cell_timeout=7)
    )
    with pytest.raises(ValueError, match="unknown sandbox limit"):
        sandbox_config_for(tmp_path, {"memroy": 1})
    shutil.rmtree(tmp_path, ignore_errors=True)


@needs_bwrap
@pytest.mark.slow
def test_class_summary_and_time_budget(graded_class):
    """Print the outcome table (``pytest -s``) and bound the class's grading time."""
    results, _ = graded_class
    lines = [f"{'scenario':32s} {'category':10s} nbgrader  verified  final  seconds"]
    for name, graded in sorted(results.items(), key=lambda kv: kv[1].scenario.category):
        nb = sum(graded.nbgrader_scores.values()) if graded.nbgrader_ok else None
        verified = graded.verification.total[0]
        final = sum(r.score or 0.0 for r in graded.final.values())
        shown = "failed" if nb is None else f"{nb:5.0f}"
        lines.append(
            f"{name:32s} {graded.scenario.category:10s} {shown:>8s}  {verified:8.0f}"
            f"  {final:5.0f}  {graded.seconds:7.1f}"
        )
    print("\n" + "\n".join(lines))
    total = sum(g.seconds for g in results.values())
    assert total < 200, f"grading the hostile class took {total:.0f} s"
