"""`koemo synth`: write a synthetic KEMDy20- or KEMDy19-format corpus."""
from __future__ import annotations

import argparse

import time
from pathlib import Path

from koemo.commands import SettingChoices, Subparsers
from koemo.errors import KoemoInputError


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a synthetic corpus in KEMDy20's (or KEMDy19's) on-disk format",
        description="Write a deterministic synthetic corpus (annotation CSVs, wav + txt, and for "
                    "KEMDy20 EDA/TEMP/IBI) in the corpus' exact layout: audio prosody carries "
                    "arousal, word choice carries valence.")
    parser.add_argument("--corpus", choices=SettingChoices("CORPORA"), metavar="CORPUS",
                        default="kemdy20",
                        help="which corpus' format to write: %(choices)s (default kemdy20; kemdy19: "
                             "two rating files per session, impro and script dialogues, its quirks)")
    parser.add_argument("--out", required=True, type=Path, help="corpus root to create (e.g. data/KEMDy20_v1_1)")
    parser.add_argument("--sessions", type=int, default=4, help="number of sessions (default 4; KEMDy20 has 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--utterances-per-session", type=int, default=None,
                        help="utterances per session (default 80 for kemdy20, whose sessions "
                             "average ~336; 60 for kemdy19)")
    parser.add_argument("--mean-duration", type=float, default=3.5, help="mean utterance length in seconds")
    parser.add_argument("--silent-recordings", type=int, default=0,
                        help="per session, neutral utterances whose wav holds no signal (digital "
                             "silence, near-silence, a constant), as real KEMDy20 has (default 0)")
    parser.add_argument("--faults", default="",
                        help="plant real-file faults, comma-separated, or 'all' (every fault but "
                             "header-only-session and duplicate-download-name, which take a "
                             "session's rows away); their names: docs/kemdy20.md, or "
                             "synthetic.faults in docs/configuration.md; default none")
    parser.add_argument("--workers", type=int, default=1, help="sessions written in parallel (same bytes; kemdy20 only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    if args.corpus == "kemdy19":
        if args.silent_recordings:
            raise KoemoInputError("--silent-recordings: only for --corpus kemdy20 (no all-zero "
                                  "recordings were seen in KEMDy19)")
        from koemo.synth.kemdy19 import write_corpus as write_kemdy19

        if args.faults:
            raise KoemoInputError("--faults: only for --corpus kemdy20 (KEMDy19 plants its own quirks)")
        per_session = args.utterances_per_session or 60
        root = write_kemdy19(args.out, sessions=args.sessions, seed=args.seed,
                             utterances_per_session=per_session,
                             mean_duration=args.mean_duration, overwrite=args.overwrite)
    else:
        from koemo.synth import write_corpus

        per_session = args.utterances_per_session or 80
        root = write_corpus(args.out, sessions=args.sessions, seed=args.seed,
                            utterances_per_session=per_session, mean_duration=args.mean_duration,
                            silent_recordings=args.silent_recordings, workers=args.workers,
                            overwrite=args.overwrite, faults=args.faults)
    n = args.sessions * per_session
    print(f"koemo synth: wrote {args.sessions} sessions, {n} utterances to {root} "
          f"in {time.perf_counter() - began:.1f} s")
    if args.faults:
        print(f"  planted faults: {args.faults} (see docs/kemdy20.md)")
    return 0
