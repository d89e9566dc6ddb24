"""`koemo prepare --data ROOT --workdir W`: corpus -> utterance table, report and feature store."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="read a KEMDy20-format corpus into a workdir (table, report, features)",
        description="Pair every annotation row with its wav and transcript by Segment ID, check "
                    "them, apply the label policy and the split protocols, write "
                    "W/utterances.parquet and W/prepare_report.{json,md}, then build the feature "
                    "store. A second run with unchanged inputs reuses the table.")
    parser.add_argument("--data", required=True, help="corpus root holding annotation/ and wav/")
    parser.add_argument("--workdir", required=True, help="output directory")
    parser.add_argument("--config", default="paper", help="config name or path (default: paper)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. data.label_policy=seven")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad input file instead of reporting and skipping it")
    parser.add_argument("--no-features", action="store_true",
                        help="write the table and report only; skip the feature store")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from koemo.config import ConfigError, load_config
    from koemo.dataset.prepare import prepare
    from koemo.errors import KoemoInputError

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:  # a wrong --config/--set is user input: one line, no traceback
        raise KoemoInputError(str(err)) from err
    result = prepare(args.data, args.workdir, cfg, strict=args.strict,
                     progress=not args.no_progress, features=not args.no_features)
    if result.feature_store_path is not None:
        print(f"  feature store: {result.feature_store_path}")
    return 0
