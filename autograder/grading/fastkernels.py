"""Fast kernels for ``--no-sandbox``: forked from the worker, not started anew.

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
Sandboxed grading (the command's default) never uses this module: its kernels start
inside bubblewrap (:mod:`autograder.sandbox.kernel`).
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
from collections.abc import Sequence

import nbformat

from .environ import scoped_environ
from .pool import close_worker_channel, reset_event_loops

__all__ = [
    "GRADER_PRELOAD",
    "KERNEL_PRELOAD",
    "discard_preforked",
    "prefork_kernels",
    "warm_up",
]

_BASELINE: dict | None = None
#: What importing ipykernel's debugger (debugpy) changes in a process: undone in
#: the grader by :func:`warm_up`, redone in each forked kernel.
_DEBUGPY_EFFECTS: dict = {}
_PREFORKED: list[_PreforkedKernel] = []


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
    reset_event_loops()
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
        close_worker_channel()
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


def _forking_classes():  # noqa: C901 - three classes, defined only when needed
    """Build the kernel manager/provisioner classes (imports jupyter_client)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from traitlets import default

    from ..sandbox.kernel import PromptKernelClient

    class ForkingProvisioner(LocalProvisioner):
        """Hand nbgrader a preforked kernel instead of exec'ing a new Python."""

        async def launch_kernel(self, cmd, **kwargs):
            from . import progress

            progress.mark(progress.KERNEL_LAUNCH)
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
            if self.transport != "ipc":
                # Sockets in a private folder, not TCP ports: a port found free
                # can be taken by another worker's kernel before this one binds
                # it, and the kernel would never answer.
                self._ipc_folder = tempfile.mkdtemp(prefix="agk-")
                self.transport = "ipc"
                self.ip = os.path.join(self._ipc_folder, "k")
                self.cache_ports = False
            return await super()._async_pre_start_kernel(**kw)

        pre_start_kernel = _async_pre_start_kernel

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            folder = getattr(self, "_ipc_folder", None)
            if folder and not restart:
                shutil.rmtree(folder, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

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


#: What the grader itself imports to grade a notebook (nbgrader, and the
#: trusted side of the verified run: numpy, the visible and hidden tests).
GRADER_PRELOAD = (
    "numpy",
    "nbclient",
    "nbconvert.exporters",
    "nbgrader.api",
    "nbgrader.apps.api",
    "nbgrader.converters",
    "nbgrader.preprocessors",
    "ipykernel.kernelspec",  # nbclient asks it for the kernel's spec
    "IPython.display",
    "sqlalchemy.dialects.sqlite",  # the scratch gradebook
    "dlcourse.testcases",
    "autograder.nbgrader_plugin",
    "autograder.sandbox.kernel",
    "autograder.verify.reconcile",
    "autograder.verify.submission",
)


def warm_up(*, kernels: bool = True) -> None:
    """Import what grading needs, once, before workers are forked.

    Args:
        kernels: also import what a kernel needs (:data:`KERNEL_PRELOAD`), for
            kernels forked from the worker (``--no-sandbox``). Sandboxed kernels
            start in their own interpreter: the grader need not import IPython,
            matplotlib or debugpy for them (about a second of every command).
    """
    import importlib

    if kernels and _BASELINE is None:
        _start_baseline()
    for module in (*KERNEL_PRELOAD, *GRADER_PRELOAD) if kernels else GRADER_PRELOAD:
        if module != "ipykernel.debugger":
            with contextlib.suppress(Exception):  # absent: the kernel imports it
                importlib.import_module(module)
    if kernels:
        _import_debugger()
        _forking_kernel_manager()
        _interpreter_baseline()
    # Compile nbformat's schema validators once, here: strict, and relaxed as
    # nbconvert asks after each preprocessor (a validator of its own).
    for minor in (4, 5):
        nb = nbformat.v4.new_notebook()
        nb.nbformat_minor = minor
        for relax in (False, True):
            with contextlib.suppress(Exception):
                nbformat.validate(nb, relax_add_props=relax)
    _first_use()
    # Objects that exist now are never collected: keeping the collector off
    # them keeps forked workers and kernels from copying their memory pages.
    gc.collect()
    gc.freeze()


def _first_use() -> None:
    """Do here, once, what every grading otherwise does on its first use in a
    fresh process (each task is one): about 0.1 s per submission, measured
    as a task forked from a process that has graded once against one forked
    before. None of it holds a student's data or a kernel.

    - the sandbox's probe (bubblewrap runs a trivial command; cached per
      process, :func:`autograder.sandbox.availability.sandbox_status`);
    - nbgrader's gradebook models: SQLAlchemy configures their mappers on
      first use;
    - jupyter_client's kernel provisioners (an entry-point scan) and the
      kernel spec nbclient asks for.
    """
    from ..sandbox.availability import sandbox_status
    from ..sandbox.config import SandboxConfig

    with contextlib.suppress(Exception):
        sandbox_status(SandboxConfig())
    with contextlib.suppress(Exception):
        import nbgrader.api  # noqa: F401 - its models, configured next
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
    with contextlib.suppress(Exception):
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.provisioning import KernelProvisionerFactory

        KernelProvisionerFactory.instance()
        KernelSpecManager().get_kernel_spec("python3")


def _import_debugger() -> None:
    """Import ipykernel's debugger (debugpy, 0.2 s per kernel) without its effects.

    Importing debugpy sets ``PYDEVD_*`` variables and ``sys.breakpointhook``;
    the grader keeps neither, each forked kernel gets both back, as a kernel
    that imported it itself would have them.
    """
    if _DEBUGPY_EFFECTS or "ipykernel.debugger" in sys.modules:
        return
    environ, hook = dict(os.environ), sys.breakpointhook
    with scoped_environ(PYDEVD_DISABLE_FILE_VALIDATION="1"), warnings.catch_warnings():
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


def prefork_kernels(config, count: int) -> None:
    """Have nbgrader's executor use ``count`` kernels forked from this worker."""
    _import_debugger()
    config.Execute.kernel_manager_class = _forking_kernel_manager()
    baseline = _interpreter_baseline()
    for _ in range(count):
        _PREFORKED.append(_PreforkedKernel(baseline))


def discard_preforked() -> None:
    """Stop the preforked kernels nbgrader did not use."""
    while _PREFORKED:
        _PREFORKED.pop().discard()
