"""`koemo fetch --config C --to DIR`: download every pretrained model the config needs (text
tokenizer and encoder, speech encoder, Whisper, the foundation study's upstreams and
zero-shot models; also those of the configs in its reproduce.frontends) into DIR, on a machine with the hub (a cluster's login node), and write
DIR/<name>.yaml: the config with its models in DIR. Run on a machine without the hub with
`--config DIR/<name>.yaml`, or with the `--set` options printed for the config itself."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers, add_config_arguments


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("fetch", help="download the pretrained models a config needs into a "
                                          "folder, for machines without the hub",
                            description=__doc__)
    add_config_arguments(parser, default="paper")
    parser.add_argument("--to", required=True, help="folder the models and configs go to")
    parser.add_argument("--skip-asr", action="store_true",
                        help="leave out the speech recognition model (asr.model: only `koemo "
                             "predict` without a transcript uses it)")
    parser.set_defaults(func=run, interrupt_note="the files downloaded so far are kept: "
                                                "the same command fetches the rest")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from koemo.config.load import load_config
    from koemo.experiments.frontends import frontend_configs
    from koemo.inference.fetch import fetch, set_options
    from koemo.inference.pretrained import USES

    cfg = load_config(args.config, args.overrides)
    configs = frontend_configs(cfg, args.overrides)
    uses = [use for use in USES if not (args.skip_asr and use == "asr")]
    paths, changes, downloads = fetch(configs, Path(args.to), uses)
    if not downloads:
        print(f"nothing to download: every model config {cfg.name} needs is a local directory "
              f"or a stand-in built locally ({paths[0]}: the config as loaded)")
        return 0
    print(f"config written: {paths[0]} (its models in {paths[0].parent}); on a machine without "
          f"the hub run with: --config {paths[0]}")
    if changes:
        alone = " (for this config alone: its reproduce.frontends need --config)" \
            if len(configs) > 1 else ""
        print(f"or keep --config {args.config} and add{alone}: {set_options(changes)}")
    return 0
