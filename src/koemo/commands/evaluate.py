"""`koemo evaluate --run RUN_DIR --workdir W [--split test]`: score a run or checkpoint."""
from __future__ import annotations

import argparse

from koemo.commands import SettingChoices


def register(subparsers) -> None:
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
                        help="config name or path (default: the run's own config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (of --config, else of the run's "
                             "config.yaml); a setting the checkpoint cannot honour is refused")
    parser.add_argument("--out", default=None,
                        help="directory for <split>_metrics.json and <split>_predictions.parquet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import sys

    from koemo.config.load import load_config
    from koemo.modeling.evaluate import evaluate

    cfg = load_config(args.config, args.overrides) if args.config else None
    overrides = [] if args.config else args.overrides
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate(args.run, args.workdir, cfg, split=args.split, overrides=overrides,
                       predictions_out=out / f"{args.split}_predictions.parquet" if out else None)
    text = json.dumps(metrics, indent=2, ensure_ascii=False)
    if out is not None:
        (out / f"{args.split}_metrics.json").write_text(text, encoding="utf-8")
    print(text)
    for note in metrics.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    return 0
