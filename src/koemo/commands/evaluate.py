"""`koemo evaluate --run RUN_DIR --workdir W [--split test]`: score a run or checkpoint."""
from __future__ import annotations

import argparse

from koemo.commands import SettingChoices, Subparsers


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a training run (or a checkpoint directory) on a split",
        description="Load a run's checkpoint (last or best, as the run's config says; or the "
                    "checkpoint directory given) and score one split of a prepared workdir with "
                    "whole-set metrics. Prints JSON; --out also writes it with the predictions.")
    parser.add_argument("--run", required=True, help="run directory or checkpoint directory")
    parser.add_argument("--workdir", required=True, help="workdir written by `koemo prepare`")
    parser.add_argument("--split", default="test", metavar="SPLIT",
                        choices=SettingChoices("SPLITS", "koemo.dataset.splits"),
                        help="%(choices)s (default: test)")
    parser.add_argument("--config", default=None,
                        help="config name or path (default: the run's own config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (of --config, else of the run's "
                             "own config); a setting the checkpoint cannot honour is refused")
    parser.add_argument("--out", default=None,
                        help="directory for the split's metrics (JSON) and per-row predictions "
                             "(parquet), named as a run's test files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import sys

    from koemo.config.load import load_config
    from koemo.modeling.evaluate import evaluate
    from koemo.modeling.runs import scores_files

    cfg = load_config(args.config, args.overrides) if args.config else None
    overrides = [] if args.config else args.overrides
    files = None
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        files = scores_files(args.out, args.split)
    metrics = evaluate(args.run, args.workdir, cfg, split=args.split, overrides=overrides,
                       predictions_out=files[1] if files else None)
    text = json.dumps(metrics, indent=2, ensure_ascii=False)
    if files is not None:
        files[0].write_text(text, encoding="utf-8")
    print(text)
    for note in metrics.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    return 0
