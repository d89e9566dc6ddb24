"""`koemo folds --export DIR --workdir W`: the session folds of each corpus as EmoBox files."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers
import json
from pathlib import Path


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "folds", help="export the session folds of prepared corpora in EmoBox's JSON and JSONL layouts",
        description="Write the five session folds (koemo's cv5 protocol) of every corpus in "
                    "the prepared workdir(s) as EmoBox benchmark files: DIR/<corpus>/fold_<n>/"
                    "<corpus>_{train,valid,test}_fold_<n>.{json,jsonl}, <corpus>.{json,jsonl} "
                    "and label_map.json (docs/kemdy19.md). A fold without a test session is "
                    "named.")
    parser.add_argument("--export", required=True, type=Path, metavar="DIR",
                        help="output folder (one sub-folder per corpus)")
    parser.add_argument("--workdir", required=True, action="append", type=Path,
                        help="a prepared workdir (repeatable: one per corpus)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from koemo.config.workdir import REPORT_JSON, load_utterances
    from koemo.dataset.emobox import export_workdir
    from koemo.config.schema import N_FOLDS
    from koemo.errors import KoemoInputError

    done: dict[str, Path] = {}
    for workdir in args.workdir:
        report_path = workdir / REPORT_JSON
        if not report_path.is_file():
            raise KoemoInputError(f"{report_path}: not found; run `koemo prepare` first")
        table = load_utterances(workdir)
        report = json.loads(report_path.read_text(encoding="utf-8"))
        twice = [c for c in set(table.get("corpus", ["kemdy20"])) if c in done]
        if twice:
            raise KoemoInputError(f"{workdir}: corpus {twice[0]} was already exported from "
                                  f"{done[twice[0]]}; give each corpus once")
        for corpus, export in export_workdir(table, report, args.export, str(workdir)).items():
            done[corpus] = workdir
            print(f"koemo folds: {corpus}: {export.utterances} utterances, {N_FOLDS} folds -> "
                  f"{args.export / corpus}")
            if export.empty_test_folds:
                names = ", ".join(f"fold_{n}" for n in export.empty_test_folds)
                print(f"koemo folds: {corpus}: no test utterance in {names} (no session of the "
                      "corpus falls there): those test files are empty")
    return 0
