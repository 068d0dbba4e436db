"""Sandboxed Jupyter kernels, and nbgrader's executor that uses them.

:func:`sandbox_config_for` returns the nbgrader configuration that grades in
the sandbox: :class:`SandboxExecute` replaces nbgrader's ``Execute`` (and caps
the output a cell and a notebook may send), and every kernel starts through
:class:`SandboxKernelManager`, which wraps the kernel's command in a
:class:`~.process.Launch` and talks to it over IPC sockets in a private folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute as _Execute
from traitlets import Dict as DictTrait
from traitlets import default

from ..errors import SandboxUnavailable
from .availability import resolve_sandboxed
from .config import SandboxConfig, SandboxLimits, record_event
from .process import Launch

#: How often a client's socket retries to reach a kernel still starting (ms).
RECONNECT_MS = 10

__all__ = [
    "PromptKernelClient",
    "SandboxExecute",
    "SandboxKernelManager",
    "sandbox_config_for",
]


class PromptKernelClient(AsyncKernelClient):
    """A client whose readiness check does not idle for 0.2 s.

    jupyter_client's check (a ``kernel_info`` reply on the shell channel and
    any message on IOPub) ends by draining IOPub until it has been silent
    for 0.2 s. Once the kernel has answered on both channels, what it queued
    arrives at once and 10 ms of silence is enough; nbclient ignores IOPub
    messages that do not answer its own requests anyway. Used for forked
    kernels (:mod:`autograder.grading.fastkernels`) and sandboxed ones.
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
            sandboxed = resolve_sandboxed(config)
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
        from ..grading import progress

        progress.mark(progress.KERNEL_LAUNCH)
        await super()._async_launch_kernel(kernel_cmd, **kw)
        deadline = time.monotonic() + self.sandbox_config.limits.notebook_timeout
        self.launch.started(self.provisioner.pid, deadline=deadline)
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.stderr is not None:
            self.launch.drain(process.stderr)

    @default("client_factory")
    def _prompt_client(self):
        return PromptKernelClient

    def client(self, **kwargs):
        """A client that refuses any single kernel message above the size limit.

        Its sockets connect before the kernel has bound its own (it starts in
        the sandbox meanwhile): they retry every 10 ms, not ZeroMQ's 100 ms.
        """
        import zmq

        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, self.sandbox_config.limits.message_size)
        kc.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        return kc

    def interrupt_now(self) -> None:
        """Interrupt every process of the kernel's sandbox (synchronous)."""
        if self.launch is not None:
            self.launch.signal(signal.SIGINT)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self.launch is not None and not restart:
            record_event(
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

    def on_cell_executed(self, **kwargs):
        # nbgrader's Execute defines this hook as a method (it records errors).
        from ..grading import progress

        super().on_cell_executed(**kwargs)
        progress.record_cell_done()

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
        record_event(
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
        resolve_sandboxed(config)
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
