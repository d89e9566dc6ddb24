"""`koemo convert-original`: the authors' .pt checkpoints (audio_arousal.pt, text_valence.pt,
Multi_Modal_Classifier_ye.pt) -> koemo checkpoints OUT/{audio,text,multimodal}/ that
`koemo evaluate`/`koemo predict` load. The files must hold state dicts (as the authors'
EarlyStopping saved them); KoBERT's weights inside them are set aside (koemo loads KoBERT
from `text.encoder`)."""
from __future__ import annotations

import argparse

from koemo.commands import Subparsers


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("convert-original", help="convert the authors' .pt checkpoints",
                            description=__doc__)
    parser.add_argument("--audio", help="audio_arousal.pt (audio regressor state dict)")
    parser.add_argument("--text", help="text_valence.pt (text regressor state dict)")
    parser.add_argument("--classifier", help="Multi_Modal_Classifier_ye.pt (classifier state dict)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default="paper",
                        help="config the files were trained with (default: paper, the faithful "
                             "one: the classifier keeps the authors' 4-head audio reuse)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable (e.g. models.audio.n_layers=6)")
    parser.add_argument("--keep-kobert", action="store_true",
                        help="also write the text file's KoBERT weights to text/kobert.safetensors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from koemo.config.load import load_config
    from koemo.modeling.convert import convert_original
    from koemo.modeling.checkpoint import read_meta

    cfg = load_config(args.config, args.overrides)
    written = convert_original(args.audio, args.text, args.classifier, args.out, cfg,
                               keep_kobert=args.keep_kobert)
    for stage, directory in written.items():
        meta = read_meta(directory)
        notes = {k: meta[k] for k in ("num_heads", "heads_resolution", "kobert_tensors_set_aside",
                                      "audio_weights_match_audio_file") if meta.get(k) is not None}
        print(f"{stage}: {directory} {json.dumps(notes, ensure_ascii=False)}")
    return 0
