"""Command line: ``python -m autograder COMMAND`` (also the ``autograder`` script).

Thin by design: each command parses its arguments and calls one module; errors
of type :class:`autograder.errors.AutograderError` become a one-line message and
their exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import defaults
from .errors import AutograderError

# The formats of ``export``, default first (kept here so --help needs no imports
# beyond the standard library; tests check it equals autograder.export.FORMATS).
EXPORT_FORMATS = ("long", "wide", "canvas", "moodle")

__all__ = ["main"]


def _cmd_release(args) -> None:
    from .authoring.release import release

    release(args.assignments, check=args.check)


def _cmd_validate(args) -> None:
    from .authoring.validate import validate_sources

    validate_sources(args.assignments)


def _cmd_expected(args) -> None:
    from .authoring.expected import write_expected

    for path in write_expected(args.assignments, check=args.check):
        print(f"{'checked' if args.check else 'wrote'} {path}")


def _cmd_clean(args) -> None:
    from .notebooks import clean_files, hygiene_problems

    if args.check:
        problems = [p for path in args.paths for p in hygiene_problems(Path(path))]
        if problems:
            raise AutograderError("unclean notebooks:\n  " + "\n  ".join(problems))
        print(f"{len(args.paths)} notebook(s) clean")
        return
    for path in clean_files(args.paths):
        print(f"cleaned {path}")


def _course(args) -> Path:
    """``--course``, else the working folder when it is a course (it holds
    ``source/``, as nbgrader expects), else this repository."""
    from . import REPO_ROOT

    if args.course:
        return Path(args.course).resolve()
    here = Path.cwd()
    return here.resolve() if (here / "source").is_dir() else REPO_ROOT


def _cmd_grade(args) -> None:
    from .errors import GradingIncomplete
    from .grading.run import grade_course

    run = grade_course(
        _course(args),
        args.assignments,
        students=args.student,
        workers=args.workers,
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        fork_kernels=not args.no_fork,
        sandbox=args.sandbox,
        require_sandbox=args.require_sandbox,
        sandbox_limits=dict(args.limit),
        progress=not args.no_progress,
        cluster=args.scheduler or args.dask_local,
        seed=args.seed,
    )
    if not run.complete:
        failed = [f"{r.student}/{r.assignment}" for r in run.results if not r.definite]
        failed += run.failures
        raise GradingIncomplete(
            f"{len(failed)} submission(s) not fully graded: {'; '.join(failed)}"
        )


def _cmd_feedback(args) -> None:
    from .feedback import generate_feedback

    generate_feedback(_course(args), args.assignments, students=args.student)


def _cmd_export(args) -> None:
    from .export import export_csv

    text = export_csv(
        _course(args), args.assignments, output=args.output, format=args.format
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.output}")


def _cmd_report(args) -> None:
    from .report import write_report

    write_report(_course(args), Path(args.out) if args.out else None, args.assignments)


def _cmd_pack(args) -> None:
    from .authoring.pack import build_pack

    build_pack(Path(args.out) if args.out else None)


def _cmd_check(args) -> None:
    from .errors import GradingIncomplete
    from .selfcheck import check_notebook

    result = check_notebook(
        Path(args.notebook),
        assignment=args.assignment,
        course_root=_course(args),
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        verbose=args.verbose,
    )
    if not result.definite:
        raise GradingIncomplete(f"the notebook could not be graded: {result.reason}")


def _cmd_demo(args) -> None:
    from .authoring.demo import build_demo

    build_demo(
        Path(args.dir) if args.dir else None,
        args.assignments,
        workers=args.workers,
    )


def _cmd_bench(args) -> None:
    from .authoring.bench import run_bench

    run_bench(
        n_students=args.students,
        assignments=args.assignments,
        course_root=_course(args),
        workers=args.workers,
        keep=args.keep,
        profile=args.profile,
    )


def _add_course(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--course",
        metavar="DIR",
        help="course root holding source/, release/, submitted/ (default: the "
        "working folder if it holds source/, else this repository)",
    )


def _add_timeouts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cell-timeout",
        type=int,
        metavar="S",
        help="seconds a cell may run before it is interrupted (default: the "
        "course's Execute.timeout, else nbgrader's "
        f"{defaults.NBGRADER_CELL_TIMEOUT})",
    )
    p.add_argument(
        "--notebook-timeout",
        type=float,
        metavar="S",
        help="wall-clock seconds one notebook may take (default: "
        f"{defaults.NOTEBOOK_TIMEOUT:g})",
    )


_UNITS = {"K": defaults.KiB, "M": defaults.MiB, "G": defaults.GiB}


def _limit_defaults() -> str:
    """``name=default`` for every sandbox limit ``--limit`` may set."""

    def shown(value: int) -> str:
        for suffix, unit in (("G", defaults.GiB), ("M", defaults.MiB)):
            if value >= unit and value % unit == 0:
                return f"{value // unit}{suffix}"
        return str(value)

    return ", ".join(
        f"{name}={shown(value)}"
        for name, value in defaults.SANDBOX_LIMITS.items()
        if name not in defaults.TIMEOUT_LIMITS
    )


def _limit(text: str) -> tuple[str, int]:
    """Parse ``NAME=VALUE`` (VALUE an integer, optionally with K, M or G)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    scale = _UNITS.get(value[-1].upper(), 1)
    digits = value[:-1] if scale != 1 else value
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(
            f"{name}: expected a whole number (optionally with K, M or G), "
            f"got {value!r}"
        )
    return name.strip(), int(digits) * scale


def _seed(text: str) -> int:
    """A run seed: a non-negative integer (``--seed``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer (a run_seed), got {text!r}"
        )
    return value


def _add_release(commands) -> None:
    p = commands.add_parser(
        "release", help="regenerate release/ from source/ with nbgrader"
    )
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument(
        "--check",
        action="store_true",
        help="do not write; fail if the committed release/ is out of date",
    )
    p.set_defaults(run=_cmd_release)


def _add_validate(commands) -> None:
    p = commands.add_parser(
        "validate", help="execute source notebooks; fail unless every test passes"
    )
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=_cmd_validate)


def _add_expected(commands) -> None:
    p = commands.add_parser(
        "expected", help="recompute the visible checks' expected outputs"
    )
    p.add_argument("assignments", nargs="*")
    p.add_argument("--check", action="store_true", help="compare only")
    p.set_defaults(run=_cmd_expected)


def _add_clean(commands) -> None:
    p = commands.add_parser(
        "clean", help="strip outputs and volatile metadata from notebooks"
    )
    p.add_argument("paths", nargs="+")
    p.add_argument("--check", action="store_true", help="report only")
    p.set_defaults(run=_cmd_clean)


def _add_grade(commands) -> None:
    p = commands.add_parser(
        "grade", help="autograde every submission under submitted/, in parallel"
    )
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    _add_course(p)
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"default: one more than the CPUs ({defaults.workers()} here)",
    )
    p.add_argument(
        "--student", action="append", metavar="ID", help="grade only this student"
    )
    _add_timeouts(p)
    p.add_argument(
        "--no-fork",
        action="store_true",
        help="start kernels the stock way instead of forking them (slower)",
    )
    p.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=defaults.SANDBOX,
        help="run student code under bubblewrap and verify every score outside "
        "the student's process (--no-sandbox: trusted code only; default: "
        f"{'--sandbox' if defaults.SANDBOX else '--no-sandbox'})",
    )
    p.add_argument(
        "--require-sandbox",
        action=argparse.BooleanOptionalAction,
        default=defaults.REQUIRE_SANDBOX,
        help="fail instead of grading unsandboxed where bubblewrap cannot run",
    )
    p.add_argument(
        "--limit",
        metavar="NAME=VALUE",
        action="append",
        type=_limit,
        default=[],
        help="override a sandbox limit (repeatable); sizes take K, M or G. "
        f"Limits and defaults: {_limit_defaults()}",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        help="run seed of the hidden tests' inputs (default: a fresh one per "
        "assignment); an earlier run's run_seed from grading_outcomes.json "
        "reproduces its inputs",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the Dask cluster behind this scheduler (tcp://host:8786); "
        "see docs/scale.md",
    )
    where.add_argument(
        "--dask-local",
        type=int,
        metavar="N",
        help="grade on a local Dask cluster of N worker processes",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_grade)


def _add_feedback(commands) -> None:
    p = commands.add_parser(
        "feedback", help="one HTML report per student and assignment, no hidden tests"
    )
    p.add_argument("assignments", nargs="*")
    _add_course(p)
    p.add_argument("--student", action="append", metavar="ID")
    p.set_defaults(run=_cmd_feedback)


def _add_export(commands) -> None:
    p = commands.add_parser(
        "export",
        help="CSV of the gradebook: per test (default) or for Canvas or Moodle",
    )
    p.add_argument("assignments", nargs="*")
    _add_course(p)
    p.add_argument("--output", "-o", metavar="FILE", help="default: stdout")
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=EXPORT_FORMATS[0],
        help="long: one row per student and assignment, one column per test "
        "(default); wide: one row per student, one column per assignment; "
        "canvas, moodle: those platforms' gradebook import layouts",
    )
    p.set_defaults(run=_cmd_export)


def _add_pack(commands) -> None:
    p = commands.add_parser(
        "report",
        help="class report: one HTML page per assignment with score, pass-rate "
        "and outcome plots, common failing checks and flagged submissions",
    )
    p.add_argument("assignments", nargs="*")
    _add_course(p)
    p.add_argument(
        "--out", metavar="DIR", help="where to write the pages (default: COURSE/report)"
    )
    p.set_defaults(run=_cmd_report)

    p = commands.add_parser(
        "pack",
        help="build the student pack: release notebooks, the dlcourse wheel, a "
        "README (no solutions, no hidden tests)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="where to write it (default: build/student-pack)"
    )
    p.set_defaults(run=_cmd_pack)


def _add_check(commands) -> None:
    p = commands.add_parser(
        "check", help="grade one notebook file against the hidden tests (self-study)"
    )
    p.add_argument("notebook", help="path to your .ipynb")
    p.add_argument(
        "--assignment", help="assignment id, if it cannot be told from the notebook"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also list the shapes of the inputs each function's hidden tests use",
    )
    _add_course(p)
    _add_timeouts(p)
    p.set_defaults(run=_cmd_check)


def _add_demo(commands) -> None:
    p = commands.add_parser(
        "demo",
        help="build a demo class in demo/ and run release, grade, feedback, export",
    )
    p.add_argument("assignments", nargs="*")
    p.add_argument("--dir", metavar="DIR", help="where to build it (default: demo/)")
    p.add_argument("--workers", type=int, metavar="N")
    p.set_defaults(run=_cmd_demo)


def _add_bench(commands) -> None:
    p = commands.add_parser(
        "bench", help="time stock nbgrader autograde against grade on one class"
    )
    p.add_argument("assignments", nargs="*")
    _add_course(p)
    p.add_argument(
        "--students", type=int, default=20, metavar="N", help="class size (20)"
    )
    p.add_argument("--workers", type=int, metavar="N")
    p.add_argument("--keep", metavar="DIR", help="keep the two graded classes here")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print grade's time per phase, one submission against stock "
        "nbgrader, and check of each assignment",
    )
    p.set_defaults(run=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograder",
        description="The instructor's grading pipeline around nbgrader.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    _add_release(commands)
    _add_validate(commands)
    _add_expected(commands)
    _add_clean(commands)
    _add_grade(commands)
    _add_feedback(commands)
    _add_export(commands)
    _add_pack(commands)
    _add_check(commands)
    _add_demo(commands)
    _add_bench(commands)
    return parser


def skip_unused_imports() -> None:
    """Keep modules nothing here uses from being imported on the way.

    nbformat validates notebooks with jsonschema, which imports
    ``rfc3987_syntax`` (when installed, as Jupyter's ``format-nongpl`` extra
    does) only to check the ``iri`` string format; importing it builds an
    Earley parser, about 1.5 s of every command's start. No schema this
    pipeline validates uses that format, and jsonschema skips the format
    checker whose module is missing.
    """
    sys.modules.setdefault("rfc3987_syntax", None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    skip_unused_imports()
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except AutograderError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
