"""What the zygote tests' children run (imported by the zygote, by name)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

#: Changed by one child; a later child must still see the zygote's value.
STATE = {"touched_by": None}


def record(scratch: Path) -> None:
    """Say who this child is, and leave a mark in the module's state."""
    previous = STATE["touched_by"]
    STATE["touched_by"] = str(scratch)
    (scratch / "seen.txt").write_text(
        f"{os.getpid()} {os.getsid(0)} {os.getppid()} {previous}"
    )
    print("graded", scratch.name)


def crash(scratch: Path) -> None:
    raise ValueError(f"broken on purpose in {scratch.name}")


def hang_with_a_grandchild(scratch: Path) -> None:
    child = subprocess.Popen(["sleep", "600"])
    (scratch / "grandchild").write_text(str(child.pid))
    time.sleep(600)
