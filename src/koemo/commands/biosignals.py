"""`koemo biosignals`: do wrist TEMP/EDA carry emotion? The original's step 1-3 (DTW k-means of
per-utterance series vs emotion labels, plus a direct level test), written to WORKDIR/biosignals/.
A KEMDy20 copy without the EDA/TEMP/IBI folders (audio + text only) is an error naming them.
An option not given takes the default of the `biosignals` setting of its name (docs/configuration.md)."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("biosignals", help="bio-signal coverage and DTW k-means analysis",
                            description=__doc__)
    parser.add_argument("--data", required=True,
                        help="KEMDy20 root (folder with annotation/, EDA/, TEMP/, IBI/)")
    parser.add_argument("--workdir", required=True, help="results go to WORKDIR/biosignals/")
    # No defaults here: an option not given takes the schema's `biosignals` setting of the same
    # name (docs/configuration.md), read only in run (pydantic and pandas are slow to import).
    parser.add_argument("--signals", nargs="+", help="signals to analyse (default: biosignals.signals)")
    parser.add_argument("--k", type=int, help="clusters for the emotion test (default: biosignals.k)")
    parser.add_argument("--ks", type=int, nargs="+",
                        help="k values for the silhouette sweep (default: biosignals.ks)")
    parser.add_argument("--max-series", type=int,
                        help="utterances clustered per signal, stratified by label "
                             "(default: biosignals.max_series; DTW is O(n^2))")
    parser.add_argument("--series-length", type=int,
                        help="points each series is resampled to (default: biosignals.series_length)")
    parser.add_argument("--alpha", type=float, help="significance level (default: biosignals.alpha)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from koemo.biosignals import analyse, write_report
    from koemo.config.load import parse_section
    from koemo.config.schema import Biosignals
    from koemo.modeling.runs import save_run_record

    given = {name: getattr(args, name) for name in ("signals", "k", "ks", "max_series",
                                                    "series_length", "alpha")}
    settings = parse_section(Biosignals, {k: v for k, v in given.items() if v is not None},
                             "biosignals")
    report = analyse(args.data, settings, seed=args.seed)
    out = Path(args.workdir) / "biosignals"
    write_report(report, out)
    save_run_record(out, {"biosignals": report.settings}, seed=args.seed)
    for line in report.conclusions:
        print(line)
    print(f"tables, report.md and figures written to {out}")
    return 0
