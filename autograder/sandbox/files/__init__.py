"""Programs that run inside the sandbox, kept as real files the linter sees.

Each is standalone (standard library, and numpy for the runner): the sandbox
binds it read-only (``limits.py`` and ``runner.py`` at
``/opt/autograder-sandbox/``, ``stub.py`` as the stand-in ``autograder.hidden``,
``startup.py`` as IPython's startup file) and runs it by path, never importing
this package. The grader imports ``runner`` only for its frame protocol.
"""
