"""`koemo summary RESULTS`: the headline figures of a `koemo reproduce --out` folder, beside the
committed ones (`--against paper/demo`, what `make demo` prints) or as paper/README.md
(`--readme`, what `make demo-refresh` writes)."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers
from pathlib import Path


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="a results folder's headline figures beside committed ones, or as "
                        "paper/README.md", description=__doc__)
    parser.add_argument("results", type=Path, help="a folder `koemo reproduce --out` wrote")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="committed results to print RESULTS beside (e.g. paper/demo)")
    parser.add_argument("--readme", type=Path, metavar="PATH",
                        help="write paper/README.md, the page on the committed demo run, here "
                             "(RESULTS: that run, paper/demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from koemo.errors import KoemoInputError
    from koemo.reporting.summary import comparison, write_paper_readme

    if not (args.against or args.readme):
        raise KoemoInputError("give --against DIR (compare) or --readme PATH (write the page)")
    if args.against:
        print(comparison(args.results, args.against), end="")
    if args.readme:
        print(f"koemo summary: wrote {write_paper_readme(args.results, args.readme)}")
    return 0
