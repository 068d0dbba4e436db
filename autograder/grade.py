"""Autograde every submission in isolation, in parallel, and merge the grades.

``python -m autograder grade [ASSIGNMENT...] [--workers N]`` grades every
``submitted/<student>/<assignment>/`` of a course with the real nbgrader
(``NbGraderAPI.autograde``), in five steps:

1. **discover** the submissions (``submitted/`` is only ever read);
2. **prepare** one template per assignment: ``generate_assignment`` runs once in
   a scratch course and its ``gradebook.db`` is copied into every task;
3. **grade** each submission with :func:`grade_submission`, a pure function of
   (submission files, assignment) that writes only into its own scratch course
   and gradebook. A pool of ``N`` worker slots runs the tasks; each task is a
   fresh process forked from this one after nbgrader (and the kernel's own
   modules) were imported once, so a task can be killed on its wall-clock limit
   without disturbing the others;
4. **merge** the results into ``<course>/gradebook.db`` with nbgrader's
   ``Gradebook`` API from this process only (a single writer), on a copy that
   replaces the old file with :func:`os.replace` at the end: a run that crashes
   leaves the previous grades intact;
5. **install** the autograded notebooks under ``autograded/<student>/<a>/`` (one
   rename per submission) and record every outcome with its reason in
   ``grading_outcomes.json`` for ``feedback`` and ``export``.

Outcomes (:data:`OUTCOMES`): ``graded``; ``timed out`` (a cell hit the per-cell
limit — it was interrupted and the other cells were graded — or the notebook hit
its wall-clock limit and scores zero); ``kernel died`` (``os._exit``, a crash, out
of memory: zero); ``invalid notebook JSON``, ``missing notebook`` and
``unknown/renamed notebook`` (found before nbgrader runs: zero). ``error`` means
the pipeline itself failed on that submission; it is the only outcome that is
not definite, and the command then exits non-zero.

A submission that repeats a grade id (a copy-pasted cell) makes stock nbgrader
abort the whole run. Here the last cell with that id keeps its nbgrader metadata
(the one nbgrader itself would keep) and earlier copies run as ordinary code, so
the student is graded as if the copy had no metadata; the reason says so.

Per-cell limit: nbgrader interrupts a cell that runs longer than
``Execute.timeout`` (the course's configuration, or ``--cell-timeout``); the
other cells still run and are scored, so such a submission keeps the points of
the functions it got right. Its outcome is ``timed out`` and the reason names the
cell. The per-notebook wall-clock limit (``--notebook-timeout``) stops the whole
task: the worker and its kernel are killed and the submission scores zero.

Speed (``python -m autograder bench`` measures it). Per notebook, stock nbgrader
starts a kernel with ``python -m ipykernel_launcher`` (~0.4 s of CPU importing
IPython, zmq, tornado and debugpy, then numpy, matplotlib and ``dlcourse`` in
the setup cell), and jupyter_client waits ~0.2 s of IOPub silence before the
first cell and polls the kernel's exit every 0.1 s. Here:

- the grader imports those modules once (:data:`KERNEL_PRELOAD`) and each
  kernel is *forked* from the task's worker and handed the connection file
  nbgrader wrote (``ForkingProvisioner``). The forked kernel restores what a new
  process would have (environment, working directory, ``sys.path`` and warning
  filters measured in a fresh interpreter, signal handlers, random seeds,
  matplotlib's backend); a test compares what notebooks see in both kinds of
  kernel. The client connects once the kernel is bound, drains IOPub for 10 ms
  and stops the kernel with SIGKILL once the last cell has run;
- tasks run in parallel, and the gradebook template is generated once per
  assignment without nbgrader's ``alembic`` subprocess (2-4 s of CPU);
- scratch courses live in memory (``/dev/shm``) when there is room.

``--no-fork`` (``fork_kernels=False``) grades with stock kernels.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nbformat

from . import REPO_ROOT
from .course import Course, course_config, list_assignments
from .errors import AutograderError, PreflightFailed, UsageError

__all__ = [
    "DEFINITE_OUTCOMES",
    "ERROR",
    "GRADED",
    "GradeResult",
    "GradeRun",
    "GradeTask",
    "INVALID",
    "KERNEL_DIED",
    "MISSING",
    "OUTCOMES",
    "TIMED_OUT",
    "UNKNOWN",
    "OUTCOMES_FILE",
    "discover_submissions",
    "grade_course",
    "grade_submission",
    "inspect_submission",
    "load_outcomes",
    "merge_results",
    "new_gradebook",
    "prepare_template",
    "run_tasks",
    "warm_up",
]

from .grading.intake import IGNORED, Refusal, take_in
from .grading.outcomes import (
    DEFINITE_OUTCOMES,
    ENVIRONMENT_ERRORS,
    ERROR,
    GRADED,
    INVALID,
    KERNEL_DIED,
    MISSING,
    OUTCOMES,
    OUTCOMES_FILE,
    REFUSED,
    TIMED_OUT,
    UNKNOWN,
    CellReport,
    Flags,
    GradeResult,
    load_outcomes,
    write_outcomes,
)
from .grading.preflight import Settings, run_preflight

#: Default wall-clock limit for grading one notebook (kernel start included).
DEFAULT_NOTEBOOK_TIMEOUT = 600.0
#: Time allowed to build one assignment's template (``generate_assignment``).
TEMPLATE_TIMEOUT = 600.0
_IGNORED = IGNORED


# --------------------------------------------------------------------------
# Tasks and results
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GradeTask:
    """One submission to grade.

    Args:
        assignment: assignment id (a folder of ``<course_root>/source``).
        student: student id.
        submission_dir: the folder holding the submitted files (only read).
        course_root: the course whose ``source/`` and configuration apply.
        cell_timeout: seconds one cell may run before it is interrupted.
        notebook_timeout: seconds one notebook may take in total.
        template_dir: a folder made by :func:`prepare_template`; without it the
            task generates its own (slower, but then fully self-contained).
        fork_kernels: start kernels by forking the worker (fast) instead of
            ``python -m ipykernel_launcher`` (stock). Ignored when sandboxed.
        sandbox: run the student's code under bubblewrap with resource limits
            (:mod:`autograder.sandbox`) and decide each function's score outside
            the student's process (:mod:`autograder.verify`).
        require_sandbox: with ``sandbox``, fail instead of grading unsandboxed
            where bubblewrap cannot run.
        run_seed: mixed into the hidden inputs of the verified run (one per
            grading run, see :func:`autograder.verify.choose_run_seed`); None
            keeps the hidden tests' literal seeds.
        sandbox_limits: ``(name, value)`` pairs overriding the defaults of
            :class:`autograder.sandbox.SandboxLimits` (memory, processes …).
    """

    assignment: str
    student: str
    submission_dir: Path
    course_root: Path
    cell_timeout: int | None = 60
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    template_dir: Path | None = None
    fork_kernels: bool = True
    sandbox: bool = False
    require_sandbox: bool = False
    run_seed: int | None = None
    sandbox_limits: tuple[tuple[str, int], ...] = ()


# --------------------------------------------------------------------------
# Templates: generate_assignment once per assignment
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateInfo:
    """The graded structure of an assignment, read from its template."""

    assignment: str
    course_id: str
    notebooks: tuple[str, ...]  # file names, e.g. "mini.ipynb"
    max_scores: dict[str, float]  # grade id -> points, in notebook order

    @classmethod
    def load(cls, template_dir: Path) -> TemplateInfo:
        data = json.loads((Path(template_dir) / "template.json").read_text())
        return cls(
            data["assignment"],
            data["course_id"],
            tuple(data["notebooks"]),
            dict(data["max_scores"]),
        )


def _alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema.

    nbgrader asks ``alembic heads`` in a subprocess whenever it creates a
    gradebook (2-4 s of CPU); its migration scripts name their revisions, and the
    head is the one no other script builds on.
    """
    import re

    from nbgrader.api import get_alembic_version
    from nbgrader.dbutil import ALEMBIC_DIR

    revisions, parents = set(), set()
    pattern = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?(\w+)", re.M)
    for script in Path(ALEMBIC_DIR, "versions").glob("*.py"):
        for kind, value in pattern.findall(script.read_text(encoding="utf-8")):
            if value != "None":
                (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else get_alembic_version()


def new_gradebook(path: Path) -> Path:
    """Create an empty nbgrader gradebook at ``path`` without calling alembic."""
    import sqlite3

    from nbgrader.api import Base
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(bind=engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (_alembic_head(),))
        db.commit()
    return Path(path)


def prepare_template(course_root: Path, assignment: str, dest: Path) -> Path:
    """Run ``generate_assignment`` once in a scratch course at ``dest``.

    The result (``dest/gradebook.db`` plus ``dest/template.json``) is what every
    task of this assignment copies instead of generating it again.

    Raises:
        SourceNotebookError: if nbgrader cannot generate the assignment, or two
            graded cells of the assignment share a grade id.
    """
    from nbgrader.api import Gradebook

    from .errors import SourceNotebookError

    course_root = Path(course_root).resolve()
    config = course_config(course_root)
    course = Course(dest, [assignment], source_root=course_root, config=config)
    new_gradebook(course.root / "gradebook.db")
    course.generate(assignment)
    source = course.root / "source" / assignment
    notebooks = sorted(p.name for p in source.glob("*.ipynb"))
    order: list[str] = []
    for name in notebooks:
        nb = nbformat.read(str(source / name), as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                if meta["grade_id"] in order:
                    raise SourceNotebookError(
                        f"{assignment}: grade id {meta['grade_id']!r} is used twice"
                    )
                order.append(meta["grade_id"])
    course_id = config.CourseDirectory.get("course_id", "") or ""
    with Gradebook(course.db_url, course_id) as gb:
        cells = {
            cell.name: float(cell.max_score)
            for nb in gb.find_assignment(assignment).notebooks
            for cell in nb.grade_cells
        }
    max_scores = {gid: cells[gid] for gid in order if gid in cells}
    max_scores.update({k: v for k, v in cells.items() if k not in max_scores})
    info = {
        "assignment": assignment,
        "course_id": course_id,
        "notebooks": notebooks,
        "max_scores": max_scores,
    }
    (course.root / "template.json").write_text(json.dumps(info, indent=1))
    return course.root


# --------------------------------------------------------------------------
# Preflight: what nbgrader would choke on, found before it runs
# --------------------------------------------------------------------------


@dataclass
class _Inspection:
    graded: dict[str, object] = field(default_factory=dict)  # name -> notebook
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_notebook(path: Path):
    """Parse a submitted notebook; raise ValueError saying why it is unusable."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"{path.name} is empty ({len(raw)} bytes)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{path.name} is JSON but not a notebook (no list of cells)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises many types for malformed files
        raise ValueError(f"{path.name} is not a valid notebook: {exc}") from None


def _dedupe_grade_ids(nb) -> list[str]:
    """Keep nbgrader metadata on the last cell of each grade id only."""
    from nbgrader import utils

    seen, repeated = set(), []
    for cell in reversed(nb.cells):
        if not (
            utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)
        ):
            continue
        grade_id = cell.metadata["nbgrader"].get("grade_id")
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            repeated.append(grade_id)
        else:
            seen.add(grade_id)
    return sorted(set(repeated))


def inspect_submission(submission_dir: Path, expected: Sequence[str]) -> _Inspection:
    """Sort a submission's notebooks into gradable ones and problems."""
    found = sorted(p.name for p in Path(submission_dir).glob("*.ipynb") if p.is_file())
    extra = [name for name in found if name not in expected]
    result = _Inspection()
    for name in expected:
        path = Path(submission_dir) / name
        if not path.is_file():
            if extra:
                result.problems.append(
                    (
                        UNKNOWN,
                        f"found {', '.join(extra)}, expected {name}: rename the "
                        "notebook back and re-grade",
                    )
                )
            else:
                result.problems.append((MISSING, f"no {name} in the submission"))
            continue
        try:
            nb = _read_notebook(path)
        except (ValueError, OSError) as exc:
            result.problems.append((INVALID, str(exc)))
            continue
        repeated = _dedupe_grade_ids(nb)
        if repeated:
            result.notes.append(
                f"{name}: grade id(s) {', '.join(repeated)} appear more than once; "
                "the last cell with each id was graded and earlier copies ran as "
                "ordinary code"
            )
        result.graded[name] = nb
    if extra and result.graded:
        result.notes.append(f"ignored notebook(s) not in the assignment: {extra}")
    return result


# --------------------------------------------------------------------------
# Kernels forked from the worker
# --------------------------------------------------------------------------

_BASELINE: dict | None = None
#: What importing ipykernel's debugger (debugpy) changes in a process: undone in
#: the grader by :func:`warm_up`, redone in each forked kernel.
_DEBUGPY_EFFECTS: dict = {}
_PREFORKED: list[_PreforkedKernel] = []
_WORKER_CONN = None  # the worker's result pipe, closed in its kernels


#: Modules a kernel imports to start, and those the course's notebooks import
#: in their setup cells (numpy, matplotlib, the shared ``dlcourse`` package),
#: imported once by the grader so that forked kernels start with them loaded.
#: Only modules without import-time state tied to a process belong here;
#: matplotlib's one such setting, the backend, is re-read in each kernel.
KERNEL_PRELOAD = (
    "numpy",
    "IPython.core.interactiveshell",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "matplotlib",
    "matplotlib.pyplot",
    "h5py",
    "dlcourse.activations",
    "dlcourse.checks",
    "dlcourse.data",
    "dlcourse.gradcheck",
    "dlcourse.images",
    "dlcourse.plots",
    "dlcourse.testcases",
)


def _interpreter_baseline() -> dict:
    """``sys.path`` and warning filters of a new kernel process.

    Measured once in a fresh interpreter that imports :data:`KERNEL_PRELOAD`
    (the filters those imports add belong to a kernel too); the grader's own
    state (pytest's filters, a test's ``sys.path``) is not copied into kernels.
    """
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = json.loads(_start_baseline().communicate()[0])
    return _BASELINE


_BASELINE_PROC: subprocess.Popen | None = None


def _start_baseline() -> subprocess.Popen:
    """Start measuring :func:`_interpreter_baseline` (it runs while we import)."""
    global _BASELINE_PROC
    if _BASELINE_PROC is None:
        code = (
            "import importlib, json, sys, warnings\n"
            f"for m in {list(KERNEL_PRELOAD)!r}:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except Exception:\n"
            "        pass\n"
            "text = lambda x: getattr(x, 'pattern', x) or ''\n"
            "name = lambda c: c.__module__ + '.' + c.__qualname__\n"
            "filters = [[a, text(m), name(c), text(mod), n]\n"
            "           for a, m, c, mod, n in warnings.filters]\n"
            "print(json.dumps({'path': sys.path[1:], 'filters': filters}))"
        )
        _BASELINE_PROC = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=tempfile.gettempdir(),
            env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
        )
    return _BASELINE_PROC


def _reset_event_loops() -> None:
    """Forget event loops inherited through fork (their selectors are shared)."""
    import asyncio

    asyncio.set_event_loop_policy(None)
    with contextlib.suppress(Exception):
        import jupyter_core.utils as jcu

        jcu._loop.set(None)
        jcu._runner_map.clear()


def _become_fresh_interpreter(spec: dict, baseline: dict) -> None:
    """Make this forked process look like a newly started kernel process."""
    import faulthandler
    import importlib
    import io
    import logging
    import random

    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False))
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    sys.path[:] = list(baseline["path"])
    sys.argv = [spec["launcher"], *spec["args"]]
    sys.excepthook, sys.displayhook = sys.__excepthook__, sys.__displayhook__
    warnings.resetwarnings()
    for action, message, category, module, lineno in reversed(baseline["filters"]):
        modname, _, qualname = category.rpartition(".")
        try:
            klass = importlib.import_module(modname)
            for part in qualname.split("."):
                klass = getattr(klass, part)
        except (ImportError, AttributeError):
            continue  # a category this kernel cannot import cannot be raised
        warnings.filterwarnings(action, message, klass, module, lineno)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    faulthandler.disable()
    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
    _reset_event_loops()
    for key, value in _DEBUGPY_EFFECTS.get("environ", {}).items():
        os.environ.setdefault(key, value)
    if "breakpointhook" in _DEBUGPY_EFFECTS:
        sys.breakpointhook = _DEBUGPY_EFFECTS["breakpointhook"]
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    from ipykernel.kernelapp import IPKernelApp
    from IPython.core.interactiveshell import InteractiveShell

    IPKernelApp.clear_instance()
    InteractiveShell.clear_instance()


def _reread_matplotlib_backend() -> None:
    """Give a preloaded matplotlib the backend this kernel's environment names.

    matplotlib reads ``MPLBACKEND`` when it is imported; ipykernel sets it (to
    the inline backend, unless already set) while it initialises, which for a
    forked kernel is after the import.
    """
    mpl = sys.modules.get("matplotlib")
    backend = os.environ.get("MPLBACKEND")
    if mpl is not None and backend:
        mpl.rcParams["backend"] = backend


def _kernel_child(read_fd: int, ready_fd: int, baseline: dict) -> None:
    """Body of a preforked kernel: wait for the launch request, then run."""
    code = 1
    try:
        os.setsid()
        atexit._clear()
        if _WORKER_CONN is not None:
            _WORKER_CONN.close()
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        os.close(read_fd)
        if not chunks:
            os._exit(0)
        spec = pickle.loads(b"".join(chunks))
        _become_fresh_interpreter(spec, baseline)
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(spec["args"])  # binds the kernel's sockets
        _reread_matplotlib_backend()
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        app.start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class _ForkedKernelProcess:
    """The part of :class:`subprocess.Popen` that jupyter_client uses."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.005)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _PreforkedKernel:
    """A child forked now that becomes a kernel when :meth:`launch` is called."""

    def __init__(self, baseline: dict):
        read_fd, self._write_fd = os.pipe()
        self.ready_fd, ready_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            os.close(self._write_fd)
            os.close(self.ready_fd)
            for sibling in _PREFORKED:  # their pipes must close when the worker's do
                sibling._close_pipes()
            _kernel_child(read_fd, ready_write, baseline)
        os.close(read_fd)
        os.close(ready_write)

    def launch(self, args: list[str], env: dict, cwd: str) -> _ForkedKernelProcess:
        from importlib.util import find_spec

        launcher = find_spec("ipykernel_launcher").origin
        spec = {"launcher": launcher, "args": args, "env": env, "cwd": cwd}
        with os.fdopen(self._write_fd, "wb") as pipe:
            pipe.write(pickle.dumps(spec))
        self._write_fd = None
        return _ForkedKernelProcess(self.pid)

    async def bound(self, timeout: float = 60.0) -> None:
        """Wait until the kernel listens on its ports (or has died).

        A client that connects before the kernel binds is retried by ZeroMQ only
        after 100 ms, and the IOPub handshake of ``wait_for_ready`` then costs
        another 200 ms timeout: a third of a second per notebook.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        signalled = loop.create_future()

        def readable():
            if not signalled.done():
                signalled.set_result(None)

        loop.add_reader(self.ready_fd, readable)
        try:
            await asyncio.wait_for(signalled, timeout)
        except asyncio.TimeoutError:
            pass  # nbclient's own startup timeout and liveness checks decide
        finally:
            loop.remove_reader(self.ready_fd)
            os.close(self.ready_fd)
            self.ready_fd = None

    def _close_pipes(self) -> None:
        for name in ("ready_fd", "_write_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def discard(self) -> None:
        """Stop a kernel that was never launched (nbgrader needed fewer)."""
        if self._write_fd is not None:
            self._close_pipes()
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        elif self.ready_fd is not None:
            self._close_pipes()


def _is_this_python_kernel(cmd: Sequence[str]) -> bool:
    return (
        len(cmd) >= 3
        and list(cmd[1:3]) == ["-m", "ipykernel_launcher"]
        and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
    )


def _forking_classes():
    """Build the kernel manager/provisioner classes (imports jupyter_client)."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from traitlets import default

    class PromptKernelClient(AsyncKernelClient):
        """A client whose readiness check does not idle for 0.2 s.

        jupyter_client's check (a ``kernel_info`` reply on the shell channel and
        any message on IOPub) ends by draining IOPub until it has been silent
        for 0.2 s; a forked kernel is bound before the client connects, so what
        is queued arrives at once and 10 ms of silence is enough. nbclient
        ignores IOPub messages that do not answer its own requests anyway.
        """

        async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout else float("inf"))
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    try:
                        await self.iopub_channel.get_msg(timeout=0.2)
                    except Empty:
                        pass  # IOPub not connected yet: ask again
                    else:
                        self._handle_kernel_info_reply(reply)
                        break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            while True:
                try:
                    await self.iopub_channel.get_msg(timeout=0.01)
                except Empty:
                    break

        wait_for_ready = _async_wait_for_ready

    class ForkingProvisioner(LocalProvisioner):
        """Hand nbgrader a preforked kernel instead of exec'ing a new Python."""

        async def launch_kernel(self, cmd, **kwargs):
            if not (_PREFORKED and _is_this_python_kernel(cmd)):
                return await super().launch_kernel(cmd, **kwargs)
            env = dict(kwargs.get("env") or os.environ)
            env["JPY_PARENT_PID"] = str(os.getpid())
            cwd = str(kwargs.get("cwd") or os.getcwd())
            # ipykernel reads JPY_PARENT_PID when it is imported (here: long ago).
            args = [*cmd[3:], f"--IPKernelApp.parent_handle={os.getpid()}"]
            kernel = _PREFORKED.pop(0)
            self.process = kernel.launch(args, env, cwd)
            await kernel.bound()
            self.pid = self.pgid = self.process.pid
            self.cwd = cwd
            return self.connection_info

        async def wait(self):
            import asyncio

            while self.process is not None and await self.poll() is None:
                await asyncio.sleep(0.01)
            return await super().wait()

    class ForkingKernelManager(AsyncKernelManager):
        """A kernel manager whose kernels are forked (see ForkingProvisioner)."""

        @default("client_factory")
        def _prompt_client(self):
            return PromptKernelClient

        async def _async_pre_start_kernel(self, **kw):
            if self.provisioner is None:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", None)
                self.kernel_id = self.kernel_id or str(uuid.uuid4())
                self.provisioner = ForkingProvisioner(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
                )
            return await super()._async_pre_start_kernel(**kw)

        pre_start_kernel = _async_pre_start_kernel

        async def _async_wait(self, pollinterval: float = 0.01) -> None:
            # The stock 0.1 s poll costs a tenth of a second per notebook.
            await super()._async_wait(pollinterval=min(pollinterval, 0.01))

    return ForkingProvisioner, ForkingKernelManager


_CLASSES: tuple | None = None


def _forking_kernel_manager():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _forking_classes()
    return _CLASSES[1]


def warm_up() -> None:
    """Import what grading and a kernel need, once, before workers are forked."""
    import importlib

    if _BASELINE is None:
        _start_baseline()
    for module in KERNEL_PRELOAD:
        if module != "ipykernel.debugger":
            with contextlib.suppress(Exception):  # absent: the kernel imports it
                importlib.import_module(module)
    import nbclient  # noqa: F401
    import nbconvert.exporters  # noqa: F401
    import nbgrader.api  # noqa: F401
    import nbgrader.apps.api  # noqa: F401
    import nbgrader.converters  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401

    _import_debugger()
    _forking_kernel_manager()
    _interpreter_baseline()
    for minor in (4, 5):  # compile nbformat's schema validators once, here
        nb = nbformat.v4.new_notebook()
        nb.nbformat_minor = minor
        with contextlib.suppress(Exception):
            nbformat.validate(nb)
    # Objects that exist now are never collected: keeping the collector off
    # them keeps forked workers and kernels from copying their memory pages.
    gc.collect()
    gc.freeze()


def _import_debugger() -> None:
    """Import ipykernel's debugger (debugpy, 0.2 s per kernel) without its effects.

    Importing debugpy sets ``PYDEVD_*`` variables and ``sys.breakpointhook``;
    the grader keeps neither, each forked kernel gets both back, as a kernel
    that imported it itself would have them.
    """
    if _DEBUGPY_EFFECTS or "ipykernel.debugger" in sys.modules:
        return
    environ, hook = dict(os.environ), sys.breakpointhook
    with _environ(PYDEVD_DISABLE_FILE_VALIDATION="1"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import ipykernel.debugger  # noqa: F401
        except Exception:  # the kernel imports it under the same guard
            return
    _DEBUGPY_EFFECTS["environ"] = {
        k: v for k, v in os.environ.items() if environ.get(k) != v
    }
    _DEBUGPY_EFFECTS["breakpointhook"] = sys.breakpointhook
    for key in _DEBUGPY_EFFECTS["environ"]:
        if key in environ:
            os.environ[key] = environ[key]
        else:
            del os.environ[key]
    sys.breakpointhook = hook


# --------------------------------------------------------------------------
# Grading one submission
# --------------------------------------------------------------------------


#: (event, monotonic time) of the notebook being graded in this process.
_TIMELINE: list[tuple[str, float]] = []


def _record_progress(path: str, cell=None, cell_index=None, **_kw) -> None:
    """nbclient ``on_cell_start`` hook: note which cell is running, and when."""
    meta = cell.metadata.get("nbgrader", {}) if cell is not None else {}
    label = meta.get("grade_id") or f"cell {cell_index}"
    if cell is not None and cell.cell_type == "code" and cell.source.strip():
        _TIMELINE.append((label, time.monotonic()))
    with contextlib.suppress(OSError):
        Path(path).write_text(json.dumps({"cell": cell_index, "label": label}))


def _record_kernel_ready(**_kw) -> None:
    """nbclient ``on_notebook_start`` hook: the kernel answered."""
    _TIMELINE.append(("<kernel ready>", time.monotonic()))


def _timing(started: float, ended: float) -> dict:
    """Where a task's time went: setup and kernel start, cells, the rest."""
    events = [*_TIMELINE, ("<end>", ended)]
    ready = [t for label, t in events if label == "<kernel ready>"]
    cells: dict[str, float] = {}
    for (label, t0), (_, t1) in zip(events, events[1:], strict=False):
        if label not in ("<kernel ready>", "<end>"):
            cells[label] = cells.get(label, 0.0) + (t1 - t0)
    slowest = sorted(cells.items(), key=lambda kv: -kv[1])[:3]
    return {
        "until_kernel_ready": round(ready[0] - started, 3) if ready else None,
        "cells": round(sum(cells.values()), 3),
        "total": round(ended - started, 3),
        "slowest_cells": [[label, round(t, 3)] for label, t in slowest],
    }


def _where(progress_file: Path) -> str:
    try:
        data = json.loads(progress_file.read_text())
    except (OSError, ValueError):
        return "before the first cell ran"
    label = data["label"]
    index = data["cell"]
    if label == f"cell {index}":
        return f"while running cell {index}"
    return f"while running cell {index} ({label})"


@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _build_scratch_course(
    task: GradeTask, template: Path, root: Path, submission: Path, nbs
) -> Path:
    source = template / "source" / task.assignment
    shutil.copytree(
        source,
        root / "source" / task.assignment,
        ignore=shutil.ignore_patterns("*.ipynb", *_IGNORED),
    )
    shutil.copyfile(template / "gradebook.db", root / "gradebook.db")
    dest = root / "submitted" / task.student / task.assignment
    # ``submission`` is the intake's copy: real files only, no link.
    shutil.copytree(
        submission,
        dest,
        ignore=shutil.ignore_patterns("*.ipynb", *_IGNORED),
        symlinks=True,
    )
    for name, nb in nbs.items():
        nbformat.write(nb, str(dest / name))
    return root


def _read_gradebook(root: Path, info: TemplateInfo, task: GradeTask):
    from nbgrader.api import Gradebook

    scores, comments, late = {}, {}, {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", info.course_id) as gb:
        submission = gb.find_submission(task.assignment, task.student)
        timestamp = submission.timestamp.isoformat() if submission.timestamp else None
        for notebook in submission.notebooks:
            if notebook.late_submission_penalty:
                late[notebook.name] = float(notebook.late_submission_penalty)
            for grade in notebook.grades:
                value = grade.score if grade.auto_score is not None else None
                scores[grade.name] = (
                    None if value is None else float(value),
                    float(grade.max_score),
                )
            for comment in notebook.comments:
                comments[comment.name] = comment.auto_comment
    ordered = {gid: scores[gid] for gid in info.max_scores if gid in scores}
    ordered.update({k: v for k, v in scores.items() if k not in ordered})
    return ordered, comments, timestamp, late


def _timed_out_cells(autograded: Path, names: Iterable[str]) -> list[str]:
    labels = []
    for name in names:
        path = autograded / name
        if not path.is_file():
            continue
        nb = nbformat.read(str(path), as_version=4)
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in (
                    "CellTimeoutError",
                ):
                    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                    labels.append(f"cell {index} ({gid})" if gid else f"cell {index}")
                    break
    return labels


def locked_cell_errors(autograded: Path, names: Iterable[str]) -> list[str]:
    """Errors raised by locked, non-graded cells (the course's own code) of the
    autograded notebooks, as ``"<cell>: <exception>: <message>"``."""
    found = []
    for name in names:
        path = autograded / name
        if not path.is_file():
            continue
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("locked") or meta.get("grade") or meta.get("solution"):
                continue
            for output in cell.get("outputs", []):
                if (
                    output.get("output_type") == "error"
                    and output.get("ename") in ENVIRONMENT_ERRORS
                ):
                    label = meta.get("grade_id") or "locked"
                    found.append(
                        f"{label} cell: {output['ename']}: {output.get('evalue', '')}"
                    )
    return found


def _combine(problems: list[tuple[str, str]]) -> tuple[str, str]:
    outcome = problems[0][0]
    return outcome, "; ".join(reason for _, reason in problems)


def _usage() -> dict[str, float]:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"worker": round(own, 1), "kernel": round(kids, 1)}


def _verified_scores(task: GradeTask, limits, scratch: Path, submission, autograded):
    """Run the verified scoring of the assignment's notebook (see ``verify``)."""
    from .sandbox import SandboxConfig
    from .verify import verify_submission

    name = f"{task.assignment}.ipynb"
    workdir = autograded if autograded.is_dir() else scratch / "verify-empty"
    workdir.mkdir(parents=True, exist_ok=True)
    return verify_submission(
        Path(submission) / name,
        task.assignment,
        sandbox_config=SandboxConfig(
            limits=limits,
            scratch_dir=str(scratch / "verify"),
            require_sandbox=task.require_sandbox,
        ),
        source_root=task.course_root,
        workdir=workdir,
        run_seed=task.run_seed,
    )


def _reconciled(scores: dict, verification) -> tuple[dict, dict, Flags]:
    """Scores where the verified run counts, per-cell reports and flags.

    Args:
        scores: ``{grade_id: (score, max)}`` from the notebook run (score None
            where it gave none, e.g. the kernel died).
        verification: the result of :func:`autograder.verify.verify_submission`.
    """
    from .verify import reconcile

    nbgrader = {gid: s for gid, (s, _) in scores.items()}
    final = reconcile(nbgrader, verification)
    merged = dict(scores)
    cells: dict[str, CellReport] = {}
    flags = Flags(unsandboxed=getattr(verification, "sandboxed", None) is False)
    for gid, decided in final.items():
        full = scores[gid][1] if gid in scores else decided.max_points
        if gid in scores or decided.verified is not None:
            merged[gid] = (decided.score, full)
        verdict = verification.get(gid)
        cells[gid] = CellReport(
            decided.score,
            full,
            visible=getattr(verdict, "visible", "not run"),
            hidden=getattr(verdict, "hidden", "not verified"),
            message=decided.note,
            not_checked_because=getattr(verdict, "broken_dependency", None),
        )
        if decided.disagree:
            flags.disagreement.append(gid)
        if cells[gid].visible == "not checked":
            flags.not_checked.append(gid)
    return merged, cells, flags


def _nbgrader_cells(scores: dict) -> dict[str, CellReport]:
    """Per-cell reports of an unverified (``--no-sandbox``) run."""
    return {
        gid: CellReport(score, full, hidden="not verified")
        for gid, (score, full) in scores.items()
    }


@dataclass
class _Run:
    """The state of one submission's grading, shared by its steps."""

    task: GradeTask
    scratch: Path
    started: float
    info: TemplateInfo
    inspection: _Inspection = field(default_factory=lambda: _Inspection())
    flags: Flags = field(default_factory=Flags)

    @property
    def zero(self) -> dict:
        return {gid: (0.0, pts) for gid, pts in self.info.max_scores.items()}

    def result(self, outcome, reason, scores=None, **kw) -> GradeResult:
        ended = time.monotonic()
        scores = self.zero if scores is None else scores
        kw.setdefault("cells", {})
        return GradeResult(
            self.task.assignment,
            self.task.student,
            outcome,
            reason,
            dict(scores),
            duration=ended - self.started,
            notes=list(self.inspection.notes),
            peak_rss_mb=_usage(),
            timing=_timing(self.started, ended),
            flags=self.flags,
            run_seed=self.task.run_seed,
            **kw,
        )


def _nbgrader_config(task: GradeTask, root: Path, scratch: Path, n_notebooks: int):
    """nbgrader's configuration for one task, and the sandbox limits (or None)."""
    config = course_config(task.course_root)
    config.CourseDirectory.root = str(root)
    if task.cell_timeout is not None:
        config.Execute.timeout = int(task.cell_timeout)
    config.Execute.on_cell_start = partial(
        _record_progress, str(scratch / "progress.json")
    )
    config.Execute.on_notebook_start = _record_kernel_ready
    # Outputs are complete once the last cell has run: no graceful shutdown poll.
    config.Execute.shutdown_kernel = "immediate"
    limits = None
    if task.sandbox:
        from .sandbox import SandboxLimits, sandbox_config_for

        limits = SandboxLimits.from_dict(
            {
                **dict(task.sandbox_limits),
                "cell_timeout": int(task.cell_timeout or config.Execute.timeout),
                "notebook_timeout": int(task.notebook_timeout),
            }
        )
        config.merge(
            sandbox_config_for(
                scratch / "sandbox", limits, require_sandbox=task.require_sandbox
            )
        )
    elif task.fork_kernels:
        config.Execute.kernel_manager_class = _forking_kernel_manager()
        baseline = _interpreter_baseline()
        for _ in range(n_notebooks):
            _PREFORKED.append(_PreforkedKernel(baseline))
    return config, limits


def _run_nbgrader(task: GradeTask, config, scratch: Path) -> tuple[dict, str]:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from .source import COURSE_ROOT_ENV

    try:
        with (
            _environ(
                JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                **{COURSE_ROOT_ENV: str(Path(task.course_root).resolve())},
            ),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
            outcome = api.autograde(task.assignment, task.student)
    finally:
        while _PREFORKED:
            _PREFORKED.pop().discard()
    log = outcome.get("log", "") + "\n" + outcome.get("error", "")
    (scratch / "nbgrader.log").write_text(log)
    return outcome, log


def _failed_run(run: _Run, log: str, verified) -> GradeResult:
    """The outcome of a notebook run nbgrader reported as failed."""
    progress = run.scratch / "progress.json"
    if "Kernel didn't respond" in log and not progress.exists():
        # Never got as far as the first cell: the kernel could not start
        # (e.g. a memory limit below what Python and numpy need).
        return run.result(
            KERNEL_DIED,
            "the kernel did not start (a sandbox limit too low for Python and "
            "numpy, or a crash at start-up); nothing could be graded",
        )
    if "Kernel died" in log or "DeadKernelError" in log:
        if verified is not None:
            unscored = {gid: (None, full) for gid, (_, full) in run.zero.items()}
            scores, cells, flags = _reconciled(unscored, verified)
            run.flags = flags
            return run.result(
                KERNEL_DIED,
                f"the kernel died {_where(progress)}; the scores are the "
                "verified ones (each function run on its own in the sandbox)",
                scores,
                cells=cells,
            )
        return run.result(
            KERNEL_DIED,
            f"the kernel died {_where(progress)} (os._exit, a crash or out of "
            "memory); nothing could be graded",
        )
    if "kernel became unresponsive" in log or "UnresponsiveKernel" in log:
        return run.result(
            TIMED_OUT,
            f"cell limit ({run.task.cell_timeout} s) hit {_where(progress)} and the "
            "kernel did not respond to the interrupt",
        )
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return run.result(ERROR, "nbgrader failed: " + " | ".join(lines[-3:]))


def _environment_errors(verified, autograded: Path, names) -> list[str]:
    errors = list(getattr(verified, "locked_errors", []) or [])
    return errors + locked_cell_errors(autograded, names)


def grade_submission(task: GradeTask, scratch_dir: Path) -> GradeResult:
    """Grade one submission with nbgrader; write only inside ``scratch_dir``.

    Steps: intake (refuse links and odd files, copy the rest), inspection (which
    notebooks can be graded), the notebook run (nbgrader, sandboxed), the
    verified run, and the outcome.

    Returns:
        The outcome, its reason, the score and report of every graded cell, the
        flags and the folder of autograded notebooks (inside ``scratch_dir``).
    """
    started = time.monotonic()
    _TIMELINE.clear()
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    template = task.template_dir or prepare_template(
        task.course_root, task.assignment, scratch / "template"
    )
    run = _Run(task, scratch, started, TemplateInfo.load(template))
    submission = scratch / "submission"
    try:
        take_in(Path(task.submission_dir), submission)
    except Refusal as refusal:
        run.flags.refused = True
        return run.result(REFUSED, str(refusal))
    except OSError as exc:
        return run.result(ERROR, f"could not copy the submission: {exc}")

    run.inspection = inspect_submission(submission, run.info.notebooks)
    if not run.inspection.graded:
        return run.result(*_combine(run.inspection.problems))

    graded = run.inspection.graded
    root = _build_scratch_course(task, template, scratch / "course", submission, graded)
    config, limits = _nbgrader_config(task, root, scratch, len(graded))
    outcome, log = _run_nbgrader(task, config, scratch)
    autograded = root / "autograded" / task.student / task.assignment

    verified = None
    if task.sandbox and f"{task.assignment}.ipynb" in graded:
        verified = _verified_scores(task, limits, scratch, submission, autograded)
    broken = _environment_errors(verified, autograded, graded)
    if broken:
        return run.result(
            ERROR,
            "the course's own code failed, not the student's: "
            + "; ".join(broken[:3])
            + " — fix the grading environment (see the pre-flight) and re-grade",
        )
    if not outcome["success"]:
        return _failed_run(run, log, verified)

    scores, comments, timestamp, late = _read_gradebook(root, run.info, task)
    if verified is not None:
        scores, cells, run.flags = _reconciled(scores, verified)
    else:
        cells = _nbgrader_cells(scores)
        run.flags.unsandboxed = not task.sandbox
    run.inspection.notes.extend(
        f"{gid}: {cells[gid].message}" for gid in run.flags.disagreement
    )
    extra = {
        "comments": comments,
        "timestamp": timestamp,
        "autograded_dir": autograded,
        "late_penalties": late,
        "cells": cells,
    }
    timeouts = _timed_out_cells(autograded, graded)
    if timeouts:
        reason = (
            f"cell limit ({task.cell_timeout} s) hit in {', '.join(timeouts)}: "
            "interrupted, the other cells were graded"
        )
        if run.inspection.problems:
            reason += "; " + _combine(run.inspection.problems)[1]
        return run.result(TIMED_OUT, reason, scores, **extra)
    if run.inspection.problems:
        outcome_name, reason = _combine(run.inspection.problems)
        return run.result(
            outcome_name, reason + "; the other notebooks were graded", scores, **extra
        )
    return run.result(GRADED, "; ".join(run.inspection.notes), scores, **extra)


# --------------------------------------------------------------------------
# A pool of forked workers with wall-clock limits
# --------------------------------------------------------------------------


@dataclass
class _Job:
    key: object
    fn: Callable
    args: tuple
    log: Path
    limit: float | None
    on_timeout: Callable[[], object]
    on_crash: Callable[[str], object]


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` (the grader) dies.

    Linux's parent-death signal; the worker's own children (kernels, runners)
    get theirs from bubblewrap (``--die-with-parent``) and from this function
    in :mod:`autograder.sandbox`. Without it, a grader killed with SIGKILL
    would leave its workers grading on their own.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # psutil missing or the process is gone
        return []


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker, its kernels and their process groups."""
    for child in [*_descendants(pid), pid]:
        with contextlib.suppress(OSError):
            if os.getpgid(child) == child and child != os.getpgrp():
                os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)


def _child_main(conn, fn, args, log_path: str, parent: int) -> None:
    """Run in a forked worker: own process group, output to a log, result back."""
    global _WORKER_CONN
    _WORKER_CONN = conn
    die_with_parent(parent)
    os.setpgid(0, 0)  # Ctrl-C reaches the parent only; killpg reaches this task
    _reset_event_loops()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    try:
        payload = ("ok", fn(*args))
    except BaseException:
        payload = ("error", traceback.format_exc())
    for pid in _descendants(os.getpid()):  # a kernel left behind must not linger
        _kill_tree(pid)
    conn.send(payload)
    conn.close()


def run_tasks(
    jobs: Iterable[_Job], workers: int, *, on_done: Callable | None = None
) -> dict:
    """Run each job in its own forked process, ``workers`` at a time.

    Returns:
        ``{job.key: result}``; a job over its limit is killed (with its
        kernels) and gets ``job.on_timeout()``, a job whose process dies gets
        ``job.on_crash(message)``.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    pending = deque(jobs)
    running: dict = {}
    results: dict = {}

    def finish(item, value):
        proc, conn, job, _ = item
        proc.join(5)
        if proc.is_alive():
            _kill_tree(proc.pid)
            proc.join()
        conn.close()
        results[job.key] = value
        if on_done is not None:
            on_done(job, value)

    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                job = pending.popleft()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=_child_main,
                    args=(send, job.fn, job.args, str(job.log), os.getpid()),
                )
                proc.start()
                send.close()
                running[recv] = (proc, recv, job, time.monotonic())
            now = time.monotonic()
            deadlines = [
                started + job.limit - now
                for _, _, job, started in running.values()
                if job.limit is not None
            ]
            timeout = max(0.0, min(deadlines)) if deadlines else None
            handles = [*running, *(item[0].sentinel for item in running.values())]
            ready = set(wait(handles, timeout))
            for conn in list(running):
                item = running[conn]
                proc, _, job, started = item
                if conn in ready or proc.sentinel in ready:
                    del running[conn]
                    try:
                        if conn not in ready and not conn.poll(1):
                            raise EOFError
                        status, payload = conn.recv()
                    except (EOFError, OSError):
                        proc.join(5)
                        message = f"worker died (exit code {proc.exitcode})"
                        finish(item, job.on_crash(message))
                        continue
                    if status == "ok":
                        finish(item, payload)
                    else:
                        finish(item, job.on_crash(payload.strip().splitlines()[-1]))
                elif job.limit is not None and time.monotonic() - started > job.limit:
                    del running[conn]
                    _kill_tree(proc.pid)
                    finish(item, job.on_timeout())
    finally:
        for proc, conn, _, _ in running.values():
            _kill_tree(proc.pid)
            proc.join()
            conn.close()
    return results


# --------------------------------------------------------------------------
# Merging into the course gradebook (single writer, atomic replace)
# --------------------------------------------------------------------------


def _sync_assignment(dst, src, assignment: str) -> None:
    """Copy an assignment's definition (notebooks, cells) between gradebooks."""
    from nbgrader.api import MissingEntry

    original = src.find_assignment(assignment)
    try:
        dst.find_assignment(assignment)
    except MissingEntry:
        dst.update_or_create_assignment(assignment, duedate=original.duedate)
    # An existing assignment keeps the due date the instructor gave it.
    for nb in original.notebooks:
        dst.update_or_create_notebook(nb.name, assignment)
        # Grade cells and task cells carry the same fields.
        for cells, create in (
            (nb.grade_cells, dst.update_or_create_grade_cell),
            (nb.task_cells, dst.update_or_create_task_cell),
        ):
            for cell in cells:
                create(
                    cell.name,
                    nb.name,
                    assignment,
                    max_score=cell.max_score,
                    cell_type=cell.cell_type,
                )
        for cell in nb.solution_cells:
            dst.update_or_create_solution_cell(cell.name, nb.name, assignment)
        for cell in nb.source_cells:
            dst.update_or_create_source_cell(
                cell.name,
                nb.name,
                assignment,
                cell_type=cell.cell_type,
                locked=cell.locked,
                source=cell.source,
                checksum=cell.checksum,
            )


def _store(gb, result: GradeResult) -> None:
    from nbgrader.api import MissingEntry

    gb.update_or_create_student(result.student)
    manual = {}
    try:
        old = gb.find_submission(result.assignment, result.student)
    except MissingEntry:
        pass
    else:
        for nb in old.notebooks:
            for grade in nb.grades:
                if grade.manual_score is not None or grade.extra_credit:
                    manual[("g", grade.name)] = (grade.manual_score, grade.extra_credit)
            for comment in nb.comments:
                if comment.manual_comment:
                    manual[("c", comment.name)] = comment.manual_comment
        gb.remove_submission(result.assignment, result.student)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    submission = gb.add_submission(result.assignment, result.student, **kwargs)
    for nb in submission.notebooks:
        nb.late_submission_penalty = result.late_penalties.get(nb.name)
        for grade in nb.grades:
            score = result.scores.get(grade.name, (0.0, 0.0))[0]
            grade.auto_score = score
            grade.manual_score, grade.extra_credit = manual.get(
                ("g", grade.name), (None, None)
            )
            grade.needs_manual_grade = score is None or grade.manual_score is not None
        for comment in nb.comments:
            comment.auto_comment = result.comments.get(comment.name)
            comment.manual_comment = manual.get(("c", comment.name))
    gb.db.commit()


def merge_results(
    course_root: Path,
    results: Sequence[GradeResult],
    templates: dict[str, Path],
    workdir: Path,
) -> list[str]:
    """Write ``results`` into ``<course_root>/gradebook.db`` atomically.

    Returns:
        One line per submission whose grades could not be stored (the others
        are stored regardless).

    The merge works on a copy in ``workdir``; the finished copy is moved next to
    the gradebook and renamed over it, so readers see the old or the new
    gradebook, never a half-written one.
    """
    from nbgrader.api import Gradebook

    course_root = Path(course_root)
    target = course_root / "gradebook.db"
    work = Path(workdir) / "gradebook.db"
    if target.exists():
        shutil.copyfile(target, work)
    else:
        shutil.copyfile(next(iter(templates.values())) / "gradebook.db", work)
    course_id = course_config(course_root).CourseDirectory.get("course_id", "") or ""
    url = f"sqlite:///{work}"
    failures: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(url, course_id) as gb:
            for assignment, template in templates.items():
                with Gradebook(
                    f"sqlite:///{template / 'gradebook.db'}", course_id
                ) as src:
                    _sync_assignment(gb, src, assignment)
            for result in results:
                if not result.definite:  # a pipeline failure keeps the old grades
                    continue
                try:
                    _store(gb, result)
                except Exception as exc:  # noqa: BLE001 - one student, not the class
                    gb.db.rollback()
                    failures.append(
                        f"{result.student}/{result.assignment}: the gradebook "
                        f"refused the grades ({type(exc).__name__}: {exc})"
                    )
    staged = course_root / f".gradebook.db.{os.getpid()}.new"
    shutil.copyfile(work, staged)
    with open(staged, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(staged, target)
    return failures


def _install_autograded(course_root: Path, result: GradeResult) -> None:
    """Replace ``autograded/<student>/<assignment>/`` with this run's output."""
    dest = Path(course_root) / "autograded" / result.student / result.assignment
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.parent / f".{result.assignment}.new"
    old = dest.parent / f".{result.assignment}.old"
    for path in (staged, old):
        if path.exists():
            shutil.rmtree(path)
    if result.autograded_dir is not None and Path(result.autograded_dir).is_dir():
        shutil.copytree(result.autograded_dir, staged)
    else:
        staged.mkdir()
    if dest.exists():
        os.replace(dest, old)
    os.replace(staged, dest)
    if old.exists():
        shutil.rmtree(old)


# --------------------------------------------------------------------------
# The grade command
# --------------------------------------------------------------------------


@dataclass
class GradeRun:
    """The results of one ``grade`` run, in (assignment, student) order."""

    results: list[GradeResult]
    wall_time: float
    phases: dict[str, float] = field(default_factory=dict)
    #: submissions whose grades or autograded copy could not be stored.
    failures: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failures and all(r.definite for r in self.results)

    def table(self) -> str:
        """A plain-text summary table: student, assignment, outcome, score, reason."""
        rows = [("student", "assignment", "outcome", "score", "reason")]
        for r in self.results:
            rows.append(
                (
                    r.student,
                    r.assignment,
                    r.outcome,
                    f"{r.score:g}/{r.max_score:g}",
                    r.reason or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
        return "\n".join(lines)


def discover_submissions(
    course_root: Path, assignments: Sequence[str] | None = None, students=None
) -> list[tuple[str, str, Path]]:
    """List ``(assignment, student, folder)`` for every submission to grade.

    Raises:
        UsageError: for an assignment that has no source notebook.
    """
    course_root = Path(course_root)
    known = list_assignments(course_root) if (course_root / "source").is_dir() else []
    wanted = list(assignments) if assignments else known
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise UsageError(
            f"unknown assignment(s) {unknown} in {course_root / 'source'}; "
            f"known: {', '.join(known) or 'none'}"
        )
    found = []
    submitted = course_root / "submitted"
    for student_dir in sorted(submitted.iterdir()) if submitted.is_dir() else []:
        # A link (student folder or assignment folder) is listed, not followed
        # here: the intake refuses it with a reason, so it shows in the table.
        if student_dir.name.startswith(".") or not (
            student_dir.is_symlink() or student_dir.is_dir()
        ):
            continue
        if students and student_dir.name not in students:
            continue
        for assignment in wanted:
            folder = student_dir / assignment
            if folder.is_symlink() or folder.is_dir():
                found.append((assignment, student_dir.name, folder))
    return sorted(found)


def _scratch_base() -> Path:
    """Scratch space: memory-backed when there is plenty of it."""
    chosen = os.environ.get("AUTOGRADER_SCRATCH")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
        if os.access(shm, os.W_OK) and stats.f_bavail * stats.f_frsize > 2 << 30:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    class _Bar(tqdm):
        monitor_interval = 0  # no monitor thread: workers are forked

    return _Bar(
        total=total,
        desc="grading",
        unit="submission",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def default_workers() -> int:
    """One more worker than CPUs: a task's worker and kernel take turns, and
    both wait on each other and on files now and then."""
    return (os.cpu_count() or 1) + 1


def default_cell_timeout(course_root: Path) -> int | None:
    """``Execute.timeout`` from the course configuration (nbgrader's default 30)."""
    config = course_config(course_root)
    return config.Execute.get("timeout", 30)


def grade_course(
    course_root: Path = REPO_ROOT,
    assignments: Sequence[str] | None = None,
    *,
    students: Sequence[str] | None = None,
    workers: int | None = None,
    cell_timeout: int | None = None,
    notebook_timeout: float | None = None,
    fork_kernels: bool = True,
    sandbox: bool = False,
    require_sandbox: bool = False,
    sandbox_limits: Mapping[str, int] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> GradeRun:
    """Grade every submission of ``assignments`` (default: all) in a course.

    Args:
        course_root: folder with ``source/`` and ``submitted/``.
        assignments: assignment ids; default every one with a source notebook.
        students: restrict to these student ids.
        workers: submissions graded at once (default: one more than the CPUs).
        cell_timeout: per-cell limit in seconds (default: the course's
            ``Execute.timeout``).
        notebook_timeout: wall-clock limit per notebook in seconds.
        fork_kernels: fork kernels from the worker (see the module docstring).
        sandbox: grade under bubblewrap with verified scores (see GradeTask).
        require_sandbox: fail where bubblewrap cannot run.
        sandbox_limits: overrides of the sandbox's resource limits, by name.
        progress: show a progress bar on stderr.
        log: where the summary goes.

    Returns:
        The run; ``run.complete`` is False if any submission ended in ``error``.
    """
    started = time.monotonic()
    for name, value in (
        ("workers", workers),
        ("cell timeout", cell_timeout),
        ("notebook timeout", notebook_timeout),
    ):
        if value is not None and value <= 0:
            raise UsageError(f"the {name} must be positive, got {value}")
    limits = tuple(sorted((sandbox_limits or {}).items()))
    if limits:
        from .sandbox import SandboxLimits

        try:
            SandboxLimits.from_dict(dict(limits))
        except ValueError as error:
            raise UsageError(str(error)) from None
    course_root = Path(course_root).resolve()
    found = discover_submissions(course_root, assignments, students)
    if not found:
        log(f"nothing to grade: no submissions under {course_root / 'submitted'}")
        return GradeRun([], time.monotonic() - started)
    workers = workers or default_workers()
    if cell_timeout is None:
        cell_timeout = default_cell_timeout(course_root)
    notebook_timeout = notebook_timeout or DEFAULT_NOTEBOOK_TIMEOUT
    phases: dict[str, float] = {}
    clock = [time.monotonic()]

    def lap(name: str) -> None:
        now = time.monotonic()
        phases[name] = round(now - clock[0], 3)
        clock[0] = now

    warm_up()
    lap("imports")
    run_dir = Path(tempfile.mkdtemp(prefix="autograder-run-", dir=_scratch_base()))
    try:
        templates = _prepare_templates(
            course_root, sorted({a for a, _, _ in found}), run_dir, workers
        )
        lap("templates")
        run_seeds = {}
        if sandbox:
            from .sandbox import SandboxConfig, sandbox_status

            available, why = sandbox_status(SandboxConfig())
            if not available:
                if require_sandbox:
                    raise UsageError(f"--require-sandbox: {why}")
                log(f"WARNING: UNSANDBOXED GRADING: {why}")
            from .verify import choose_run_seed

            for assignment in sorted({a for a, _, _ in found}):
                try:
                    run_seeds[assignment] = choose_run_seed(
                        assignment, source_root=course_root
                    )
                except Exception as exc:  # noqa: BLE001 - the reference is broken
                    # Part of the pre-flight: the trusted process's own reference
                    # must run before any kernel does (else a raw traceback, exit 1).
                    raise PreflightFailed(
                        f"pre-flight of {assignment} failed, so nothing was graded "
                        "(every score would be wrong):\n  reference solution, in "
                        f"the grader: {type(exc).__name__}: {exc}"
                    ) from exc
            log(f"verified run seeds: {run_seeds}")
        n_notebooks = {
            a: len(TemplateInfo.load(t).notebooks) for a, t in templates.items()
        }

        def make_task(assignment: str, student: str, folder: Path) -> GradeTask:
            return GradeTask(
                assignment=assignment,
                student=student,
                submission_dir=folder,
                course_root=course_root,
                cell_timeout=cell_timeout,
                notebook_timeout=notebook_timeout,
                template_dir=templates[assignment],
                fork_kernels=fork_kernels,
                sandbox=sandbox,
                require_sandbox=require_sandbox,
                run_seed=run_seeds.get(assignment),
                sandbox_limits=limits,
            )

        settings = Settings(
            sandbox=sandbox,
            require_sandbox=require_sandbox,
            fork_kernels=fork_kernels,
            cell_timeout=cell_timeout,
            notebook_timeout=notebook_timeout,
            sandbox_limits=limits,
        )
        for assignment in sorted(templates):
            ran = run_preflight(
                course_root,
                assignment,
                templates[assignment],
                settings,
                workdir=run_dir / "preflight" / assignment,
                grade=partial(
                    _grade_folders,
                    make_task,
                    assignment,
                    run_dir,
                    n_notebooks,
                    workers,
                ),
                log=log,
            )
            if not ran:
                log(f"pre-flight {assignment}: passed before (cached)")
        lap("preflight")
        tasks = [
            (index, make_task(assignment, student, folder))
            for index, (assignment, student, folder) in enumerate(found)
        ]
        bar = _progress_bar(len(tasks), progress)
        with bar:
            jobs = [
                _grade_job(index, task, run_dir, n_notebooks[task.assignment])
                for index, task in tasks
            ]
            done = run_tasks(jobs, workers, on_done=lambda *_: bar.update(1))
        results = [done[index] for index, _ in tasks]
        lap("grading")
        failures = merge_results(course_root, results, templates, run_dir)
        write_outcomes(course_root, results)
        lap("merge")
        for result in results:
            if not result.definite:
                continue
            try:
                _install_autograded(course_root, result)
            except OSError as exc:
                failures.append(
                    f"{result.student}/{result.assignment}: grades stored, but the "
                    f"autograded notebook could not be installed ({exc})"
                )
        lap("install")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    run = GradeRun(results, time.monotonic() - started, phases, failures)
    log(run.table())
    for line in failures:
        log(f"FAILED: {line}")
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    log(f"{len(results)} submission(s) in {run.wall_time:.1f} s: {summary}")
    log("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    return run


def _grade_folders(
    make_task, assignment, run_dir, n_notebooks, workers, folders
) -> dict[str, GradeResult]:
    """Grade ``{student: folder}`` of one assignment in the worker pool."""
    base = 100_000 + len(list(run_dir.glob("task-*")))
    jobs, keys = [], {}
    for offset, (student, folder) in enumerate(sorted(folders.items())):
        task = make_task(assignment, student, folder)
        jobs.append(_grade_job(base + offset, task, run_dir, n_notebooks[assignment]))
        keys[base + offset] = student
    done = run_tasks(jobs, workers)
    return {keys[k]: v for k, v in done.items()}


def _prepare_templates(course_root, assignments, run_dir, workers) -> dict[str, Path]:
    def crash(assignment, message):
        raise AutograderError(
            f"could not prepare assignment {assignment} with generate_assignment: "
            f"{message}"
        )

    jobs = []
    for assignment in assignments:
        dest = run_dir / "templates" / assignment
        dest.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(
            _Job(
                assignment,
                prepare_template,
                (course_root, assignment, dest),
                run_dir / f"template-{assignment}.log",
                TEMPLATE_TIMEOUT,
                partial(crash, assignment, f"over {TEMPLATE_TIMEOUT:.0f} s"),
                partial(crash, assignment),
            )
        )
    return {k: Path(v) for k, v in run_tasks(jobs, workers).items()}


def _grade_job(index: int, task: GradeTask, run_dir: Path, n_notebooks: int) -> _Job:
    scratch = run_dir / f"task-{index:05d}"
    scratch.mkdir()
    limit = task.notebook_timeout * max(1, n_notebooks)

    def zero(outcome: str, reason: str) -> GradeResult:
        info = TemplateInfo.load(task.template_dir)
        return GradeResult(
            task.assignment,
            task.student,
            outcome,
            reason,
            {gid: (0.0, pts) for gid, pts in info.max_scores.items()},
            duration=limit,
        )

    def on_timeout():
        where = _where(scratch / "progress.json")
        return zero(
            TIMED_OUT,
            f"notebook limit ({task.notebook_timeout:g} s) reached {where}; "
            "the grading process was stopped",
        )

    def on_crash(message: str):
        try:
            lines = (scratch / "worker.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        tail = " | ".join(line for line in lines[-3:] if line.strip())
        return zero(
            ERROR, f"grading failed: {message}" + (f" ({tail})" if tail else "")
        )

    return _Job(
        index,
        grade_submission,
        (task, scratch),
        scratch / "worker.log",
        limit,
        on_timeout,
        on_crash,
    )
