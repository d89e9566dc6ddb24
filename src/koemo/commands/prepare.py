"""`koemo prepare --data ROOT --workdir W`: corpus -> utterance table, report and feature store."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers, add_config_arguments


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="read a KEMDy19 or KEMDy20 corpus into a workdir (table, report, features)",
        description="Pair every annotation row with its wav and transcript by Segment ID, check "
                    "them, apply the label policy and the split protocols, write "
                    "W/utterances.parquet and W/prepare_report.{json,md}, then build the feature "
                    "store. A second run with unchanged inputs reuses the table.")
    parser.add_argument("--data", required=True, action="append",
                        help="corpus root holding annotation/ and wav/; give KEMDy19 and KEMDy20 "
                             "(--data A --data B) for one workdir holding both, with the "
                             "cross-corpus protocols (docs/kemdy19.md)")
    parser.add_argument("--corpus", choices=("auto", "kemdy19", "kemdy20"), default=None,
                        help="which corpus --data holds (default: data.corpus, auto = "
                             "recognised from the annotation file names)")
    parser.add_argument("--workdir", required=True, help="output directory")
    add_config_arguments(parser)
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad input file instead of reporting and skipping it")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="go on without an annotation file or session folder that cannot be "
                             "read, or an annotation file whose name koemo does not recognise "
                             "(by default either stops prepare); the report lists what was skipped")
    parser.add_argument("--no-features", action="store_true",
                        help="write the table and report only; skip the feature store")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run, interrupt_note="nothing half-written is left: "
                                                "the same command goes on from what finished")


def run(args: argparse.Namespace) -> int:
    from koemo.config.load import load_config
    from koemo.config.workdir import require_writable
    from koemo.dataset.combine import prepare_corpora
    from koemo.dataset.prepare import prepare

    corpus = [f"data.corpus={args.corpus}"] if args.corpus else []
    cfg = load_config(args.config, args.overrides + corpus)
    require_writable(args.workdir, "`koemo prepare` writes the table, features and report "
                                   "there: give a writable --workdir")
    run_prepare = prepare_corpora if len(args.data) > 1 else prepare
    result = run_prepare(args.data if len(args.data) > 1 else args.data[0], args.workdir, cfg,
                         strict=args.strict, progress=not args.no_progress,
                         features=not args.no_features, skip_unreadable=args.skip_unreadable)
    if result.feature_store_path is not None:
        print(f"  feature store: {result.feature_store_path}")
    return 0
