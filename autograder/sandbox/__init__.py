"""Run student code in a bubblewrap sandbox with resource limits.

Every process that runs student code during grading (the notebook's kernel and
the process that computes outputs for verified scoring) is started through
:class:`~.process.Launch`, which wraps its command in ``bwrap`` so that it sees:

- read-only: the system (``/usr`` and the ``/lib*``, ``/bin`` links), a few
  files of ``/etc``, the Python installation and virtual environment, the
  installed ``dlcourse`` package folder (not the repository it lives in), the
  dataset folders, and a stand-in for the grader's ``autograder.hidden``
  package (hidden tests run outside the sandbox, see :mod:`autograder.verify`);
- read-write: a size-limited tmpfs at ``/tmp`` and another at the submission's
  folder (its path unchanged), holding read-only copies of the submission's
  files (notebooks excluded: the autograded copy carries the hidden tests);
- for a kernel, one private folder with its connection file and IPC sockets:
  there is no network at all (own network namespace), so the grader talks to
  the kernel through Unix sockets;
- nothing else: no repository, no ``source/``, no gradebook, no other
  submission, no home folder, no host process (own PID namespace), and none of
  the grader's environment variables.

Limits (:class:`~.config.SandboxLimits`) are set inside the sandbox by
``files/limits.py``: memory (address space), processes, file size, open
files, CPU time. When the grader runs as root the student's code runs as an
unprivileged user id leased for the sandbox's lifetime, because Linux does not
enforce the process limit for root. A watchdog thread enforces the wall-clock
limit of a notebook and the size of the kernel's socket folder;
:class:`~.kernel.SandboxExecute` (nbgrader's executor) caps the output a cell may send.

Where bubblewrap cannot run (no user namespaces, macOS), commands run
unsandboxed with the same resource limits, a loud warning and an
``unsandboxed`` event in the scratch folder's event log; ``require_sandbox``
turns that into :class:`~.config.SandboxUnavailable`.

One module per concern:

- :mod:`.config`        limits, options and the event log (plain data);
- :mod:`.availability`  can bubblewrap run here (probed once), and the warning
  when it cannot;
- :mod:`.command`       the ``bwrap`` command line and the environment inside
  (pure functions);
- :mod:`.support`       the folder of stand-ins and startup files every sandbox
  sees;
- :mod:`.process`       one sandboxed process tree: start, watchdog, kill, clean up;
- :mod:`.kernel`        Jupyter kernels in the sandbox, and nbgrader's executor;
- ``files/``            the programs that run inside, as real ``.py`` files.
"""
