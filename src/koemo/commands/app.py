"""`koemo app`: the web demo (a Gradio page) over a predictor directory or hub id.

    koemo app --checkpoint DIR [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50] [--max-seconds 600]
              [--asr config|DIR|none]
"""
from __future__ import annotations

import argparse
import importlib.util

from koemo.commands import SettingChoices, Subparsers
from koemo.errors import KoemoInputError

DESCRIPTION = """\
Serve a web page to try a predictor: upload or record a recording, optionally type its
Korean transcript, and see the emotion probabilities, arousal and valence on the
valence-arousal plane, and a timeline for long recordings.

The page listens on 127.0.0.1 (this machine only) unless --host says otherwise; use
--host 0.0.0.0 only on a network you trust (there is no login). Uploads over --max-upload-mb
and recordings longer than --max-seconds are refused with a message."""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "app", help="web demo: upload or record audio, see emotion, arousal and valence",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION)
    parser.add_argument("--checkpoint", required=True,
                        help="predictor directory, or a hub id org/name (see `koemo predict --export`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest upload accepted, in MB (default 50)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="longest recording accepted, in seconds (default 600)")
    parser.add_argument("--long-audio", metavar="MODE", default="windows",
                        choices=SettingChoices("LONG_AUDIO_MODES", "koemo.inference.windows"),
                        help="recordings longer than the model's window, %(choices)s: average "
                             "overlapping windows (windows, the default) or keep the first (cut)")
    parser.add_argument("--asr", default="config",
                        help="speech recognition when no transcript is typed: `config` (the "
                             "predictor config's asr.model, default), a Whisper directory or hub "
                             "id, or `none` (arousal only)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random draw of faithful-config checkpoints (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise KoemoInputError(f"--port must be 1-65535, not {args.port}")
    if importlib.util.find_spec("gradio") is None:
        raise KoemoInputError("`koemo app` needs gradio: pip install 'koemo[app]'")
    from koemo.inference.app import AppSettings, check_port_free, serve
    from koemo.commands.predict import _quiet_transformers
    from koemo.inference.predictor import Predictor

    settings = AppSettings(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds)
    check_port_free(args.host, args.port)              # before minutes of loading models
    _quiet_transformers()
    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device,
                                          long_audio=args.long_audio, seed=args.seed,
                                          asr=args.asr)
    print(f"koemo app: serving {args.checkpoint} on http://{args.host}:{args.port} (Ctrl-C stops)")
    serve(predictor, settings, host=args.host, port=args.port, block=True)
    return 0
