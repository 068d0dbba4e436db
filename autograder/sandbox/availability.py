"""Can bubblewrap run here? Decide once, and say so loudly when it cannot.

A trivial sandboxed command is run once per process (the probe); where it
fails, student code runs unsandboxed with the same resource limits, a banner on
stderr and an :class:`~.config.UnsandboxedWarning`, or not at all with
``require_sandbox``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import cache

from ..errors import SandboxUnavailable
from .config import SandboxConfig, UnsandboxedWarning

__all__ = ["bwrap_path", "resolve_sandboxed", "sandbox_status"]

log = logging.getLogger(__name__)


def bwrap_path(config: SandboxConfig) -> str | None:
    found = shutil.which(config.bwrap)
    return found


@cache
def _probe(bwrap: str, python: str, as_root: bool) -> str | None:
    """Run a trivial sandboxed command; return why it failed, or None."""
    from .process import Launch

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
    bwrap = bwrap_path(config)
    if bwrap is None:
        return False, f"bubblewrap not found ({config.bwrap!r} is not an executable)"
    problem = _probe(bwrap, config.python, os.geteuid() == 0)
    if problem:
        return False, problem
    return True, f"sandboxed with {bwrap}"


_warned: set[str] = set()


def resolve_sandboxed(config: SandboxConfig) -> bool:
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
