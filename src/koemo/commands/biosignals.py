"""`koemo biosignals`: do wrist TEMP/EDA carry emotion? The original's step 1-3 (DTW k-means of
per-utterance series vs emotion labels, plus a direct level test), written to WORKDIR/biosignals/.
A KEMDy20 copy without the EDA/TEMP/IBI folders (audio + text only) is an error naming them."""


def register(sub):
    parser = sub.add_parser("biosignals", help="bio-signal coverage and DTW k-means analysis",
                            description=__doc__)
    parser.add_argument("--data", required=True,
                        help="KEMDy20 root (folder with annotation/, EDA/, TEMP/, IBI/)")
    parser.add_argument("--workdir", required=True, help="results go to WORKDIR/biosignals/")
    parser.add_argument("--signals", nargs="+", default=["TEMP", "EDA"],
                        help="signals to analyse (default: TEMP EDA)")
    parser.add_argument("--k", type=int, default=5, help="clusters for the emotion test (default 5)")
    parser.add_argument("--ks", type=int, nargs="+", default=list(range(2, 11)),
                        help="k values for the silhouette sweep (default 2..10)")
    # No numbers here: the defaults live in koemo.biosignals (imported only in run, pandas is slow).
    parser.add_argument("--max-series", type=int,
                        help="utterances clustered per signal, stratified by label "
                             "(default: koemo.biosignals.DEFAULT_MAX_SERIES; DTW is O(n^2))")
    parser.add_argument("--series-length", type=int,
                        help="points each series is resampled to "
                             "(default: koemo.biosignals.DEFAULT_SERIES_LENGTH)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from koemo.biosignals import analyse, write_report
    from koemo.modeling.runs import save_run_record

    sizes = {name: value for name, value in (("max_series", args.max_series),
                                             ("series_length", args.series_length))
             if value is not None}
    report = analyse(args.data, signals=args.signals, ks=args.ks, k=args.k, seed=args.seed,
                     alpha=args.alpha, **sizes)
    out = Path(args.workdir) / "biosignals"
    write_report(report, out)
    save_run_record(out, {"biosignals": report.settings}, seed=args.seed)
    for line in report.conclusions:
        print(line)
    print(f"tables, report.md and figures written to {out}")
    return 0
