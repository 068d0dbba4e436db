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

from .errors import AutograderError

__all__ = ["main"]


def _cmd_release(args) -> None:
    from .release import release

    release(args.assignments, check=args.check)


def _cmd_validate(args) -> None:
    from .validate import validate_sources

    validate_sources(args.assignments)


def _cmd_expected(args) -> None:
    from .expected import write_expected

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograder",
        description="The instructor's grading pipeline around nbgrader.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

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

    p = commands.add_parser(
        "validate", help="execute source notebooks; fail unless every test passes"
    )
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=_cmd_validate)

    p = commands.add_parser(
        "expected", help="recompute the visible checks' expected outputs"
    )
    p.add_argument("assignments", nargs="*")
    p.add_argument("--check", action="store_true", help="compare only")
    p.set_defaults(run=_cmd_expected)

    p = commands.add_parser(
        "clean", help="strip outputs and volatile metadata from notebooks"
    )
    p.add_argument("paths", nargs="+")
    p.add_argument("--check", action="store_true", help="report only")
    p.set_defaults(run=_cmd_clean)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except AutograderError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
