"""`koemo predict`: emotion, arousal and valence for your own recordings.

    koemo predict WAV [--text "..." | --text-file F] --checkpoint DIR [--json]
    koemo predict --batch LIST.csv --out PREDICTIONS.csv --checkpoint DIR
    koemo predict LONG.wav --segments --out TIMELINE.csv [--plot TIMELINE.png] --checkpoint DIR
    koemo predict --export DIR --workdir W --config C [--seed S]         (from training runs)
    koemo predict --export DIR --audio-run A --text-run T --multimodal-run M [--workdir W]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from koemo.commands import SettingChoices, Subparsers
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import pandas as pd

    from koemo.inference.predictor import Prediction, Predictor

BAR_WIDTH = 30
# Plain output shows at most this much of a transcript (--json prints it whole; a timeline
# table, a row's share).
PLAIN_TEXT_LIMIT = 300
SEGMENT_TEXT_LIMIT = 60
# Terminal control characters (ESC, BEL, ...), line breaks and bidi/zero-width marks: shown
# escaped, never sent to the terminal as they are.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
DESCRIPTION = """\
Predict the emotion (class probabilities and label), arousal and valence (1-5) of a
recording from its audio and Korean transcript, with a predictor directory (see
checkpoints/README.md; make one with --export).

Without a transcript, speech recognition (Whisper; the config's `asr:` section, or --asr
MODEL) supplies one and the result says text_source "asr"; with --asr none only arousal is
predicted (the emotion classifier needs both).

--segments: a long recording is cut into utterances by voice activity (Silero VAD), each
transcribed and scored; --out writes the timeline CSV (start, end, label, prob_<class>...,
arousal, valence, text, text_source), --plot a PNG of it.
Audio longer than the model's window is scored in overlapping windows whose predictions
are averaged (--long-audio windows), or cut to its first window as in training (cut).

--batch LIST.csv: columns `wav` and optionally `text` (empty = no transcript; relative wav
paths are relative to the CSV's folder). Every row is written to --out, failed ones with
their error; the exit status is 1 when any row failed."""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict emotion, arousal and valence from a wav and its transcript",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION)
    parser.add_argument("wav", nargs="?", help="audio file (wav, flac, ogg; any sample rate, mono or stereo)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--text", help="the transcript (Korean)")
    text.add_argument("--text-file", help="file holding the transcript (UTF-8 or cp949)")
    parser.add_argument("--checkpoint", help="predictor directory (predictor.json + audio/ text/ multimodal/)")
    parser.add_argument("--json", action="store_true", help="print the prediction as JSON")
    parser.add_argument("--batch", metavar="LIST.csv", help="predict every row of a CSV (columns wav, text)")
    parser.add_argument("--out", metavar="PREDICTIONS.csv", help="output CSV for --batch")
    parser.add_argument("--long-audio", metavar="MODE", default="windows",
                        choices=SettingChoices("LONG_AUDIO_MODES", "koemo.inference.windows"),
                        help="audio longer than the model's window, %(choices)s: average "
                             "overlapping windows (windows, the default) or keep the first "
                             "window only (cut)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per model pass (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random draw when the checkpoint keeps attention dropout on "
                             "in eval (faithful config); with --export: the training seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--asr", metavar="MODEL|none", default=None,
                        help="speech recognition for recordings without --text: Whisper hub id or "
                             "directory (default: the checkpoint config's asr.model, else "
                             "openai/whisper-small); none = arousal only")
    parser.add_argument("--segments", action="store_true",
                        help="cut a long recording into utterances (voice activity) and predict each")
    parser.add_argument("--plot", metavar="TIMELINE.png", help="with --segments: draw the timeline")
    export = parser.add_argument_group("assembling a predictor directory (--export DIR)")
    export.add_argument("--export", metavar="DIR", help="write a predictor directory from trained stages")
    export.add_argument("--workdir", help="workdir of the training runs (finds runs and the KoBERT stand-in)")
    export.add_argument("--config", default=None, help="config of the runs (with --workdir; default paper)")
    export.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override used for training (repeatable)")
    export.add_argument("--classifier", default="attention_lstm", help="classifier kind of the run")
    export.add_argument("--audio-run", help="audio regressor run or checkpoint directory")
    export.add_argument("--text-run", help="text regressor run or checkpoint directory")
    export.add_argument("--multimodal-run", help="classifier run or checkpoint directory")
    export.add_argument("--text-model", help="tokenizer+encoder directory or hub id (default: from the config)")
    export.add_argument("--force", action="store_true", help="replace a non-empty --export directory")
    export.add_argument("--allow-mismatched-regressors", action="store_true",
                        help="accept audio/text stages whose weights differ from the classifier's "
                             "frozen copies (e.g. converted original files from different runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _quiet_transformers()
    _return_freed_buffers()
    if args.export:
        return run_export(args)
    if not args.checkpoint:
        raise KoemoInputError("--checkpoint DIR is required (a predictor directory; see --export)")
    if args.batch:
        return run_batch(args)
    if not args.wav:
        raise KoemoInputError("give a WAV file, or --batch LIST.csv --out PREDICTIONS.csv")
    if args.segments:
        return run_segments(args)
    predictor = load_predictor(args)
    text = read_text_file(Path(args.text_file)) if args.text_file else args.text
    result = predictor.predict(args.wav, text)
    if args.json:
        print(json.dumps({"wav": args.wav, **result.to_dict(), "predictor": predictor_record(predictor)},
                         indent=2, ensure_ascii=False))
    else:
        print(format_prediction(args.wav, result, predictor.provenance))
    return 0


def predictor_record(predictor: Predictor) -> dict:
    from koemo.inference.provenance import describe

    return {"checkpoint": predictor.source, "provenance": predictor.provenance,
            "summary": describe(predictor.provenance)}


def printable(text: str, limit: int | None = PLAIN_TEXT_LIMIT) -> str:
    """`text` safe for a terminal: control characters escaped (\\x1b, \\x07, ...) and, with a
    limit, shortened with a note of its length."""
    safe = CONTROL_RE.sub(lambda m: ascii(m.group())[1:-1], str(text))
    if limit is not None and len(safe) > limit:
        safe = f"{safe[:limit]}... ({len(text)} characters; --json prints all)"
    return safe


def load_predictor(args: argparse.Namespace) -> Predictor:
    from koemo.inference.predictor import Predictor

    return Predictor.from_checkpoint(args.checkpoint, device=args.device, long_audio=args.long_audio,
                                     batch_size=args.batch_size,
                                     seed=args.seed if args.seed is not None else 0,
                                     asr="config" if args.asr is None else args.asr)


def read_text_file(path: Path) -> str:
    """A transcript file: UTF-8 (with or without BOM), else cp949 as KEMDy20's transcripts."""
    if not path.is_file():
        raise KoemoInputError(f"{path}: transcript file not found")
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    raise KoemoInputError(f"{path}: transcript is neither UTF-8 nor cp949 text")


def format_prediction(name: str, result: Prediction, provenance: dict | None = None) -> str:
    from koemo.inference.provenance import describe

    w = result.windows
    lines = [f"{printable(name, None)}: {w.audio_s:.2f} s, {w.n_windows} "
             f"window{'s' if w.n_windows > 1 else ''} of {w.window_s:.2f} s ({w.mode})",
             f"predictor: {printable(describe(provenance), None)}"]
    if result.probabilities is None:
        lines.append("emotion:  not predicted (no transcript)")
    else:
        lines.append(f"emotion:  {result.label}")
        width = max(len(c) for c in result.probabilities)
        for label, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {label:<{width}}  {p:6.3f}  {'#' * round(p * BAR_WIDTH)}")
    lines.append(f"arousal:  {result.arousal:.2f}  (1-5)")
    lines.append("valence:  " + ("not predicted (no transcript)" if result.valence is None
                                 else f"{result.valence:.2f}  (1-5)"))
    if result.text is not None:
        source = " (speech recognition)" if result.text_source == "asr" else ""
        lines.append(f"text:     {printable(result.text)}{source}")
    lines += ["notes:"] + [f"  - {printable(note, None)}" for note in result.notes] if result.notes else []
    return "\n".join(lines)


# ----------------------------------------------------------------------------- batch

def read_batch_list(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise KoemoInputError(f"{path}: batch list not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise KoemoInputError(f"{path}: not a readable UTF-8 CSV ({err})") from err
    if "wav" not in table.columns:
        raise KoemoInputError(f"{path}: needs a `wav` column (and optionally `text`); "
                              f"found {list(table.columns)}")
    if "text" not in table.columns:
        table["text"] = ""
    return table


def batch_items(table: pd.DataFrame, base: Path) -> Iterator[tuple[Path, str | None]]:
    for wav, text in zip(table["wav"], table["text"]):
        path = Path(wav)
        yield (path if path.is_absolute() else base / path), (text if text.strip() else None)


def prediction_row(wav: str, text: str, result: Prediction | Exception,
                   classes: Sequence[str]) -> dict:
    row = {"wav": wav, "text": text}
    if isinstance(result, Exception):
        return {**row, "status": "error", "error": str(result)}
    probs = result.probabilities or {}
    return {**row, "status": "ok", "error": "", "label": result.label or "",
            **{f"prob_{c}": probs.get(c) for c in classes},
            "arousal": result.arousal, "valence": result.valence,
            "transcript": result.text or "", "text_source": result.text_source or "",
            "n_windows": result.windows.n_windows, "audio_s": result.windows.audio_s,
            "notes": " | ".join(result.notes)}


def run_batch(args: argparse.Namespace) -> int:
    import pandas as pd

    if not args.out:
        raise KoemoInputError("--batch needs --out PREDICTIONS.csv")
    path = Path(args.batch)
    table = read_batch_list(path)
    predictor = load_predictor(args)
    results = predictor.predict_many(list(batch_items(table, path.parent)),
                                     progress=not args.no_progress)
    rows = [prediction_row(wav, text, result, predictor.classes)
            for wav, text, result in zip(table["wav"], table["text"], results)]
    out = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    failed = [(i, row["wav"], row["error"]) for i, row in enumerate(rows) if row["status"] == "error"]
    print(f"predicted {len(rows) - len(failed)} of {len(rows)} rows -> {args.out}")
    for i, wav, error in failed:
        print(f"  row {i + 2} ({printable(wav, None)}): {printable(error, None)}", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- long recordings

def run_segments(args: argparse.Namespace) -> int:
    """The timeline of a long recording: --json prints it as JSON (one object per utterance,
    NaN as null) and nothing else on stdout; --out writes the CSV (the notes column carries the
    predictor's warnings on every row), --plot the figure (with them as its caption)."""
    from koemo.inference.provenance import describe
    from koemo.inference.segments import TABLE_DECIMALS, plot_timeline, predict_timeline

    if args.text or args.text_file:
        raise KoemoInputError("--segments transcribes each utterance itself: leave out --text")
    predictor = load_predictor(args)
    frame = predict_timeline(predictor, args.wav, progress=not args.no_progress)
    table = frame.round(TABLE_DECIMALS)
    # With --json, stdout is the JSON document alone; what was written is said on stderr.
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    if args.json:
        print(json.dumps({"wav": args.wav, "notes": frame.attrs["notes"],
                          "segments": json.loads(table.to_json(orient="records", force_ascii=False)),
                          "predictor": predictor_record(predictor)}, indent=2, ensure_ascii=False))
    else:
        say(f"predictor: {printable(describe(predictor.provenance), None)}")
        for note in frame.attrs["notes"]:
            say(f"note: {printable(note, None)}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        say(f"{len(frame)} utterances -> {args.out}")
    elif not args.json:
        shown = table.drop(columns="notes").assign(
            text=[printable(text, SEGMENT_TEXT_LIMIT) for text in table["text"]])
        say(shown.to_string(index=False))
    if args.plot:
        say(f"timeline figure -> {plot_timeline(frame, args.plot, title=Path(args.wav).name)}")
    return 0


# ----------------------------------------------------------------------------- export

def run_export(args: argparse.Namespace) -> int:
    from koemo.config.load import load_config
    from koemo.inference.export import export_from_workdir, export_predictor

    runs = (args.audio_run, args.text_run, args.multimodal_run)
    if all(runs):
        out = export_predictor(*runs, args.export, workdir=args.workdir, text_model=args.text_model,
                               overwrite=args.force,
                               allow_mismatched_regressors=args.allow_mismatched_regressors)
    elif any(runs):
        raise KoemoInputError("give all three of --audio-run, --text-run, --multimodal-run "
                              "(or none, with --workdir and --config)")
    elif args.workdir:
        cfg = load_config(args.config or "paper", args.overrides)
        seed = args.seed if args.seed is not None else int(cfg.seed)
        out = export_from_workdir(args.workdir, cfg, seed, args.export, classifier_kind=args.classifier,
                                  text_model=args.text_model, overwrite=args.force)
    else:
        raise KoemoInputError("--export needs --workdir W --config C, or the three --*-run directories")
    print(f"predictor directory: {out}")
    return 0


def _quiet_transformers() -> None:
    """transformers draws a progress bar for every weight load: noise in a CLI's output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


# glibc's default mmap threshold (128 KiB) and the cap of its dynamic growth (32 MiB on 64 bit).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3


def _return_freed_buffers() -> None:
    """Pin glibc's mmap threshold so every large buffer (each batch's tensors) is mapped on
    allocation and unmapped on free. By default glibc raises the threshold after freeing such a
    buffer, later ones of that size come from the heap, which fragments: the peak of a long
    recording then crept up batch by batch (5-minute recording, paper config, batches of one
    shape: 1,891 MB after the first batch, 2,035 MB after the fourth; pinned: 1,807 MB after
    every one; benchmarks/bench_predict_memory.py measures the command). Other C libraries:
    nothing to do."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass
