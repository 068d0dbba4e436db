"""Build the command lines of a sandbox: pure functions, testable without bwrap.

:func:`bwrap_argv` returns the ``bwrap`` argument list that gives student code
its view (see docs/security.md): the system, the Python installation, the
course package and the data read-only; a private ``/tmp`` and a writable tmpfs
at the submission's folder holding read-only copies of its files (notebooks
excluded); for a kernel, its private socket folder; nothing else, and none of
the grader's environment. :func:`limit_args` gives the arguments of the limits
script (``files/limits.py``), :func:`inner_env` the environment inside.

Nothing here starts a process or writes a file; :mod:`.process` does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from .. import REPO_ROOT
from .config import SANDBOX_SUPPORT, SandboxConfig, SandboxLimits

__all__ = [
    "LIMITS_SCRIPT",
    "RUNNER_SCRIPT",
    "SANDBOX_LIMITS_SCRIPT",
    "SANDBOX_RUNNER_SCRIPT",
    "bwrap_argv",
    "inner_env",
    "limit_args",
    "passed_environ",
    "python_paths",
]

_FILES = Path(__file__).resolve().parent / "files"
#: The standalone programs that run inside the sandbox, on the host...
LIMITS_SCRIPT = _FILES / "limits.py"
RUNNER_SCRIPT = _FILES / "runner.py"
#: ...and where the sandbox sees them (bound read-only).
SANDBOX_LIMITS_SCRIPT = f"{SANDBOX_SUPPORT}/limits.py"
SANDBOX_RUNNER_SCRIPT = f"{SANDBOX_SUPPORT}/runner.py"
#: IPython's startup folder inside the sandbox (the output cap lives there).
SANDBOX_STARTUP = "/tmp/ipython/profile_default/startup"
STARTUP_FILE = "00-autograder-sandbox.py"

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


@cache
def python_paths(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
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


def limit_args(limits: SandboxLimits) -> list[str]:
    """Arguments of ``files/limits.py`` that set the per-process limits."""
    return [
        f"--as={limits.memory}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size}",
        f"--nofile={limits.open_files}",
        f"--cpu={limits.cpu_seconds}",
        "--core=0",
    ]


def inner_env(
    config: SandboxConfig,
    *,
    workdir: str,
    support: str,
    tmp: str,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The whole environment of the sandboxed process.

    Args:
        workdir: the submission's folder (also ``HOME``).
        support: where the stand-in packages and ``lib/dlcourse`` are seen.
        tmp: the process's temporary folder.
        environ: the grader's environment; only numerics and plotting settings
            pass (:data:`_ENV_NAMES`, :data:`_ENV_PREFIXES`).
    """
    env = {
        "PATH": f"{Path(config.python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "USER": "student",
        "LOGNAME": "student",
        "TMPDIR": tmp,
        # The stand-ins, then the grader's own dlcourse, ahead of anything an
        # install layout (editable finder, .pth file, a course folder's copy)
        # would otherwise pick: kernel, runner and the trusted process all
        # import the same package.
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
        "AUTOGRADER_OUTPUT_LIMIT": str(config.limits.output_per_cell),
    }
    env.update(passed_environ(environ))
    data = [d for d in config.data_dirs if os.path.isdir(d)]
    if data:
        env["DLCOURSE_DATA"] = os.path.realpath(data[0])
    env.update(config.env)
    return env


def passed_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables of ``environ`` that sandboxed code sees unchanged: the
    settings of numerics (BLAS and OpenMP threads), plotting and locale."""
    return {
        name: value
        for name, value in environ.items()
        if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)
    }


class _Mounts:
    """bwrap mount arguments, creating each parent folder once."""

    def __init__(self, made: Sequence[str]):
        self.made = set(made)
        self.args: list[str] = []

    def parents(self, path: str) -> list[str]:
        out = []
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p not in self.made:
                self.made.add(p)
                out += ["--perms", "0755", "--dir", p]
        return out

    def ro(self, src: str, dest: str | None = None) -> list[str]:
        dest = dest or src
        if not os.path.exists(src):
            return []
        self.made.add(dest)
        return [*self.parents(dest), "--ro-bind", src, dest]


def _namespace_args(bwrap: str, as_root: bool) -> list[str]:
    args = [
        bwrap,
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
        # Mounts are made as root; the limits script then becomes the leased
        # unprivileged user (and loses these two capabilities).
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    return [*args, "--proc", "/proc", "--dev", "/dev"]


def _system_args(mounts: _Mounts, config: SandboxConfig) -> list[str]:
    """The system, the Python installation, dlcourse and the data, read-only."""
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
            mounts.made.add(path)
        else:
            args += mounts.ro(path)
    for path in _ETC_FILES:
        args += mounts.ro(path)
    prefixes, packages = python_paths(config.python)
    for path in prefixes:
        args += mounts.ro(path)
    if packages:
        args += mounts.ro(packages[0], f"{SANDBOX_SUPPORT}/lib/dlcourse")
    for path in (*config.data_dirs, *config.ro_paths):
        if os.path.exists(path):
            _check_exposable(path)
            args += mounts.ro(os.path.realpath(path))
    return args


def _support_args(mounts: _Mounts, support: str, fontlists: Sequence[str]):
    """The stand-ins, the two standalone scripts and IPython's startup file."""
    args = mounts.ro(f"{support}/stubs", f"{SANDBOX_SUPPORT}/stubs")
    args += mounts.ro(str(LIMITS_SCRIPT), SANDBOX_LIMITS_SCRIPT)
    args += mounts.ro(str(RUNNER_SCRIPT), SANDBOX_RUNNER_SCRIPT)
    # IPython's startup file caps each cell's output inside the kernel.
    for folder in ("/tmp/ipython", "/tmp/ipython/profile_default", SANDBOX_STARTUP):
        args += ["--perms", "01777", "--dir", folder]
    args += [
        "--ro-bind",
        f"{support}/ipython/profile_default/startup/{STARTUP_FILE}",
        f"{SANDBOX_STARTUP}/{STARTUP_FILE}",
    ]
    if fontlists:
        # A prebuilt font list spares every kernel matplotlib's font scan.
        args += ["--perms", "01777", "--dir", "/tmp/matplotlib"]
        for path in fontlists:
            args += ["--ro-bind", path, f"/tmp/matplotlib/{Path(path).name}"]
    return args


def _workdir_args(mounts: _Mounts, workdir: str, limits: SandboxLimits):
    """The submission folder: a writable tmpfs with read-only copies inside."""
    args = mounts.parents(workdir)
    args += ["--perms", "01777", "--size", str(limits.scratch_size)]
    args += ["--tmpfs", workdir]
    mounts.made.add(workdir)
    for entry in sorted(os.scandir(workdir), key=lambda e: e.name)[:1000]:
        if entry.is_symlink() or entry.name.endswith(".ipynb"):
            continue
        if entry.name in (".ipynb_checkpoints", "__pycache__"):
            continue
        args += ["--ro-bind", entry.path, entry.path]
    return args


def bwrap_argv(
    config: SandboxConfig,
    *,
    bwrap: str,
    workdir: str,
    inner: Sequence[str],
    support: str,
    runtime_dir: str | None = None,
    as_root: bool = False,
    fontlists: Sequence[str] = (),
) -> list[str]:
    """The ``bwrap`` command line that runs ``inner`` in the sandbox.

    Args:
        config: the sandbox configuration (limits, data, stand-ins, env).
        bwrap: the bubblewrap executable.
        workdir: the submission's folder (real path): the process starts there.
        inner: the command to run inside (the limits script, then the program).
        support: host folder with the stand-in packages and IPython's startup
            file (:func:`autograder.sandbox.support.support_dir`).
        runtime_dir: a kernel's private socket folder, bound read-write.
        as_root: the grader runs as root (mounts as root, then a leased user).
        fontlists: matplotlib font caches to show read-only.
    """
    mounts = _Mounts(["/", "/proc", "/dev", "/tmp"])
    args = _namespace_args(bwrap, as_root)
    # The private /tmp comes first: the Python environment, the data or the
    # scratch folder may live under the host's /tmp, and bwrap applies mounts
    # in order, so those binds must land on top of it, not under it.
    args += ["--perms", "01777", "--size", str(config.limits.tmp_size)]
    args += ["--tmpfs", "/tmp"]
    args += _system_args(mounts, config)
    args += _support_args(mounts, support, fontlists)
    args += _workdir_args(mounts, workdir, config.limits)
    if runtime_dir:
        args += [*mounts.parents(runtime_dir), "--bind", runtime_dir, runtime_dir]
    args += ["--chdir", workdir, "--clearenv"]
    env = inner_env(config, workdir=workdir, support=SANDBOX_SUPPORT, tmp="/tmp")
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return [*args, "--", *inner]
