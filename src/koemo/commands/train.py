"""`koemo train audio|text|multimodal --workdir W --config C`: train one stage for one seed."""
from __future__ import annotations

import argparse

from koemo.commands import SettingChoices, Subparsers, add_config_arguments
from koemo.errors import Interrupted, KoemoInputError


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one stage (audio/text regressor or the multimodal classifier)",
        description="Train one stage on a prepared workdir and score its test split. The run "
                    "goes to W/runs/<protocol>[_f<k>]/<config>/<stage>/seed<s>/ (the multimodal "
                    "stage uses the classifier kind as <stage>); an interrupted run resumes from "
                    "its last epoch. The multimodal stage needs the audio and text runs of the "
                    "same config, split and seed.")
    parser.add_argument("stage", choices=SettingChoices("STAGES"), metavar="STAGE",
                        help="%(choices)s")
    parser.add_argument("--workdir", required=True, help="workdir written by `koemo prepare`")
    add_config_arguments(parser)
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: config seed)")
    parser.add_argument("--classifier", default="attention_lstm", metavar="KIND",
                        choices=SettingChoices("FUSION_KINDS"),
                        help="multimodal classifier kind: %(choices)s (default: the paper's "
                             "attention_lstm)")
    parser.add_argument("--variant", default=None,
                        help="run of an experiment plan (as `koemo plan` writes): faithful, "
                             "corrected, <stage>_layers=<n> or audio<a>/text<t> "
                             "(default: the config as it is)")
    parser.add_argument("--split", default=None,
                        help="paper, session, cv5_f0..cv5_f4, or in a workdir holding both "
                             "corpora kemdy19_cv5_f0..4, kemdy20_cv5_f0..4, kemdy19_to_kemdy20, "
                             "kemdy20_to_kemdy19 (default: the config's data.protocol/fold)")
    parser.add_argument("--skip-busy", action="store_true",
                        help="when another worker is training this run, leave it to that worker "
                             "and exit 0 (default: wait for it, then report the finished run)")
    parser.add_argument("--out", default=None, help="run directory (default: under W/runs/)")
    parser.add_argument("--no-resume", action="store_true", help="start over, discarding a previous run")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run, interrupt_note="its finished epochs are kept: "
                                                "the same command resumes the run")


def run(args: argparse.Namespace) -> int:
    from koemo.config.load import load_config
    from koemo.config.workdir import require_writable
    from koemo.experiments.plan import run_config
    from koemo.experiments.runlock import end_launch, train_once
    from koemo.inference.pretrained import STAGE_USES, require_assets
    from koemo.modeling.runs import RunDir, run_dir_for, split_name

    cfg = load_config(args.config, args.overrides)
    if args.variant is not None or args.split is not None:
        try:
            cfg = run_config(cfg, args.variant or "faithful",
                             args.split or split_name(cfg), args.stage)
        except ValueError as err:
            raise KoemoInputError(str(err)) from err
    # Every pretrained model the stage loads, found before any heavy work (one line if not).
    require_assets([cfg], STAGE_USES[args.stage], args.config, args.overrides)
    seed = args.seed if args.seed is not None else int(cfg.seed)
    run_dir = args.out or run_dir_for(args.workdir, cfg, args.stage, seed, args.classifier)
    for folder in (args.workdir, run_dir):      # before any heavy work
        require_writable(folder, "`koemo train` writes its run, lock and progress there: "
                                 "give a writable --workdir (a copy) or --out")
    # One trainer per run directory: a run another worker holds is left to it (or waited for).
    try:
        status, run_dir = train_once(args.stage, args.workdir, cfg, seed, out_dir=args.out,
                                     resume=not args.no_resume, classifier_kind=args.classifier,
                                     progress=not args.no_progress, blocking=not args.skip_busy)
    except BaseException as err:
        end_launch(wait_for_others=False)       # the others may never get this far
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted.naming(err, f"run {run_dir}") from err
        raise
    end_launch()
    if status == "busy":
        print(f"run: {run_dir} is being trained by another worker; left to it")
        return 0
    metrics = RunDir(run_dir).metrics()
    keys = ("accuracy", "weighted_f1", "macro_f1", "uar", "weighted_f1_batch_mean") \
        if args.stage == "multimodal" else ("rmse", "mae", "pearson_r", "ccc")
    scores = metrics.scalars()
    print(f"run: {run_dir}")
    print(f"test ({metrics.checkpoint} checkpoint, n={metrics.n}): "
          + ", ".join(f"{k} {scores[k]:.4f}" for k in keys))
    return 0
