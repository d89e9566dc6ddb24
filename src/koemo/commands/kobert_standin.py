"""`koemo kobert-standin`: build the offline KoBERT stand-in (sentencepiece model trained on the
workdir's transcripts + a random-weight BertModel) in W/kobert-standin/, sized by
cfg.text.standin. An identical existing build is reused unless --force."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers, add_config_arguments


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("kobert-standin", help="build the offline KoBERT stand-in in W/kobert-standin",
                            description=__doc__)
    parser.add_argument("--workdir", required=True, help="prepared workdir (with utterances.parquet)")
    add_config_arguments(parser, default="demo")
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical build exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from koemo.config.load import load_config
    from koemo.text.standin import STANDIN_MARKER, ensure_standin

    cfg = load_config(args.config, args.overrides)
    out_dir, built = ensure_standin(args.workdir, cfg, force=args.force)
    meta = json.loads((out_dir / STANDIN_MARKER).read_text(encoding="utf-8"))
    state = "built" if built else "up to date, reused"
    requested = meta["vocab_size_requested"]
    trained = meta.get("vocab_size_trained", requested)     # absent in builds before it was
    raised = f", raised to {trained} to hold every character" if trained != requested else ""
    print(f"{out_dir}: {state} (vocab {meta['vocab_size']} of {requested} requested{raised}, "
          f"hidden {meta['hidden_size']}, {meta['num_layers']} layers, "
          f"{meta['n_texts']} training texts)")
    return 0
