"""Run student code in a bubblewrap sandbox with resource limits.

Every process that runs student code during grading (the notebook's kernel and
the process that computes outputs for verified scoring) is started through
:class:`Launch`, which wraps its command in ``bwrap`` so that it sees:

- read-only: the system (``/usr`` and the ``/lib*``, ``/bin`` links), a few
  files of ``/etc``, the Python installation and virtual environment, the
  installed ``dlcourse`` package folder (not the repository it lives in), the
  dataset folders, and a stand-in for the grader's ``autograder.hidden``
  package (hidden tests run outside the sandbox, see :mod:`autograder.verify`);
- read-write: a size-limited tmpfs at ``/tmp`` and another at the submission's
  folder (its path unchanged), holding read-only copies of the submission's
  files (notebooks excluded: the autograded copy carries the hidden tests);
- for a kernel, one private folder with its connection file and IPC sockets:
  there is no network at all (own network namespace), so the grader talks to
  the kernel through Unix sockets;
- nothing else: no repository, no ``source/``, no gradebook, no other
  submission, no home folder, no host process (own PID namespace), and none of
  the grader's environment variables.

Limits (:class:`SandboxLimits`) are set inside the sandbox by
``sandbox_limits.py``: memory (address space), processes, file size, open
files, CPU time. When the grader runs as root the student's code runs as an
unprivileged user id leased for the sandbox's lifetime, because Linux does not
enforce the process limit for root. A watchdog thread enforces the wall-clock
limit of a notebook and the size of the kernel's socket folder;
:class:`SandboxExecute` (nbgrader's executor) caps the output a cell may send.

Where bubblewrap cannot run (no user namespaces, macOS), commands run
unsandboxed with the same resource limits, a loud warning and an
``unsandboxed`` event in the scratch folder's event log; ``require_sandbox``
turns that into :class:`SandboxUnavailable`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute as _Execute
from traitlets import Dict as DictTrait

from . import REPO_ROOT
from .errors import AutograderError

__all__ = [
    "EVENT_LOG",
    "Launch",
    "SandboxConfig",
    "SandboxExecute",
    "SandboxKernelManager",
    "SandboxLimits",
    "SandboxUnavailable",
    "UnsandboxedWarning",
    "sandbox_config_for",
    "sandbox_events",
    "sandbox_status",
]

log = logging.getLogger(__name__)

KiB, MiB, GiB = 1024, 1024**2, 1024**3

#: Event log written in the scratch folder (one JSON object per line).
EVENT_LOG = "sandbox-events.jsonl"

#: Where the helper files appear inside the sandbox.
SANDBOX_SUPPORT = "/opt/autograder-sandbox"

_HERE = Path(__file__).resolve().parent
_LIMITS_SCRIPT = _HERE / "sandbox_limits.py"
_RUNNER_SCRIPT = _HERE / "sandbox_runner.py"

# Files of /etc that the C library and Python read; the rest of /etc stays out.
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/etc/fonts",
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Host variables that change numerics or plotting, passed through unchanged.
_ENV_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_", "LC_")
_ENV_NAMES = ("LANG", "TZ", "MPLBACKEND", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING")


class SandboxUnavailable(AutograderError):
    """The sandbox was required but bubblewrap cannot run on this machine."""

    exit_code = 5


class UnsandboxedWarning(UserWarning):
    """Student code is running without the sandbox."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed process tree (sizes in bytes).

    The defaults leave a real assignment ample room (the deep-network
    application peaks near 1 GiB of address space) while containing runaway code.
    """

    #: Address space of each process (``RLIMIT_AS``); numpy and BLAS threads
    #: reserve far more than they touch, so this is not resident memory.
    memory: int = 4 * GiB
    #: Processes and threads of the sandbox user (``RLIMIT_NPROC``).
    processes: int = 256
    #: Largest file a process may write (``RLIMIT_FSIZE``).
    file_size: int = 128 * MiB
    #: Open file descriptors per process (``RLIMIT_NOFILE``).
    open_files: int = 256
    #: CPU seconds per process (``RLIMIT_CPU``).
    cpu_seconds: int = 1800
    #: Size of the writable tmpfs over the submission folder.
    scratch_size: int = 256 * MiB
    #: Size of the writable tmpfs at ``/tmp``.
    tmp_size: int = 256 * MiB
    #: Bytes the kernel may leave in its socket folder (checked by the watchdog).
    runtime_size: int = 4 * MiB
    #: Output (stream text and display data) one cell may produce.
    output_per_cell: int = 1 * MiB
    #: Output the whole notebook may produce; later output is dropped.
    output_per_notebook: int = 8 * MiB
    #: Largest single message accepted from a kernel.
    message_size: int = 64 * MiB
    #: Wall-clock seconds per cell (nbgrader's ``Execute.timeout``).
    cell_timeout: int = 60
    #: Wall-clock seconds per notebook (kernel start to shutdown).
    notebook_timeout: int = 1800

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"SandboxLimits.{f.name} must be a positive integer, got {value!r}"
                )

    @classmethod
    def from_dict(cls, values: Mapping) -> SandboxLimits:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown sandbox limit(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**dict(values))


def _default_data_dirs() -> tuple[str, ...]:
    dirs = []
    env = os.environ.get("DLCOURSE_DATA")
    if env:
        dirs.append(env)
    repo_data = REPO_ROOT / "datasets"
    if repo_data.is_dir():
        dirs.append(str(repo_data))
    return tuple(dirs)


@dataclass(frozen=True)
class SandboxConfig:
    """How to sandbox student code; picklable and convertible to a dict.

    Args:
        limits: resource limits.
        scratch_dir: private folder of the grading task: the kernels' socket
            folders and the event log go there (default: the system temp folder).
        bwrap: the bubblewrap executable (name on PATH or path).
        require_sandbox: raise :class:`SandboxUnavailable` instead of running
            unsandboxed when bubblewrap cannot run.
        python: interpreter for kernels and runners (default: this one).
        data_dirs: dataset folders made visible read-only (default:
            ``$DLCOURSE_DATA`` and the repository's ``datasets/`` if present).
        stub_modules: modules replaced inside the sandbox by a stand-in whose
            ``GRADER.grade`` only prints that hidden tests run outside.
        ro_paths: further host paths made visible read-only.
        env: further environment variables for the sandboxed process.
        uid_base: first user id leased to sandboxes when grading as root.
    """

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    scratch_dir: str | None = None
    bwrap: str = "bwrap"
    require_sandbox: bool = False
    python: str = sys.executable
    data_dirs: tuple[str, ...] = field(default_factory=_default_data_dirs)
    stub_modules: tuple[str, ...] = ("autograder.hidden",)
    ro_paths: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    uid_base: int = 200_000

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["env"] = dict(self.env)
        return values

    @classmethod
    def from_dict(cls, values: Mapping) -> SandboxConfig:
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sandbox option(s) {unknown}")
        if isinstance(values.get("limits"), Mapping):
            values["limits"] = SandboxLimits.from_dict(values["limits"])
        for key in ("data_dirs", "stub_modules", "ro_paths"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def replace(self, **changes) -> SandboxConfig:
        return dataclasses.replace(self, **changes)


# --- events -------------------------------------------------------------------


def _record_event(config: SandboxConfig, event: dict) -> None:
    """Append one event to the scratch folder's log (best effort, never raises)."""
    folder = config.scratch_dir or tempfile.gettempdir()
    event = {"time": round(time.time(), 3), **event}
    try:
        with open(Path(folder) / EVENT_LOG, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(event, sort_keys=True) + "\n")
    except OSError as exc:
        log.warning("cannot write the sandbox event log in %s: %s", folder, exc)


def sandbox_events(scratch_dir: str | os.PathLike) -> list[dict]:
    """Return the events recorded in ``scratch_dir`` (oldest first).

    Each event has ``event`` (``"start"``, ``"killed"``, ``"output-limit"``,
    ``"exit"``), ``sandboxed`` (bool), ``what`` (``"kernel"`` or ``"runner"``),
    ``workdir`` and, for ``killed``, ``reason``.
    """
    path = Path(scratch_dir) / EVENT_LOG
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


# --- availability -------------------------------------------------------------


def _bwrap_path(config: SandboxConfig) -> str | None:
    found = shutil.which(config.bwrap)
    return found


@cache
def _probe(bwrap: str, python: str, as_root: bool) -> str | None:
    """Run a trivial sandboxed command; return why it failed, or None."""
    with tempfile.TemporaryDirectory(prefix="sbx-probe-") as folder:
        config = SandboxConfig(bwrap=bwrap, python=python, data_dirs=())
        launch = Launch(
            [python, "-I", "-S", "-c", "pass"],
            workdir=folder,
            config=config,
            what="probe",
        )
        try:
            argv, env = launch.prepare(sandboxed=True)
            done = subprocess.run(
                argv, env=env, capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{bwrap} could not be run: {exc}"
        finally:
            launch.cleanup()
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            return f"{bwrap} failed: {detail[-1] if detail else done.returncode}"
    return None


def sandbox_status(config: SandboxConfig) -> tuple[bool, str]:
    """Return ``(available, explanation)`` for this machine and configuration."""
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = _bwrap_path(config)
    if bwrap is None:
        return False, f"bubblewrap not found ({config.bwrap!r} is not an executable)"
    problem = _probe(bwrap, config.python, os.geteuid() == 0)
    if problem:
        return False, problem
    return True, f"sandboxed with {bwrap}"


_warned: set[str] = set()


def _resolve_sandboxed(config: SandboxConfig) -> bool:
    """Decide whether to sandbox; raise or warn loudly if we cannot."""
    available, why = sandbox_status(config)
    if available:
        return True
    if config.require_sandbox:
        raise SandboxUnavailable(
            f"the sandbox is required but cannot run: {why}. Install bubblewrap "
            "and allow unprivileged user namespaces (or grade as root), or grade "
            "without --require-sandbox."
        )
    message = (
        f"UNSANDBOXED GRADING: {why}. Student code runs with the grader's view of "
        "the file system and network (resource limits still apply). Results are "
        "marked unsandboxed; use --require-sandbox to refuse."
    )
    if message not in _warned:
        _warned.add(message)
        print(f"\n{'!' * 78}\n{message}\n{'!' * 78}\n", file=sys.stderr, flush=True)
    warnings.warn(message, UnsandboxedWarning, stacklevel=3)
    log.warning(message)
    return False


# --- the view -----------------------------------------------------------------


@cache
def _python_paths(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (installation folders, dlcourse package folders) of ``python``."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        spec = importlib.util.find_spec("dlcourse")
        packages = list(spec.submodule_search_locations or []) if spec else []
    else:
        code = (
            "import importlib.util, json, sys\n"
            "s = importlib.util.find_spec('dlcourse')\n"
            "print(json.dumps([[sys.prefix, sys.base_prefix, sys.exec_prefix, "
            "sys.base_exec_prefix], list(s.submodule_search_locations or []) "
            "if s else []]))"
        )
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        prefix_list, packages = json.loads(out)
        prefixes = set(prefix_list)
    prefixes.add(str(Path(python).parent.parent))
    prefixes.add(str(Path(os.path.realpath(python)).parent.parent))
    real = sorted({os.path.realpath(p) for p in prefixes if os.path.isdir(p)})
    # Keep outermost folders only.
    kept = [p for p in real if not any(p != q and _inside(p, q) for q in real)]
    return tuple(kept), tuple(sorted({os.path.realpath(p) for p in packages}))


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


_FORBIDDEN_ROOTS = ("/", "/home", "/root", "/work", "/etc", "/var", "/proc", "/sys")


def _check_exposable(path: str) -> None:
    real = os.path.realpath(path)
    if real in _FORBIDDEN_ROOTS or real == os.path.realpath(Path.home()):
        raise ValueError(f"refusing to expose {path} to student code: too broad")
    for secret in (REPO_ROOT / "source", REPO_ROOT / ".git"):
        if _inside(str(secret), real):
            raise ValueError(
                f"refusing to expose {path} to student code: it contains {secret}"
            )


_STUB_SOURCE = '''"""Stand-in for the grader's hidden tests inside the sandbox.

The hidden tests run outside the student's process (see autograder.verify), so
inside the notebook they only say so.
"""

import importlib.abc
import importlib.machinery
import sys


class _StubGrader:
    def grade(self, name, namespace=None):
        print(f"{name}: hidden tests run outside this notebook when it is graded.")


GRADER = _StubGrader()


def grade(name, namespace=None):
    GRADER.grade(name, namespace)


class _Submodules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(__name__ + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []
        module.GRADER = GRADER
        module.grade = grade


sys.meta_path.insert(0, _Submodules())
'''


_STARTUP_SOURCE = '''"""Sandbox: cap what one cell may print.

Runs at kernel start (IPython startup file). A runaway ``print`` loop fills the
kernel's output buffer faster than it can be sent; past the limit the first
write raises, which ends a naive loop like an interrupt, and later writes of
the same cell are dropped. The grader also drops output past the limit.
"""

import os as _os
import sys as _sys


def _install_output_cap():
    limit = int(_os.environ.get("AUTOGRADER_OUTPUT_LIMIT", "0") or 0)
    shell = get_ipython()  # noqa: F821 - defined in IPython startup files
    if limit <= 0 or shell is None:
        return
    state = {"written": 0, "raised": False}

    class OutputLimitExceeded(Exception):
        """The cell printed more than the sandbox allows."""

    def reset(*args, **kwargs):
        state["written"], state["raised"] = 0, False

    def capped(stream):
        write = stream.write

        def limited_write(text):
            state["written"] += len(text)
            if state["written"] <= limit:
                return write(text)
            if not state["raised"]:
                state["raised"] = True
                raise OutputLimitExceeded(
                    f"this cell printed more than {limit} characters; "
                    "the rest of its output is dropped"
                )
            return len(text)

        stream.write = limited_write

    for stream in (_sys.stdout, _sys.stderr):
        capped(stream)
    shell.events.register("pre_run_cell", reset)


_install_output_cap()
del _install_output_cap
'''


@cache
def _support_dir(stub_modules: tuple[str, ...]) -> str:
    """Create (once per process) the stub packages shown inside the sandbox."""
    root = Path(tempfile.mkdtemp(prefix="sbx-support-"))
    os.chmod(root, 0o755)
    stubs = root / "stubs"
    for name in stub_modules:
        parts = name.split(".")
        folder = stubs
        for depth, part in enumerate(parts):
            if not part.isidentifier():
                raise ValueError(f"not a module name: {name!r}")
            folder = folder / part
            folder.mkdir(parents=True, exist_ok=True)
            init = folder / "__init__.py"
            if depth == len(parts) - 1:
                init.write_text(_STUB_SOURCE, encoding="utf-8")
            elif not init.exists():
                init.write_text('"""Stand-in package (sandbox)."""\n', encoding="utf-8")
    owner = os.getpid()
    atexit.register(
        lambda: os.getpid() == owner and shutil.rmtree(root, ignore_errors=True)
    )
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-autograder-sandbox.py").write_text(_STARTUP_SOURCE, encoding="utf-8")
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    # Unsandboxed runs import the grader's own dlcourse through this link (the
    # sandbox binds the same folder at SANDBOX_SUPPORT/lib/dlcourse instead).
    (root / "lib").mkdir(mode=0o755)
    package = _course_package(sys.executable)
    if package:
        os.symlink(package, root / "lib" / "dlcourse")
    return str(root)


def _course_package(python: str) -> str | None:
    """The ``dlcourse`` folder that ``python`` (the grader's) imports."""
    packages = _python_paths(python)[1]
    return packages[0] if packages else None


@cache
def _matplotlib_fontlists() -> tuple[str, ...]:
    """Font lists matplotlib cached for the grader (read-only in the sandbox)."""
    folders = [os.environ.get("MPLCONFIGDIR"), str(Path.home() / ".cache/matplotlib")]
    found = []
    for folder in folders:
        if folder and os.path.isdir(folder):
            found += sorted(str(p) for p in Path(folder).glob("fontlist-v*.json"))
    names, unique = set(), []
    for path in found:
        if Path(path).name not in names and os.access(path, os.R_OK):
            names.add(Path(path).name)
            unique.append(os.path.realpath(path))
    return tuple(unique)


class _UidLease:
    """An unprivileged user id reserved (by a file lock) for one sandbox."""

    def __init__(self, base: int, span: int = 4096):
        folder = Path(tempfile.gettempdir()) / "autograder-sandbox-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        for uid in range(base, base + span):
            fd = os.open(folder / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise AutograderError(f"no free sandbox user id in {base}..{base + span}")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Launch:
    """One sandboxed process tree: its command line, folders and limits.

    Args:
        cmd: the command to run (absolute interpreter path first).
        workdir: the submission's folder; the process starts there and sees a
            writable tmpfs holding read-only copies of its files.
        config: sandbox configuration.
        what: label for events (``"kernel"``, ``"runner"``).
        runtime: make a private read-write folder (for a kernel's sockets).
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        workdir: str | os.PathLike,
        config: SandboxConfig,
        what: str = "process",
        runtime: bool = False,
    ):
        self.cmd = list(cmd)
        self.workdir = os.path.realpath(workdir)
        self.config = config
        self.what = what
        self.sandboxed: bool | None = None
        base = config.scratch_dir or tempfile.gettempdir()
        Path(base).mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~107 bytes: fall back to /tmp.
        if len(os.path.realpath(base)) > 60:
            base = tempfile.gettempdir()
        self.folder = tempfile.mkdtemp(prefix="sbx-", dir=base)
        self.runtime_dir = os.path.join(self.folder, "rt") if runtime else None
        if self.runtime_dir:
            os.mkdir(self.runtime_dir, 0o700)
        self._lease: _UidLease | None = None
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self.pgid: int | None = None
        self.killed_reason: str | None = None
        self.stderr_tail = b""

    # -- command line ---------------------------------------------------------

    def _limit_args(self) -> list[str]:
        lim = self.config.limits
        return [
            f"--as={lim.memory}",
            f"--nproc={lim.processes}",
            f"--fsize={lim.file_size}",
            f"--nofile={lim.open_files}",
            f"--cpu={lim.cpu_seconds}",
            "--core=0",
        ]

    def _inner_env(self, sandboxed: bool) -> dict[str, str]:
        support = (
            SANDBOX_SUPPORT if sandboxed else _support_dir(self.config.stub_modules)
        )
        tmp = "/tmp" if sandboxed else os.path.join(self.folder, "tmp")
        env = {
            "PATH": f"{Path(self.config.python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": self.workdir,
            "USER": "student",
            "LOGNAME": "student",
            "TMPDIR": tmp,
            # The stand-ins, then the grader's own dlcourse, ahead of anything
            # an install layout (editable finder, .pth file, a course folder's
            # copy) would otherwise pick: kernel, runner and the trusted
            # process all import the same package.
            "PYTHONPATH": f"{support}/stubs:{support}/lib",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "IPYTHONDIR": f"{tmp}/ipython",
            "JUPYTER_RUNTIME_DIR": f"{tmp}/jupyter",
            "MPLCONFIGDIR": f"{tmp}/matplotlib",
            "MPLBACKEND": "Agg",
            "LANG": "C.UTF-8",
            # ipykernel: no parent polling, and no "Ctrl-C will not work" banner.
            "JPY_PARENT_PID": "1",
            "AUTOGRADER_OUTPUT_LIMIT": str(self.config.limits.output_per_cell),
        }
        for name, value in os.environ.items():
            if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES):
                env[name] = value
        data = [d for d in self.config.data_dirs if os.path.isdir(d)]
        if data:
            env["DLCOURSE_DATA"] = os.path.realpath(data[0])
        env.update(self.config.env)
        return env

    def _bwrap_args(self, inner: list[str]) -> list[str]:
        config = self.config
        lim = config.limits
        as_root = os.geteuid() == 0
        args = [
            _bwrap_path(config) or config.bwrap,
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "sandbox",
            "--die-with-parent",
        ]
        if as_root:
            # Mounts are made as root; the limits script then becomes the
            # leased unprivileged user (and loses these two capabilities).
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", "--disable-userns"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # The private /tmp comes first: the Python environment, the data or the
        # scratch folder may live under the host's /tmp, and bwrap applies mounts
        # in order, so those binds must land on top of it, not under it.
        args += ["--perms", "01777", "--size", str(lim.tmp_size), "--tmpfs", "/tmp"]
        made: set[str] = {"/", "/proc", "/dev", "/tmp"}

        def parents(path: str) -> list[str]:
            out = []
            for parent in reversed(Path(path).parents):
                p = str(parent)
                if p not in made:
                    made.add(p)
                    out += ["--perms", "0755", "--dir", p]
            return out

        def ro(src: str, dest: str | None = None) -> list[str]:
            dest = dest or src
            if not os.path.exists(src):
                return []
            made.add(dest)
            return [*parents(dest), "--ro-bind", src, dest]

        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
                made.add(path)
            else:
                args += ro(path)
        for path in _ETC_FILES:
            args += ro(path)
        prefixes, packages = _python_paths(config.python)
        for path in prefixes:
            args += ro(path)
        if packages:
            args += ro(packages[0], f"{SANDBOX_SUPPORT}/lib/dlcourse")
        for path in (*config.data_dirs, *config.ro_paths):
            if os.path.exists(path):
                _check_exposable(path)
                args += ro(os.path.realpath(path))
        support = _support_dir(config.stub_modules)
        args += ro(f"{support}/stubs", f"{SANDBOX_SUPPORT}/stubs")
        args += ro(str(_LIMITS_SCRIPT), f"{SANDBOX_SUPPORT}/sandbox_limits.py")
        args += ro(str(_RUNNER_SCRIPT), f"{SANDBOX_SUPPORT}/sandbox_runner.py")
        # IPython's startup file caps each cell's output inside the kernel.
        startup = "/tmp/ipython/profile_default/startup"
        for folder in ("/tmp/ipython", "/tmp/ipython/profile_default", startup):
            args += ["--perms", "01777", "--dir", folder]
        args += [
            "--ro-bind",
            f"{support}/ipython/profile_default/startup/00-autograder-sandbox.py",
            f"{startup}/00-autograder-sandbox.py",
        ]
        fontlists = _matplotlib_fontlists()
        if fontlists:
            # A prebuilt font list spares every kernel matplotlib's font scan.
            args += ["--perms", "01777", "--dir", "/tmp/matplotlib"]
            for path in fontlists:
                args += ["--ro-bind", path, f"/tmp/matplotlib/{Path(path).name}"]
        # The submission folder: a writable tmpfs with read-only copies inside.
        args += parents(self.workdir)
        args += ["--perms", "01777", "--size", str(lim.scratch_size)]
        args += ["--tmpfs", self.workdir]
        made.add(self.workdir)
        for entry in sorted(os.scandir(self.workdir), key=lambda e: e.name)[:1000]:
            if entry.is_symlink() or entry.name.endswith(".ipynb"):
                continue
            if entry.name in (".ipynb_checkpoints", "__pycache__"):
                continue
            args += ["--ro-bind", entry.path, entry.path]
        if self.runtime_dir:
            args += [*parents(self.runtime_dir)]
            args += ["--bind", self.runtime_dir, self.runtime_dir]
        args += ["--chdir", self.workdir, "--clearenv"]
        for name, value in sorted(self._inner_env(True).items()):
            args += ["--setenv", name, value]
        return [*args, "--", *inner]

    def prepare(self, *, sandboxed: bool | None = None) -> tuple[list[str], dict]:
        """Return ``(argv, env)`` for ``subprocess.Popen``.

        Args:
            sandboxed: force the decision (the probe uses it); by default,
                sandbox if bubblewrap works, else run unsandboxed (or raise
                :class:`SandboxUnavailable` if the sandbox is required).
        """
        if sandboxed is None:
            sandboxed = _resolve_sandboxed(self.config)
        self.sandboxed = sandboxed
        python = self.config.python
        if not sandboxed:
            Path(self.folder, "tmp").mkdir(exist_ok=True)
            shutil.copytree(
                Path(_support_dir(self.config.stub_modules), "ipython"),
                Path(self.folder, "tmp", "ipython"),
                dirs_exist_ok=True,
            )
            argv = [python, "-I", "-S", str(_LIMITS_SCRIPT), "--die-with-parent"]
            argv += self._limit_args()
            return [*argv, "--", *self.cmd], self._inner_env(False)
        inner = [python, "-I", "-S", f"{SANDBOX_SUPPORT}/sandbox_limits.py"]
        inner += self._limit_args()
        if os.geteuid() == 0:
            self._lease = _UidLease(self.config.uid_base)
            inner += [f"--uid={self._lease.uid}", f"--gid={self._lease.uid}"]
            if self.runtime_dir:
                os.chown(self.runtime_dir, self._lease.uid, self._lease.uid)
        inner += ["--", *self.cmd]
        outer = [python, "-I", "-S", str(_LIMITS_SCRIPT), "--ignore-sigint"]
        outer += ["--die-with-parent", "--"]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        return [*outer, *self._bwrap_args(inner)], env

    def grant(self, path: str) -> None:
        """Let the sandbox user read a file the grader wrote (a connection file)."""
        if self._lease is not None:
            os.chown(path, self._lease.uid, self._lease.uid)

    # -- lifetime -------------------------------------------------------------

    def started(self, pid: int, *, deadline: float | None = None) -> None:
        """Record the process and start the watchdog."""
        try:
            self.pgid = os.getpgid(pid)
        except OSError:
            self.pgid = pid
        _record_event(
            self.config,
            {
                "event": "start",
                "what": self.what,
                "sandboxed": bool(self.sandboxed),
                "workdir": self.workdir,
            },
        )
        if deadline is not None or self.runtime_dir:
            self._watchdog = threading.Thread(
                target=self._watch,
                args=(deadline,),
                daemon=True,
                name="sandbox-watchdog",
            )
            self._watchdog.start()

    def drain(self, stream) -> None:
        """Read a pipe from the sandbox in the background, keeping its tail.

        Student code can write to its stderr without end; the grader's own
        terminal and logs must not fill up with it.
        """
        self.stderr_tail = b""

        def pump():
            with contextlib.suppress(OSError, ValueError):
                while chunk := stream.read(65536):
                    self.stderr_tail = (self.stderr_tail + chunk)[-8192:]

        threading.Thread(target=pump, daemon=True, name="sandbox-stderr").start()

    def _watch(self, deadline: float | None) -> None:
        limit = self.config.limits.runtime_size
        while not self._stop.wait(0.25):
            if deadline is not None and time.monotonic() > deadline:
                seconds = self.config.limits.notebook_timeout
                self.kill(f"notebook time limit ({seconds} s) exceeded")
                return
            if self.runtime_dir and _folder_size(self.runtime_dir, limit) > limit:
                self.kill(f"wrote more than {limit} bytes into its socket folder")
                return

    def signal(self, signum: int) -> None:
        """Send a signal to every process of the sandbox."""
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def kill(self, reason: str) -> None:
        """Kill the whole sandbox and record why."""
        if self.killed_reason is None:
            self.killed_reason = reason
            _record_event(
                self.config,
                {
                    "event": "killed",
                    "what": self.what,
                    "reason": reason,
                    "sandboxed": bool(self.sandboxed),
                    "workdir": self.workdir,
                },
            )
            log.warning("sandboxed %s killed: %s", self.what, reason)
        self.signal(signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop the watchdog, release the user id and remove private folders."""
        self._stop.set()
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _folder_size(folder: str, limit: int) -> int:
    total, count = 0, 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            count += 1
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
            if total > limit or count > 1000:
                return limit + 1
    return total


# --- Jupyter kernels ----------------------------------------------------------


class SandboxKernelManager(AsyncKernelManager):
    """A Jupyter kernel manager whose kernels run in the sandbox.

    Configure with ``c.SandboxKernelManager.sandbox_options =
    SandboxConfig(...).to_dict()`` (:func:`sandbox_config_for` does it). The
    kernel starts in the ``cwd`` nbclient passes (the submission folder) and
    talks over IPC sockets in a private folder.
    """

    sandbox_options = DictTrait(
        help="SandboxConfig as a dict (see autograder.sandbox)."
    ).tag(config=True)

    launch: Launch | None = None

    @property
    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig.from_dict(self.sandbox_options or {})

    async def _async_pre_start_kernel(self, **kw):
        config = self.sandbox_config
        workdir = kw.get("cwd") or os.getcwd()
        if self.launch is not None:
            self.launch.cleanup()
        self.launch = Launch(
            [], workdir=workdir, config=config, what="kernel", runtime=True
        )
        try:
            sandboxed = _resolve_sandboxed(config)
        except SandboxUnavailable:
            self.launch.cleanup()
            raise
        self.transport = "ipc"
        self.cache_ports = False
        self.ip = os.path.join(self.launch.runtime_dir, "k")
        self.connection_file = os.path.join(self.launch.runtime_dir, "kernel.json")
        kw.pop("env", None)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        # The kernel spec's interpreter may be a shim; use the configured one.
        tail = kernel_cmd[kernel_cmd.index("-f") :] if "-f" in kernel_cmd else []
        cmd = [config.python, "-m", "ipykernel_launcher", *tail]
        self.launch.cmd = cmd
        argv, env = self.launch.prepare(sandboxed=sandboxed)
        self.launch.grant(self.connection_file)
        kw["env"] = env
        kw["cwd"] = self.launch.workdir if not sandboxed else self.launch.folder
        kw["stdout"] = subprocess.DEVNULL
        kw["stderr"] = subprocess.PIPE
        return argv, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        deadline = time.monotonic() + self.sandbox_config.limits.notebook_timeout
        self.launch.started(self.provisioner.pid, deadline=deadline)
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.stderr is not None:
            self.launch.drain(process.stderr)

    def client(self, **kwargs):
        """A client that refuses any single kernel message above the size limit."""
        import zmq

        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, self.sandbox_config.limits.message_size)
        return kc

    def interrupt_now(self) -> None:
        """Interrupt every process of the kernel's sandbox (synchronous)."""
        if self.launch is not None:
            self.launch.signal(signal.SIGINT)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self.launch is not None and not restart:
            _record_event(
                self.launch.config,
                {
                    "event": "exit",
                    "what": "kernel",
                    "sandboxed": bool(self.launch.sandboxed),
                    "workdir": self.launch.workdir,
                    "killed": self.launch.killed_reason,
                    "stderr_tail": self.launch.stderr_tail.decode(errors="replace")[
                        -2000:
                    ],
                },
            )
            self.launch.cleanup()
            self.launch = None

    cleanup_resources = _async_cleanup_resources


# --- nbgrader's executor -------------------------------------------------------


class SandboxExecute(_Execute):
    """nbgrader's Execute preprocessor with sandboxed kernels and capped output."""

    sandbox_options = DictTrait(help="SandboxConfig as a dict.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._output_cell: int | None = None
        self._cell_bytes = 0
        self._notebook_bytes = 0
        self._cell_over = False

    @property
    def _limits(self) -> SandboxLimits:
        return SandboxConfig.from_dict(self.sandbox_options or {}).limits

    def output(self, outs, msg, display_id, cell_index):
        limits = self._limits
        if cell_index != self._output_cell:
            self._output_cell, self._cell_bytes, self._cell_over = cell_index, 0, False
        size = _message_size(msg)
        self._cell_bytes += size
        self._notebook_bytes += size
        if self._cell_over:
            return None
        if self._cell_bytes > limits.output_per_cell:
            self._cell_over = True
            self._report_output_limit(cell_index, limits.output_per_cell, "cell")
            if self.km is not None and hasattr(self.km, "interrupt_now"):
                self.km.interrupt_now()
            from nbformat.v4 import new_output

            notice = new_output(
                "stream",
                name="stdout",
                text=(
                    f"\n[output limit: this cell printed more than "
                    f"{limits.output_per_cell} bytes; it was interrupted and the "
                    "rest of its output dropped]\n"
                ),
            )
            outs.append(notice)
            return None
        if self._notebook_bytes > limits.output_per_notebook:
            self._cell_over = True
            self._report_output_limit(
                cell_index, limits.output_per_notebook, "notebook"
            )
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _report_output_limit(self, cell_index: int, limit: int, scope: str) -> None:
        config = SandboxConfig.from_dict(self.sandbox_options or {})
        _record_event(
            config,
            {
                "event": "output-limit",
                "what": "kernel",
                "scope": scope,
                "cell": cell_index,
                "limit": limit,
            },
        )


def _message_size(msg: Mapping) -> int:
    content = msg.get("content") or {}
    size = len(content.get("text") or "")
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    for line in content.get("traceback") or []:
        size += len(line)
    return size


def sandbox_config_for(
    scratch_dir: str | os.PathLike,
    limits: SandboxLimits | Mapping | None = None,
    **options,
):
    """Return the nbgrader configuration that grades in the sandbox.

    Merge it into the course configuration before autograding
    (``config.merge(sandbox_config_for(scratch, limits))``). It replaces
    nbgrader's ``Execute`` by :class:`SandboxExecute` and sets the per-cell
    timeout from ``limits.cell_timeout``.

    Args:
        scratch_dir: the grading task's private folder (socket folders and the
            event log, see :func:`sandbox_events`).
        limits: a :class:`SandboxLimits` or a dict of its fields.
        **options: further :class:`SandboxConfig` fields (``require_sandbox``,
            ``bwrap``, ``data_dirs``, ``stub_modules`` ...).

    Raises:
        SandboxUnavailable: if ``require_sandbox=True`` and bubblewrap cannot run.
    """
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    if isinstance(limits, Mapping):
        limits = SandboxLimits.from_dict(limits)
    config = SandboxConfig(
        limits=limits or SandboxLimits(),
        scratch_dir=str(Path(scratch_dir).resolve()),
        **options,
    )
    Path(config.scratch_dir).mkdir(parents=True, exist_ok=True)
    if config.require_sandbox:
        _resolve_sandboxed(config)
    defaults = Autograde.class_traits()["autograde_preprocessors"].default()
    c = Config()
    c.Autograde.autograde_preprocessors = [
        SandboxExecute if p is Execute else p for p in defaults
    ]
    c.Execute.timeout = config.limits.cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.SandboxExecute.sandbox_options = config.to_dict()
    c.SandboxKernelManager.sandbox_options = config.to_dict()
    return c
