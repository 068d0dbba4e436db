"""The support folder every sandbox sees at ``/opt/autograder-sandbox``.

Created once per process: stand-in packages for the grader's hidden tests
(``files/stub.py``: inside the notebook they only say that hidden tests run
outside), IPython's startup file that caps a cell's output (``files/startup.py``)
and, for unsandboxed runs, a link to the grader's own ``dlcourse``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

from .command import STARTUP_FILE, python_paths

__all__ = ["course_package", "matplotlib_fontlists", "support_dir"]

_FILES = Path(__file__).resolve().parent / "files"
_STUB = _FILES / "stub.py"
_STARTUP = _FILES / "startup.py"


@cache
def support_dir(stub_modules: tuple[str, ...]) -> str:
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
                shutil.copyfile(_STUB, init)
            elif not init.exists():
                init.write_text('"""Stand-in package (sandbox)."""\n', encoding="utf-8")
    owner = os.getpid()
    atexit.register(
        lambda: os.getpid() == owner and shutil.rmtree(root, ignore_errors=True)
    )
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copyfile(_STARTUP, startup / STARTUP_FILE)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    # Unsandboxed runs import the grader's own dlcourse through this link (the
    # sandbox binds the same folder at SANDBOX_SUPPORT/lib/dlcourse instead).
    (root / "lib").mkdir(mode=0o755)
    package = course_package(sys.executable)
    if package:
        os.symlink(package, root / "lib" / "dlcourse")
    return str(root)


def course_package(python: str) -> str | None:
    """The ``dlcourse`` folder that ``python`` (the grader's) imports."""
    packages = python_paths(python)[1]
    return packages[0] if packages else None


@cache
def matplotlib_fontlists() -> tuple[str, ...]:
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
