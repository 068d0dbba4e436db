"""The trusted side of the runner: its channel, session and function proxies.

:class:`_Channel` starts the runner (``sandbox/files/runner.py``) in the
sandbox and exchanges frames with it under deadlines. :class:`Session` loads
the student's cells into it, restarts it after a crash (at most
``MAX_RESTARTS`` times) and calls functions there. :class:`RemoteFunction`
stands for a student's function in the hidden test's namespace: a call sends
the arguments, the runner computes, only data comes back, and in-place changes
to the arguments are mirrored.

The hidden-test patch contract: a hidden test may replace an earlier exercise
in the namespace by the reference's version (``patched_globals``). A proxy
recognises such a value (it is the reference's own object, or comes from the
reference namespace, whose module name starts with ``reference:``, see
:func:`autograder.source.reference_namespace`), and the runner receives the
reference code of just those functions (:func:`autograder.source.reference_code`),
never of the function being graded or of a later one. Anything else in the
namespace makes the cell unverifiable.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..grading import progress
from ..grading.outcomes import ENVIRONMENT_ERRORS
from ..sandbox.availability import resolve_sandboxed
from ..sandbox.command import SANDBOX_RUNNER_SCRIPT
from ..sandbox.config import SandboxConfig
from ..sandbox.files import runner as protocol
from ..sandbox.process import Launch
from ..source import REFERENCE_MODULE_PREFIX, SourceNotebook, reference_code
from .verdicts import (
    MAX_REPLY_BYTES,
    MAX_RESTARTS,
    RunnerFailure,
    StudentCodeError,
    Unverifiable,
)

__all__ = ["RemoteFunction", "Session"]


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


class Session:
    """The runner of one submission and the state of the verification."""

    def __init__(
        self,
        source: SourceNotebook,
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
        progress.mark(progress.RUNNER_LOADED)
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
                "reference": reference_code(self.source, patch, self.forbidden),
                "timeout": self.config.limits.cell_timeout,
            }
        except protocol.UnsupportedValue as exc:
            raise Unverifiable(f"a hidden input cannot be sent: {exc}") from None
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
        self, name: str, session: Session, namespace: dict, reference: Mapping
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
            ).startswith(REFERENCE_MODULE_PREFIX)
            if key in self._session.source.defs and from_reference:
                patch.append(key)
            else:
                raise Unverifiable(
                    f"the hidden test replaces {key!r} by something other than "
                    "the reference"
                )
        return self._session.call(self.__name__, args, kwargs, sorted(patch))

    def _name_is(self, key: str) -> bool:
        return self.__name__ == key

    def __repr__(self) -> str:
        return f"<student function {self.__name__} (runs in the sandbox)>"
