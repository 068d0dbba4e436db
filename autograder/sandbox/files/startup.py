"""Sandbox: cap what one cell may print.

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
