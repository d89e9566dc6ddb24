"""`koemo reproduce`: run notebooks 1-1 .. 5-3 in order and write the paper/ tables."""
from __future__ import annotations

import argparse

from pathlib import Path

from koemo.commands import Subparsers, add_config_arguments


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("reproduce", help="run the numbered notebooks in order, write paper/",
                            description=__doc__)
    add_config_arguments(parser, default="paper")
    parser.add_argument("--data", help="KEMDy20 root (folder with annotation/ and wav/)")
    parser.add_argument("--kemdy19", help="KEMDy19 root, for the cross-corpus study (notebook "
                                          "5-3); without it the study is left out, said so")
    parser.add_argument("--synthetic", action="store_true",
                        help="use the bundled synthetic KEMDy20-format corpus instead of --data")
    parser.add_argument("--workdir", default="data/work",
                        help="prepared data, caches and runs (relative: from the current folder)")
    parser.add_argument("--out", default="paper",
                        help="where tables and figures go (relative: from the current folder)")
    parser.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 1-1 2-1")
    parser.set_defaults(func=run, interrupt_note="the work of finished steps is kept: "
                                                "the same command resumes the run")


def run(args: argparse.Namespace) -> int:
    from koemo.errors import KoemoInputError
    from koemo.reporting.reproduce import reproduce

    if not args.synthetic and not args.data:
        raise KoemoInputError("give --data KEMDy20_ROOT, or --synthetic for the bundled corpus")
    # A command line names paths from the current folder (notebooks keep their own rule).
    workdir, out = (Path(p).expanduser().resolve() for p in (args.workdir, args.out))
    data, kemdy19 = (Path(p).expanduser().resolve() if p else None
                     for p in (args.data, args.kemdy19))
    config = str(Path(args.config).resolve()) if Path(args.config).is_file() else args.config
    reproduce(config, workdir, out, data_root=data, synthetic=args.synthetic,
              overrides=args.overrides, only=args.only, kemdy19_root=kemdy19)
    return 0
