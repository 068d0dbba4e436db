"""Verified scores: hidden tests judged outside the student's process.

nbgrader decides a score inside the student's own kernel, where one line
(``np.allclose = lambda *a, **k: True``) turns every later check green. Here the
score of each graded function is decided by the trusted grading process:

1. the student's code runs in a sandboxed *runner*
   (:mod:`autograder.sandbox.files.runner`): the solution cells in full, and the
   ``import``/``def``/``class`` statements of the student's other cells;
2. the hidden test of each graded function (``GRADER.grade(name, namespace)``,
   unchanged) runs *here*, with a namespace whose functions are proxies: a call
   sends the arguments to the runner, the student's function computes the output
   there, and only data comes back (numbers, strings, plain arrays and
   containers of them, never pickles or code);
3. inputs are fresh for every grading run: integer seeds given to
   ``np.random.default_rng`` by the hidden test modules are mixed with a random
   per-run seed (recorded in the result, so a run can be reproduced);
4. earlier exercises that a hidden test patches with correct versions are
   patched in the runner too: the runner receives the reference code of just
   those functions (and what they call), never of the function being graded or
   of one graded later; functions are graded in notebook order so the student's
   code never sees a reference it could still use.

The comparison itself is the hidden test's own (``dlcourse.checks``), running
with the real numpy on values that are plain ``ndarray`` objects rebuilt from
bytes: an array subclass, a patched ``np.allclose`` or a printed "All tests
passed" cannot change it.

:func:`verify_submission` returns the verified points of every test cell that
calls a hidden grader; :func:`reconcile` sets them against nbgrader's
in-notebook scores, flags where they disagree, and lets the verified score count.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import nbformat
import numpy as np

from ..errors import AutograderError
from ..grading.outcomes import ENVIRONMENT_ERRORS
from ..sandbox.availability import resolve_sandboxed
from ..sandbox.command import SANDBOX_RUNNER_SCRIPT
from ..sandbox.config import SandboxConfig
from ..sandbox.files import runner as protocol
from ..sandbox.process import Launch
from ..source import course_root, source_notebook_path
from .visible import (
    FAILED,
    NOT_CHECKED,
    PASSED,
    run_visible_check,
    strip_hidden_tests,
    top_level_statements,
)

__all__ = [
    "CellVerdict",
    "Reconciled",
    "Verification",
    "VerifyError",
    "choose_run_seed",
    "fresh_inputs",
    "graded_cells",
    "reconcile",
    "reference_failures",
    "verify_submission",
]

#: Largest submitted notebook that is read at all.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
#: Largest reply (arrays included) accepted from the runner.
MAX_REPLY_BYTES = 256 * 1024 * 1024
#: How many times a crashed or stuck runner is restarted for later functions.
MAX_RESTARTS = 3


class VerifyError(AutograderError):
    """The source notebook cannot be verified against (a course bug)."""


class _Unverifiable(Exception):
    """This hidden test cannot run against a remote namespace."""


class RunnerFailure(Exception):
    """The runner died, hung, or broke the protocol; the message says which."""


class StudentCodeError(Exception):
    """The student's function raised an exception (in the sandbox)."""


class CellVerdict(NamedTuple):
    """Verified result of one test cell: ``points`` is None if not verified.

    ``visible`` and ``hidden`` say how each half of the cell did (``"passed"``,
    ``"failed"``, ``"not checked"`` for a visible check that skipped its
    function, ``"not run"``, ``"not verified"``); the cell's points need both.
    """

    points: float | None
    max_points: float
    message: str
    visible: str = "not run"
    hidden: str = "not run"
    broken_dependency: str | None = None


class Verification(dict):
    """``{grade_id: CellVerdict}`` plus how the verification ran.

    Attributes:
        sandboxed: whether the student's code ran in the sandbox.
        run_seed: the per-run seed mixed into the hidden inputs (None: fixed).
        notes: problems worth showing the instructor (cell errors, restarts).
        seconds: wall-clock time of the verification.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sandboxed: bool | None = None
        self.run_seed: int | None = None
        self.notes: list[str] = []
        self.seconds: float = 0.0
        #: errors of the course's own (locked) cells that mean the grading
        #: environment is broken (see ``ENVIRONMENT_ERRORS``).
        self.locked_errors: list[str] = []

    @property
    def total(self) -> tuple[float, float]:
        """(verified points, their maximum) over the verified cells."""
        got = sum(v.points for v in self.values() if v.points is not None)
        full = sum(v.max_points for v in self.values() if v.points is not None)
        return got, full


# --- the source notebook --------------------------------------------------------


@dataclass(frozen=True)
class GradedCell:
    """A test cell whose hidden part calls ``<grader>.grade(function, ...)``."""

    grade_id: str
    function: str
    points: float
    grader: object
    module: str


@dataclass
class _Source:
    cells: list[GradedCell]
    max_points: dict[str, float]
    locked: dict[str, str]  # grade_id -> source (setup and other locked cells)
    setup_ids: list[str]
    test_ids: set[str]
    solution_ids: set[str]
    prelude: str
    defs: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    root: Path = Path()  # the course root whose source/ this is
    #: grade_id -> the test cell's visible check (hidden block removed).
    visible: dict[str, str] = field(default_factory=dict)
    #: grade_id -> top-level statements of the trusted cells before it.
    before: dict[str, list[str]] = field(default_factory=dict)


def _nbgrader(cell) -> dict:
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def _grade_id_of(meta: dict) -> str | None:
    grade_id = meta.get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


def _grader_calls(source: str) -> list[tuple[ast.expr, str]]:
    """Find ``<expr>.grade("name", ...)`` calls whose expr ends in ``GRADER``."""
    tree = ast.parse(source)
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "grade"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            calls.append((node.func.value, node.args[0].value))
    return calls


def _resolve(expr: ast.expr, namespace: dict):
    if isinstance(expr, ast.Name):
        return namespace[expr.id]
    if isinstance(expr, ast.Attribute):
        return getattr(_resolve(expr.value, namespace), expr.attr)
    raise VerifyError(f"cannot resolve grader expression {ast.unparse(expr)!r}")


def _load_source(path: Path) -> _Source:
    nb = nbformat.read(str(path), as_version=4)
    cells, max_points, locked, setup_ids = [], {}, {}, []
    test_ids, solution_ids = set(), set()
    prelude: list[str] = []
    defs: dict[str, tuple[str, set[str]]] = {}
    keep = (ast.Import, ast.ImportFrom)
    visible: dict[str, str] = {}
    before: dict[str, list[str]] = {}
    trusted: list[str] = []  # setup and plain cells seen so far
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = _nbgrader(cell)
        grade_id = meta.get("grade_id")
        is_setup = "setup" in cell.metadata.get("tags", [])
        where = f"{path.name} cell {index}"
        if not meta.get("grade") and not meta.get("solution"):
            trusted.append(cell.source)
        if meta.get("grade"):
            test_ids.add(grade_id)
            visible[grade_id] = strip_hidden_tests(cell.source)
            before[grade_id] = top_level_statements(trusted)
            max_points[grade_id] = float(meta.get("points", 0))
            namespace: dict = {}
            tree = ast.parse(cell.source)
            imports = [n for n in tree.body if isinstance(n, keep)]
            exec(compile(ast.Module(imports, []), where, "exec"), namespace)  # noqa: S102
            for expr, function in _grader_calls(cell.source):
                grader = _resolve(expr, namespace)
                module = getattr(
                    _resolve(expr.value, namespace)
                    if isinstance(expr, ast.Attribute)
                    else None,
                    "__name__",
                    type(grader).__module__,
                )
                cells.append(
                    GradedCell(grade_id, function, max_points[grade_id], grader, module)
                )
            continue
        if meta.get("locked") and grade_id:
            locked[grade_id] = cell.source
            if is_setup:
                setup_ids.append(grade_id)
        if meta.get("solution"):
            solution_ids.add(grade_id)
        if is_setup or meta.get("solution"):
            tree = ast.parse(cell.source)
            for node in tree.body:
                if isinstance(node, keep):
                    prelude.append(ast.unparse(node))
                elif not is_setup and isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                ):
                    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                    defs[node.name] = (ast.unparse(node), names)
    return _Source(
        cells,
        max_points,
        locked,
        setup_ids,
        test_ids,
        solution_ids,
        "\n".join(prelude),
        defs,
        path.resolve().parents[2],
        visible,
        before,
    )


def graded_cells(
    assignment: str, *, source_root: Path | None = None
) -> list[GradedCell]:
    """Return the test cells of an assignment that verified scoring covers."""
    return _load_source(source_notebook_path(assignment, root=source_root)).cells


def _reference_code(source: _Source, names: Iterable[str], forbidden: set[str]) -> str:
    """The prelude plus the definitions of ``names`` and what they use."""
    wanted: set[str] = set()
    todo = [n for n in names if n in source.defs and n not in forbidden]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        for used in source.defs[name][1]:
            if used in source.defs and used not in forbidden and used not in wanted:
                todo.append(used)
    parts = [source.prelude]
    parts += [src for name, (src, _) in source.defs.items() if name in wanted]
    return "\n\n".join(parts)


# --- the student's notebook ----------------------------------------------------


def _read_student(path: Path, max_bytes: int):
    """Return the notebook node, or raise ValueError saying why it is unreadable."""
    if not path.is_file():
        raise ValueError(f"{path.name} is missing")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name} is empty")
    if size > max_bytes:
        raise ValueError(f"{path.name} is larger than {max_bytes // 2**20} MiB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path.name} is not a JSON notebook: {exc}") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
        raise ValueError(f"{path.name} is not a readable notebook: {exc}") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path.name} has no cells")
    return nb


def _student_cells(nb, source: _Source) -> list[dict]:
    """The code the runner executes, in the student's notebook order.

    Locked cells come from the source notebook and test cells are left out.
    Solution cells run in full; of any other cell, the runner keeps only the
    ``import``/``def``/``class`` statements (the trusted side never parses
    student code: the runner does, in the sandbox).
    """
    cells, seen_setup = [], set()
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or not isinstance(cell.get("source"), str):
            continue
        meta = _nbgrader(cell)
        grade_id = _grade_id_of(meta)
        label = f"cell {index}" + (f" ({grade_id[:80]})" if grade_id else "")
        if grade_id in source.test_ids or meta.get("grade"):
            continue
        if grade_id in source.locked:
            cells.append(
                {"label": label, "source": source.locked[grade_id], "locked": True}
            )
            seen_setup.add(grade_id)
        elif grade_id in source.solution_ids:
            cells.append({"label": label, "source": cell.source})
        else:
            cells.append({"label": label, "source": cell.source, "only": "definitions"})
    missing = [
        {"label": f"setup ({g})", "source": source.locked[g], "locked": True}
        for g in source.setup_ids
        if g not in seen_setup
    ]
    return missing + cells


# --- the channel to the runner ---------------------------------------------------


class _Channel:
    """The runner process and its framed pipe protocol, with deadlines."""

    def __init__(self, workdir: Path, config: SandboxConfig):
        self.workdir = workdir
        self.config = config
        self.process: subprocess.Popen | None = None
        self.launch: Launch | None = None
        self.sandboxed: bool | None = None

    def start(self) -> None:
        sandboxed = resolve_sandboxed(self.config)
        runner = (
            SANDBOX_RUNNER_SCRIPT
            if sandboxed
            else str(Path(protocol.__file__).resolve())
        )
        self.launch = Launch(
            [self.config.python, "-I", runner],
            workdir=self.workdir,
            config=self.config,
            what="runner",
        )
        argv, env = self.launch.prepare(sandboxed=sandboxed)
        self.sandboxed = sandboxed
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.workdir if not self.launch.sandboxed else self.launch.folder,
            start_new_session=True,
        )
        self.launch.started(self.process.pid)
        self.launch.drain(self.process.stderr)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.launch.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        if self.launch is not None:
            self.launch.cleanup()
        self.process = None

    def _fail(self, reason: str) -> RunnerFailure:
        self.launch.kill(reason)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return RunnerFailure(reason)

    def _death(self) -> RunnerFailure:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        code = self.process.returncode
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
            if -code == 9 and self.launch.killed_reason:
                how += f" ({self.launch.killed_reason})"
        else:
            how = f"exited (status {code})"
        tail = self.launch.stderr_tail.decode(errors="replace").strip().splitlines()
        tail = tail[-3:]
        detail = f": {' | '.join(tail)}" if tail else ""
        return RunnerFailure(f"the process running your code {how}{detail}")

    def request(
        self, header: dict, payload: bytes, timeout: float
    ) -> tuple[dict, bytes]:
        if not self.alive:
            raise self._death()
        deadline = time.monotonic() + max(timeout, 0.1)
        data = json.dumps(header, allow_nan=False).encode("utf-8")
        frame = protocol._HEADER.pack(protocol.MAGIC, len(data), len(payload))
        try:
            self._send(frame + data + payload, deadline)
            prefix = self._recv(protocol._HEADER.size, deadline)
            header_len, payload_len = protocol.parse_lengths(prefix, MAX_REPLY_BYTES)
            reply = protocol.parse_header(self._recv(header_len, deadline))
            body = self._recv(payload_len, deadline)
        except TimeoutError:
            raise self._fail(
                f"time limit exceeded ({timeout:.0f} s without an answer)"
            ) from None
        except protocol.ProtocolError as exc:
            raise self._fail(f"broke the grading protocol ({exc})") from None
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise self._death() from None
        return reply, body

    def _send(self, data: bytes, deadline: float) -> None:
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, ready, _ = select.select([], [fd], [], remaining)
            if ready:
                written = os.write(fd, view[:65536])
                view = view[written:]

    def _recv(self, n: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        chunks, remaining = [], n
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                remaining -= len(chunk)
        return b"".join(chunks)


_BUILTIN_ERRORS = {
    name: getattr(__import__("builtins"), name)
    for name in (
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "IndexError",
        "KeyError",
        "LookupError",
        "NameError",
        "NotImplementedError",
        "OverflowError",
        "RuntimeError",
        "TypeError",
        "ValueError",
        "ZeroDivisionError",
        "FloatingPointError",
        "RecursionError",
        "MemoryError",
        "UnboundLocalError",
    )
}


def _student_exception(error: Mapping) -> BaseException:
    """Turn a runner's error report into an exception raised here."""
    kind = str(error.get("type", "Exception"))[:100]
    message = str(error.get("message", ""))[:4000]
    if error.get("not_implemented"):
        exc = NotImplementedError(message or "not implemented")
        # Raised by the function's own body (not written yet), not by a callee.
        exc.__raised_inside__ = bool(error.get("raised_inside"))
        return exc
    if kind == "UnsupportedOutput":
        return StudentCodeError(f"your function returned {message}")
    cls = _BUILTIN_ERRORS.get(kind)
    if cls is not None and kind != "AssertionError":
        return cls(message)
    return StudentCodeError(f"{kind}: {message}")


class _Session:
    """The runner of one submission and the state of the verification."""

    def __init__(
        self,
        source: _Source,
        cells: list[dict],
        workdir: Path,
        config: SandboxConfig,
        deadline: float,
    ):
        self.source = source
        self.cells = cells
        self.workdir = workdir
        self.config = config
        self.deadline = deadline
        self.channel: _Channel | None = None
        self.defined: list[str] = []
        #: name -> global names its code refers to (as the runner read them).
        self.uses: dict[str, tuple[str, ...]] = {}
        self.load_errors: list[str] = []
        self.locked_errors: list[str] = []
        self.restarts = 0
        self.fatal: str | None = None
        self.forbidden: set[str] = set()
        self.sandboxed: bool | None = None
        #: grade_id -> VisibleVerdict, so a test cell graded twice (one cell,
        #: two functions) runs its visible check once.
        self.seen_visible: dict = {}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def ensure_runner(self) -> None:
        if self.fatal:
            raise RunnerFailure(self.fatal)
        if self.channel is not None and self.channel.alive:
            return
        if self.channel is not None:
            self.channel.close()
            self.restarts += 1
            if self.restarts > MAX_RESTARTS:
                self.fatal = "the process running your code failed too many times"
                raise RunnerFailure(self.fatal)
        self.channel = _Channel(self.workdir, self.config)
        self.channel.start()
        self.sandboxed = self.channel.sandboxed
        try:
            limits = self.config.limits
            header = {
                "op": "load",
                "cells": self.cells,
                "cell_timeout": limits.cell_timeout,
                "output_limit": limits.output_per_cell,
            }
            budget = len(self.cells) * limits.cell_timeout + 10
            reply, _ = self.channel.request(header, b"", min(budget, self.remaining()))
        except RunnerFailure as exc:
            self.fatal = f"running your notebook's code failed: {exc}"
            raise RunnerFailure(self.fatal) from None
        defined = reply.get("defined")
        if not isinstance(defined, list) or not all(
            isinstance(n, str) for n in defined
        ):
            self.fatal = "the process running your code sent a malformed reply"
            raise RunnerFailure(self.fatal)
        self.defined = defined
        uses = reply.get("uses")
        uses = uses if isinstance(uses, dict) else {}
        self.uses = {
            name: tuple(str(n) for n in uses.get(name, []) if isinstance(n, str))
            for name in defined
            if isinstance(uses.get(name, []), list)
        }
        self.load_errors = []
        self.locked_errors = []
        replies = reply.get("cells", [])
        replies = replies if isinstance(replies, list) else []
        for sent, cell in zip(self.cells, replies, strict=False):
            error = cell.get("error") if isinstance(cell, dict) else None
            if not isinstance(error, dict):
                continue
            line = (
                f"{sent['label']}: {error.get('type')}: "
                f"{str(error.get('message'))[:300]}"
            )
            self.load_errors.append(line)
            if sent.get("locked") and error.get("type") in ENVIRONMENT_ERRORS:
                self.locked_errors.append(line)

    def call(self, name: str, args, kwargs, patch: list[str]):
        self.ensure_runner()
        encoder = protocol.Encoder()
        try:
            header = {
                "op": "call",
                "function": name,
                "args": encoder.encode(list(args)),
                "kwargs": encoder.encode(dict(kwargs)),
                "patch": patch,
                "reference": _reference_code(self.source, patch, self.forbidden),
                "timeout": self.config.limits.cell_timeout,
            }
        except protocol.UnsupportedValue as exc:
            raise _Unverifiable(f"a hidden input cannot be sent: {exc}") from None
        # The runner interrupts the call itself at the limit; this is the backstop.
        timeout = min(self.config.limits.cell_timeout + 5, self.remaining())
        reply, body = self.channel.request(header, encoder.payload(), timeout)
        if not reply.get("ok"):
            error = reply.get("error")
            raise _student_exception(error if isinstance(error, dict) else {})
        try:
            arrays = protocol.open_payload(body, MAX_REPLY_BYTES)
            result = protocol.decode(reply.get("result"), arrays)
            args_after = protocol.decode(reply.get("args"), arrays)
            kwargs_after = protocol.decode(reply.get("kwargs"), arrays)
        except protocol.ProtocolError as exc:
            raise StudentCodeError(
                f"your function returned unreadable data ({exc})"
            ) from None
        _write_back(args, args_after)
        _write_back(kwargs, kwargs_after)
        return result

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()


def _write_back(original, after) -> None:
    """Mirror in-place changes the student's function made to its inputs."""
    if isinstance(original, np.ndarray):
        if isinstance(after, np.ndarray) and after.shape == original.shape:
            with contextlib.suppress(TypeError, ValueError):
                np.copyto(original, after, casting="unsafe")
        return
    if isinstance(original, dict) and isinstance(after, dict):
        for key in list(original):
            if key not in after:
                del original[key]
        for key, value in after.items():
            if key in original and _same_kind(original[key], value):
                _write_back(original[key], value)
            else:
                original[key] = value
        return
    if isinstance(original, (list, tuple)) and isinstance(after, (list, tuple)):
        for i, (o, a) in enumerate(zip(original, after, strict=False)):
            if _same_kind(o, a):
                _write_back(o, a)
            elif isinstance(original, list):
                original[i] = a
        if isinstance(original, list) and len(after) != len(original):
            original[:] = list(after)


def _same_kind(a, b) -> bool:
    return (
        (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape)
        or (isinstance(a, dict) and isinstance(b, dict))
        or (isinstance(a, list) and isinstance(b, list))
        or (isinstance(a, tuple) and isinstance(b, tuple))
    )


class RemoteFunction:
    """Stands for a student's function: calls run in the sandboxed runner."""

    def __init__(
        self, name: str, session: _Session, namespace: dict, reference: Mapping
    ):
        self.__name__ = self.__qualname__ = name
        self._session = session
        self._namespace = namespace
        self._reference = reference
        # What a visible check reads of a function to tell which exercises it
        # calls (dlcourse.testcases): where to look them up, and their names.
        self.__globals__ = namespace
        self.__names_used__ = session.uses.get(name, ())

    def __call__(self, *args, **kwargs):
        patch = []
        for key, value in list(self._namespace.items()):
            if isinstance(value, RemoteFunction) and value._name_is(key):
                continue
            from_reference = value is self._reference.get(key) or str(
                getattr(value, "__module__", "")
            ).startswith("reference:")
            if key in self._session.source.defs and from_reference:
                patch.append(key)
            else:
                raise _Unverifiable(
                    f"the hidden test replaces {key!r} by something other than "
                    "the reference"
                )
        return self._session.call(self.__name__, args, kwargs, sorted(patch))

    def _name_is(self, key: str) -> bool:
        return self.__name__ == key

    def __repr__(self) -> str:
        return f"<student function {self.__name__} (runs in the sandbox)>"


# --- fresh inputs ---------------------------------------------------------------


@contextlib.contextmanager
def fresh_inputs(run_seed: int | None, modules: Iterable[str]):
    """Mix ``run_seed`` into integer seeds the hidden test modules pass to
    ``np.random.default_rng`` while the block runs (this process only).

    Hidden tests keep their literal seeds (``np.random.default_rng(1001)``); the
    generator they get is seeded by ``[1001, run_seed]`` instead, so every grading
    run draws other inputs and a submission cannot be tuned to one set. Calls
    from anywhere else (reference code, numpy itself) are untouched.
    """
    modules = frozenset(modules)
    original = np.random.default_rng
    if run_seed is None:
        yield
        return

    def default_rng(seed=None):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if (
            caller in modules
            and isinstance(seed, (int, np.integer))
            and not isinstance(seed, bool)
            and seed >= 0
        ):
            seed = [int(seed), int(run_seed)]
        return original(seed)

    np.random.default_rng = default_rng
    try:
        yield
    finally:
        np.random.default_rng = original


# --- run seeds ---------------------------------------------------------------------


def reference_failures(
    assignment: str,
    run_seed: int | None,
    *,
    source_root: str | os.PathLike | None = None,
) -> list[str]:
    """Run every hidden test on the reference itself with ``run_seed``.

    Returns:
        One line per test cell the reference fails (empty: the seed is usable).
        Hidden tests are tuned on their literal seeds; on a few other seeds a
        tolerance (a gradient check, typically) can reject the reference itself.
    """
    source = _load_source(source_notebook_path(assignment, root=source_root))
    return _reference_failures(source, run_seed)


def _reference_failures(source: _Source, run_seed: int | None) -> list[str]:
    with course_root(source.root):
        return _reference_failures_here(source, run_seed)


def _reference_failures_here(source: _Source, run_seed: int | None) -> list[str]:
    failures = []
    for cell in source.cells:
        namespace = dict(cell.grader.reference)
        try:
            with (
                fresh_inputs(run_seed, {cell.module}),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                cell.grader.grade(cell.function, namespace)
        except Exception as exc:  # noqa: BLE001 - report any failure
            failures.append(f"{cell.grade_id}: {type(exc).__name__}: {exc}")
    return failures


_chosen_seeds: dict[tuple[str, float], int] = {}


def choose_run_seed(
    assignment: str,
    *,
    source_root: str | os.PathLike | None = None,
    attempts: int = 20,
) -> int:
    """Draw a random run seed on which the reference passes every hidden test.

    Call it once per grading run and pass the seed to every
    :func:`verify_submission` of that run (it is recorded in each result).

    Raises:
        VerifyError: if the reference fails on every seed tried (broken tests).
    """
    source = _load_source(source_notebook_path(assignment, root=source_root))
    problems: list[str] = []
    for _ in range(attempts):
        seed = secrets.randbits(62)
        problems = _reference_failures(source, seed)
        if not problems:
            return seed
    raise VerifyError(
        f"the reference of {assignment} fails its hidden tests on {attempts} "
        f"random seeds; last failures: {problems[:3]}"
    )


# --- verification ---------------------------------------------------------------


def verify_submission(
    notebook_path: str | os.PathLike,
    assignment: str,
    *,
    sandbox_config: SandboxConfig | None = None,
    source_root: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
    run_seed: int | None | str = "random",
    max_notebook_bytes: int = MAX_NOTEBOOK_BYTES,
) -> Verification:
    """Verify the graded functions of one submitted notebook.

    Args:
        notebook_path: the student's notebook (as submitted, or autograded).
        assignment: assignment id; the source notebook is
            ``<source_root>/source/<assignment>/<assignment>.ipynb``.
        sandbox_config: how to sandbox the student's code (default: defaults,
            with the system temp folder as scratch).
        source_root: course root holding ``source/`` (default: the repository).
        workdir: the folder the student's code sees, with the assignment's
            helper files (default: the notebook's folder; pass the autograded
            folder, where nbgrader has copied them).
        run_seed: integer mixed into the hidden inputs (see
            :func:`choose_run_seed`); ``"random"`` (default) draws one on which
            the reference passes, once per process and assignment; None keeps
            the literal seeds. The seed used is recorded in the result.
        max_notebook_bytes: larger notebooks are not read (every cell scores 0).

    Returns:
        ``{grade_id: CellVerdict(points, max_points, message)}`` for every test
        cell of the source notebook; ``points`` is None for cells without a
        hidden grader call (nbgrader's score stands there).
    """
    started = time.monotonic()
    notebook_path = Path(notebook_path)
    config = sandbox_config or SandboxConfig()
    source_path = source_notebook_path(assignment, root=source_root)
    source = _load_source(source_path)
    if run_seed == "random":
        key = (str(source_path), source_path.stat().st_mtime)
        if key not in _chosen_seeds:
            _chosen_seeds[key] = choose_run_seed(assignment, source_root=source_root)
        run_seed = _chosen_seeds[key]
    result = Verification()
    result.run_seed = run_seed
    graded = {c.grade_id for c in source.cells}
    for grade_id, full in source.max_points.items():
        if grade_id not in graded:
            result[grade_id] = CellVerdict(
                None, full, "not verified: this cell calls no hidden grader"
            )
    try:
        nb = _read_student(notebook_path, max_notebook_bytes)
    except ValueError as exc:
        for cell in source.cells:
            result[cell.grade_id] = CellVerdict(0.0, cell.points, f"0: {exc}")
        result.notes.append(str(exc))
        result.seconds = time.monotonic() - started
        return result
    folder = Path(workdir) if workdir is not None else notebook_path.parent
    session = _Session(
        source,
        _student_cells(nb, source),
        folder.resolve(),
        config,
        time.monotonic() + config.limits.notebook_timeout,
    )
    order = [c.function for c in source.cells]
    try:
        with course_root(source.root):
            for position, cell in enumerate(source.cells):
                session.forbidden = set(order[position:])
                result[cell.grade_id] = _grade_cell(cell, session, run_seed)
    finally:
        session.close()
    result.sandboxed = session.sandboxed
    if session.sandboxed is False:
        result.notes.append("UNSANDBOXED: the student's code ran without the sandbox")
    result.notes += session.load_errors
    result.locked_errors = list(session.locked_errors)
    if session.restarts:
        result.notes.append(f"the runner was restarted {session.restarts} time(s)")
    result.seconds = time.monotonic() - started
    return result


def _proxies(session: _Session, reference: Mapping) -> dict:
    namespace: dict = {}
    for name in session.defined:
        namespace[name] = RemoteFunction(name, session, namespace, reference)
    return namespace


def _grade_cell(cell: GradedCell, session: _Session, run_seed) -> CellVerdict:
    """The cell's points: its visible check, then its hidden test, both here."""
    full = cell.points
    try:
        session.ensure_runner()
    except RunnerFailure as exc:
        return CellVerdict(0.0, full, f"0: {exc}")
    grader = cell.grader
    reference = grader.reference
    seen = session.source.visible.get(cell.grade_id)
    visible = PASSED
    broken = None
    if seen is not None and session.seen_visible.get(cell.grade_id) is None:
        try:
            verdict = run_visible_check(
                seen,
                prelude=session.source.prelude,
                statements=session.source.before.get(cell.grade_id, []),
                functions=_proxies(session, reference),
                student_names=set(session.source.defs),
            )
        except RunnerFailure as exc:
            return CellVerdict(0.0, full, f"0: {exc}", FAILED)
        session.seen_visible[cell.grade_id] = verdict
    if seen is not None:
        verdict = session.seen_visible[cell.grade_id]
        visible, broken = verdict.status, verdict.broken_dependency
        if visible == FAILED:
            return CellVerdict(
                0.0, full, f"0: visible check failed: {verdict.message}", FAILED
            )
    namespace = _proxies(session, reference)

    def failed(message: str, hidden: str = FAILED) -> CellVerdict:
        return CellVerdict(0.0, full, message, visible, hidden, broken)

    try:
        with fresh_inputs(run_seed, {cell.module}):
            grader.grade(cell.function, namespace)
    except _Unverifiable as exc:
        return CellVerdict(
            None, full, f"not verified: {exc}", visible, "not verified", broken
        )
    except NotImplementedError as exc:
        return failed(f"0: {cell.function} is not implemented ({exc})")
    except RunnerFailure as exc:
        return failed(f"0: {exc}")
    except StudentCodeError as exc:
        return failed(f"0: {cell.function}: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failed check costs the cell
        text = str(exc).strip() or type(exc).__name__
        return failed(f"0: {type(exc).__name__}: {text}")
    return CellVerdict(
        full,
        full,
        "passed the visible check and the hidden tests (verified)",
        visible,
        PASSED,
        broken,
    )


# --- nbgrader vs verified ---------------------------------------------------------


class Reconciled(NamedTuple):
    """The score that counts for one cell and how it was decided."""

    score: float | None
    max_points: float
    nbgrader: float | None
    verified: float | None
    disagree: bool
    note: str


def reconcile(
    nbgrader_scores: Mapping[str, float | None],
    verification: Mapping[str, CellVerdict],
) -> dict[str, Reconciled]:
    """Set nbgrader's in-notebook scores against the verified ones.

    The verified score counts wherever there is one. Inside the sandbox the
    notebook's own run can only decide the visible check (its hidden tests are a
    stand-in), so a disagreement is a cell whose in-notebook result differs from
    the trusted run of the *same* visible check: the student's kernel passed a
    check the grader's run of it fails, or the other way round. A check that
    skipped its function (``"not checked"``) passes on both sides.

    Args:
        nbgrader_scores: ``{grade_id: points}`` from the gradebook (None or a
            missing key: nbgrader did not score it, e.g. the kernel died; never
            a disagreement, the outcome says why).
        verification: the result of :func:`verify_submission`.
    """
    out = {}
    for grade_id in sorted(set(nbgrader_scores) | set(verification)):
        nb = nbgrader_scores.get(grade_id)
        verdict = verification.get(grade_id)
        if verdict is None or verdict.points is None:
            full = verdict.max_points if verdict else float("nan")
            note = verdict.message if verdict else "not verified"
            out[grade_id] = Reconciled(nb, full, nb, None, False, note)
            continue
        disagree = False
        if nb is not None and verdict.visible in (PASSED, FAILED, NOT_CHECKED):
            notebook_passed = float(nb) >= verdict.max_points - 1e-9
            disagree = notebook_passed != (verdict.visible != FAILED)
        note = verdict.message
        if disagree:
            shown = f"{nb:g}/{verdict.max_points:g}"
            note = (
                f"the notebook's own run gave {shown}, the grader's run of the same "
                f"visible check {verdict.visible}; the verified score "
                f"{verdict.points:g}/{verdict.max_points:g} counts. {verdict.message}"
            )
        out[grade_id] = Reconciled(
            verdict.points, verdict.max_points, nb, verdict.points, disagree, note
        )
    return out
