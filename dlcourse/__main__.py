"""Command line: ``python -m dlcourse fetch-data [--dest DIR] [--force]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dlcourse import data


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand given in ``argv`` (``sys.argv[1:]`` if None).

    Returns:
        The process exit code: 0 on success, 1 on a dataset error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse", description="Course helper commands."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = commands.add_parser(
        "fetch-data",
        help="download and verify the cat/non-cat dataset",
        description="Download and verify the cat/non-cat dataset.",
    )
    data.add_fetch_arguments(fetch)
    args = parser.parse_args(argv)
    # Only one subcommand so far; argparse has already rejected any other.
    return data.run_fetch(args)


if __name__ == "__main__":
    sys.exit(main())
