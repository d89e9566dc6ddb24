"""`koemo predict --segments --asr none` on long synthetic recordings: Silero VAD over the file
in 30 s blocks, then the utterances scored in batches (koemo.inference.segments). There is no
earlier implementation to compare with, so the baseline is real time: `baseline_s` is the
recording's duration and `ratio` how many times faster than real time it runs.

Setup: a recording of N utterances from `koemo.synth.recording.long_recording` (1.5-3 s of
speech-like sound, 0.8-1.5 s pauses; written as a 16 kHz PCM-16 wav), and the random-weight
predictor directory of bench_predict at configs/demo.yaml (no transcripts, so no Whisper and no
text model pass). Each recording runs in its own subprocess, so `candidate_peak_rss_mb` is that
run's peak (the libraries' own footprint included).
- tiny: 20 utterances (~1 min).
- full: 141 and 1,108 utterances (~10 and ~60 min).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import make_row, run_in_subprocess

SIZES = {"tiny": [20], "full": [141, 1108]}
SAMPLE_RATE = 16000


def write_recording(path: Path, n_utterances: int, seed: int = 0) -> float:
    """The synthetic recording as a wav file; returns its duration in seconds."""
    import soundfile as sf

    from koemo.synth.recording import long_recording

    wave, _ = long_recording(n_utterances=n_utterances, seed=seed)
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    return len(wave) / SAMPLE_RATE


def segment_file(predictor_dir: str, wav: str) -> dict:
    """Child process, timed whole (as the command runs): load the predictor, cut and score."""
    from koemo.inference.predictor import Predictor
    from koemo.inference.segments import predict_timeline

    frame = predict_timeline(Predictor.from_checkpoint(predictor_dir, asr="none"), wav)
    return {"utterances_found": int(len(frame))}


def run(size: str) -> list[dict]:
    from benchmarks.bench_predict import SIZES as PREDICT_SIZES
    from benchmarks.bench_predict import build_predictor_dir, build_text_model, synthetic_utterances
    from koemo.config.load import load_config

    cfg = load_config("demo")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_segments_") as tmp:
        root = Path(tmp)
        texts = [t for _, t in synthetic_utterances(200, 0.3, seed=1)]
        directory = build_predictor_dir(root, cfg, build_text_model(root / "kobert", texts,
                                                                    PREDICT_SIZES["tiny"]))
        for n in SIZES[size]:
            wav = root / f"long-{n}.wav"
            duration = write_recording(wav, n)
            child = run_in_subprocess("benchmarks.bench_segments:segment_file",
                                      predictor_dir=str(directory), wav=str(wav))
            rows.append(make_row(
                f"predict --segments --asr none, {duration / 60:.1f} min recording, {n} utterances",
                "real time (the recording's duration)", duration,
                "VAD + batched audio scoring (koemo.inference.segments)", child["seconds"],
                notes=(f"{child['utterances_found']} utterances found of {n}; config demo, "
                       "random weights; the predictor load is included"),
                recording_min=duration / 60, utterances=n,
                utterances_found=child["utterances_found"],
                candidate_peak_rss_mb=child["peak_rss_mb"]))
    return rows
