"""Set environment variables for the length of a block."""

from __future__ import annotations

import contextlib
import os

__all__ = ["scoped_environ"]


@contextlib.contextmanager
def scoped_environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
