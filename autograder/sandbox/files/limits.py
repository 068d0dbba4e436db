"""Apply resource limits and drop privileges, then run a command in this process.

Standalone (standard library only): :mod:`autograder.sandbox.command` binds this file
read-only into every sandbox and runs it twice around ``bwrap``::

    python limits.py --ignore-sigint -- bwrap ... -- \\
        python limits.py --as BYTES --nproc N ... [--uid U --gid G] -- CMD

Outside the sandbox it only makes ``bwrap`` ignore SIGINT: Jupyter interrupts a
kernel by signalling its whole process group, and ``bwrap`` would otherwise die
of it and take the kernel along. Inside, it sets the limits, restores SIGINT, and
(when the grader runs as root) becomes an unprivileged user so that the process
limit applies: Linux does not enforce ``RLIMIT_NPROC`` for root.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import sys

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1

_LIMITS = {
    "as": resource.RLIMIT_AS,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "cpu": resource.RLIMIT_CPU,
    "core": resource.RLIMIT_CORE,
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sandbox_limits")
    parser.add_argument("--ignore-sigint", action="store_true")
    parser.add_argument("--die-with-parent", action="store_true")
    for name in _LIMITS:
        parser.add_argument(f"--{name}", type=int, default=None)
    parser.add_argument("--uid", type=int, default=None)
    parser.add_argument("--gid", type=int, default=None)
    parser.add_argument("--umask", type=lambda s: int(s, 8), default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    return args


def _set_limit(name: str, value: int) -> None:
    which = _LIMITS[name]
    if name == "cpu":
        # SIGXCPU at the soft limit ends the process; the hard limit is a backstop.
        resource.setrlimit(which, (value, value + 5))
        return
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(which, (value, value))


def _no_new_privileges() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: nothing to do


def _die_with_parent() -> None:
    """SIGKILL this process (and what it execs) when its parent dies, so a
    grader that is killed takes its kernels and runners along."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.die_with_parent:
        _die_with_parent()
    for name in _LIMITS:
        value = getattr(args, name)
        if value is not None:
            _set_limit(name, value)
    if args.gid is not None:
        os.setgroups([])
        os.setgid(args.gid)
    if args.uid is not None:
        os.setuid(args.uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            sys.exit("sandbox_limits: could not drop root privileges")
    if args.umask is not None:
        os.umask(args.umask)
    _no_new_privileges()
    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvp(args.command[0], args.command)
    except OSError as exc:
        sys.exit(f"sandbox_limits: cannot run {args.command[0]}: {exc}")


if __name__ == "__main__":
    main()
