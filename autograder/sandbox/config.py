"""What a sandbox is allowed: its limits and options, and the events it logs.

:class:`SandboxLimits` is frozen and validated (every limit a positive
integer); :class:`SandboxConfig` travels to nbgrader's executor and kernel
manager as a dict (:meth:`SandboxConfig.to_dict`), so both are plain data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import REPO_ROOT, defaults

__all__ = [
    "EVENT_LOG",
    "SANDBOX_SUPPORT",
    "SandboxConfig",
    "SandboxLimits",
    "UnsandboxedWarning",
    "record_event",
    "sandbox_events",
]

log = logging.getLogger(__name__)

KiB, MiB, GiB = defaults.KiB, defaults.MiB, defaults.GiB

#: Event log written in the scratch folder (one JSON object per line).
EVENT_LOG = "sandbox-events.jsonl"

#: Where the helper files appear inside the sandbox.
SANDBOX_SUPPORT = "/opt/autograder-sandbox"


class UnsandboxedWarning(UserWarning):
    """Student code is running without the sandbox."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed process tree (sizes in bytes).

    Defaults: :data:`autograder.defaults.SANDBOX_LIMITS`.
    """

    #: Address space of each process (``RLIMIT_AS``); numpy and BLAS threads
    #: reserve far more than they touch, so this is not resident memory.
    memory: int = defaults.SANDBOX_LIMITS["memory"]
    #: Processes and threads of the sandbox user (``RLIMIT_NPROC``).
    processes: int = defaults.SANDBOX_LIMITS["processes"]
    #: Largest file a process may write (``RLIMIT_FSIZE``).
    file_size: int = defaults.SANDBOX_LIMITS["file_size"]
    #: Open file descriptors per process (``RLIMIT_NOFILE``).
    open_files: int = defaults.SANDBOX_LIMITS["open_files"]
    #: CPU seconds per process (``RLIMIT_CPU``).
    cpu_seconds: int = defaults.SANDBOX_LIMITS["cpu_seconds"]
    #: Size of the writable tmpfs over the submission folder.
    scratch_size: int = defaults.SANDBOX_LIMITS["scratch_size"]
    #: Size of the writable tmpfs at ``/tmp``.
    tmp_size: int = defaults.SANDBOX_LIMITS["tmp_size"]
    #: Bytes the kernel may leave in its socket folder (checked by the watchdog).
    runtime_size: int = defaults.SANDBOX_LIMITS["runtime_size"]
    #: Output (stream text and display data) one cell may produce.
    output_per_cell: int = defaults.SANDBOX_LIMITS["output_per_cell"]
    #: Output the whole notebook may produce; later output is dropped.
    output_per_notebook: int = defaults.SANDBOX_LIMITS["output_per_notebook"]
    #: Largest single message accepted from a kernel.
    message_size: int = defaults.SANDBOX_LIMITS["message_size"]
    #: Wall-clock seconds per cell (nbgrader's ``Execute.timeout``).
    cell_timeout: int = defaults.SANDBOX_LIMITS["cell_timeout"]
    #: Wall-clock seconds per notebook (kernel start to shutdown).
    notebook_timeout: int = defaults.SANDBOX_LIMITS["notebook_timeout"]

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
    uid_base: int = defaults.SANDBOX_UID_BASE

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


def record_event(config: SandboxConfig, event: dict) -> None:
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
