"""`koemo encode-text`: tokenise every utterance of W/utterances.parquet and store the frozen
KoBERT (or stand-in) hidden states in the text-state cache W/text/<fingerprint>/. Only
sequences not cached yet are computed; empty and truncated transcripts are listed in
encode_report.json next to the cache."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers, add_config_arguments


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("encode-text", help="fill the KoBERT hidden-state cache for all utterances",
                            description=__doc__)
    parser.add_argument("--workdir", required=True, help="prepared workdir (with utterances.parquet)")
    add_config_arguments(parser, default="paper")
    parser.add_argument("--device", default="cpu", help="torch device for the encoder (default: cpu)")
    parser.add_argument("--batch-size", type=int, help="default: text.encode_batch_size")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, interrupt_note="the states computed so far are kept: "
                                                "the same command computes the rest")


def run(args: argparse.Namespace) -> int:
    from koemo.config.load import load_config
    from koemo.inference.pretrained import require_assets
    from koemo.text.encoder import encode_workdir_texts

    cfg = load_config(args.config, args.overrides)
    require_assets([cfg], ["text"], args.config, args.overrides)
    report = encode_workdir_texts(args.workdir, cfg, device=args.device,
                                  batch_size=args.batch_size, progress=not args.no_progress)
    print(f"{report['utterances']} utterances: {report['hits']} cached already, "
          f"{report['computed']} sequences computed; {report['stored']} stored in {report['cache_dir']}")
    if report["empty_text"]:
        print(f"{len(report['empty_text'])} empty transcript(s) encoded as [CLS] [SEP]: "
              f"{', '.join(report['empty_text'][:10])}{' ...' if len(report['empty_text']) > 10 else ''}")
    if report["truncated"]:
        print(f"{len(report['truncated'])} transcript(s) longer than {report['max_length'] - 2} pieces "
              f"truncated (listed in {report['cache_dir']}/encode_report.json)")
    return 0
