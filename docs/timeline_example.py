"""Example timeline figure from the synthetic corpus's voices (for docs/inference.md).

    .venv/bin/python docs/timeline_example.py --checkpoint checkpoints/demo \
        [--asr DIR | --asr standin] --out docs/timeline-example.png

A 12-utterance synthetic recording (koemo.synth.recording, known boundaries) is cut by
Silero VAD and scored by the predictor; `--asr standin` builds a tiny random Whisper
(koemo.inference.asr_standin: Korean gibberish transcripts) so it runs offline. Writes the PNG and the
timeline CSV beside it, and prints the boundary errors against the truth.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import soundfile as sf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="predictor directory")
    parser.add_argument("--asr", default="standin", help="Whisper directory/hub id, or standin")
    parser.add_argument("--out", default="docs/timeline-example.png")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from koemo.inference.asr_standin import build_standin_whisper
    from koemo.inference.predictor import Predictor
    from koemo.inference.segments import plot_timeline, predict_timeline
    from koemo.synth.recording import long_recording

    with tempfile.TemporaryDirectory() as tmp:
        asr = str(build_standin_whisper(Path(tmp) / "whisper")) if args.asr == "standin" else args.asr
        predictor = Predictor.from_checkpoint(args.checkpoint, asr={"model": asr, "max_new_tokens": 12})
        wave, truth = long_recording(n_utterances=12, seed=args.seed)
        wav = Path(tmp) / "long.wav"
        sf.write(wav, wave, 16000, subtype="PCM_16")
        frame = predict_timeline(predictor, wav, progress=True)
    out = Path(args.out)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    plot_timeline(frame, out, title="synthetic recording: emotion per utterance (Silero VAD + Whisper)")
    print(f"{len(frame)} utterances found, {len(truth)} true -> {out}")
    for (start, end), row in zip(truth, frame.itertuples()):
        print(f"  true {start:6.2f}-{end:6.2f}  found {row.start:6.2f}-{row.end:6.2f}")


if __name__ == "__main__":
    main()
