"""`koemo plan --config C --workdir W`: every training run of `koemo reproduce` as one
independent `koemo train` command, for any scheduler; or submit them to SLURM via submitit."""
from __future__ import annotations

import argparse

from koemo.commands import SettingChoices, Subparsers, add_config_arguments


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="list every training run as an independent `koemo train` command",
        description="Print (or --export) one `koemo train` line per run of the experiment plan "
                    "(notebooks 2-1 .. 5-2). Regressor lines come first and are independent; "
                    "classifier lines need the regressor runs of their split/variant/seed. "
                    "Workers sharing the workdir never train one run twice (a lock per run "
                    "directory). Prepare the workdir first (`koemo prepare`); afterwards "
                    "`koemo reproduce` finds every run finished and writes the tables.")
    parser.add_argument("--workdir", default=None,
                        help="workdir written by `koemo prepare` (required but with --summary)")
    add_config_arguments(parser)
    parser.add_argument("--format", metavar="FORMAT", default=None,
                        choices=SettingChoices("FORMATS", "koemo.experiments.scaleout"),
                        help="txt: one command a line; sh: a script, phase by phase; json: one "
                             "object per run (default: from --export's suffix, else txt)")
    parser.add_argument("--summary", action="store_true",
                        help="print the plan's size instead: runs per stage and row-epochs "
                             "(training rows x max epochs) per part (main, layer ablation, "
                             "combinations, fusion), from --workdir's rows when given, else "
                             "the expected KEMDy20 size; an H100 estimate at the paper's shapes")
    parser.add_argument("--export", default=None, metavar="FILE",
                        help="write the plan to FILE instead of printing it")
    parser.add_argument("--submit", choices=("slurm",), default=None,
                        help="submit through submitit: the regressors as one job array, the "
                             "classifiers as a second array after it (pip install koemo[slurm])")
    parser.add_argument("--submitit-folder", default="submitit",
                        help="where submitit keeps job scripts and logs (default: ./submitit)")
    parser.add_argument("--slurm", dest="slurm_params", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="submitit executor parameter, e.g. timeout_min=240, "
                             "slurm_partition=gpu, gpus_per_node=1 (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from koemo.config.load import parse_override
    from koemo.errors import KoemoInputError
    from koemo.experiments.scaleout import planned_runs, render, submit_slurm

    if args.summary:
        return _summary(args)
    if args.workdir is None:
        raise KoemoInputError("koemo plan needs --workdir (a workdir written by `koemo "
                              "prepare`), except with --summary")
    runs = planned_runs(args.config, args.workdir, args.overrides)
    if args.submit:
        params = {}
        for text in args.slurm_params:
            keys, value = parse_override(text)
            params[".".join(keys)] = value
        jobs = submit_slurm(runs, args.submitit_folder, parameters=params)
        print(f"submitted {len(runs)} runs as {len(jobs)} jobs: "
              + ", ".join(sorted({str(job.job_id).split('_')[0] for job in jobs})))
        return 0
    fmt = args.format
    if fmt is None:
        suffix = Path(args.export).suffix.lstrip(".") if args.export else ""
        fmt = suffix if suffix in ("sh", "json") else "txt"
    return _write_or_print(render(runs, fmt), args.export, f"{len(runs)} runs")


def _summary(args: argparse.Namespace) -> int:
    from koemo.config.load import load_config
    from koemo.errors import KoemoInputError
    from koemo.reporting.plan_summary import render, summarize

    if args.submit:
        raise KoemoInputError("--summary submits nothing: leave out --submit")
    fmt = args.format or ("json" if args.export and args.export.endswith(".json") else "txt")
    if fmt == "sh":
        raise KoemoInputError("--summary prints txt (a Markdown table) or json, not sh")
    summary = summarize(load_config(args.config, args.overrides), args.workdir)
    # the config as asked for (paper_budget's runs carry paper.yaml's name), with its --set
    summary["config"] = " ".join([args.config, *(f"--set {o}" for o in args.overrides)])
    return _write_or_print(render(summary, fmt), args.export, "plan summary")


def _write_or_print(text: str, export: str | None, what: str) -> int:
    """`text` into the --export file (saying so) or onto stdout."""
    from pathlib import Path

    if export:
        Path(export).write_text(text, encoding="utf-8")
        print(f"{what} -> {export}")
    else:
        print(text, end="")
    return 0
