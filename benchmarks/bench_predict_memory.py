"""Issue #21: the peak memory of `koemo predict` on one long recording must not grow with its
length (10 minutes within ~10-20% of 1 minute).

Each measure is the real command line, `koemo predict WAV --text ... --checkpoint DIR --json`
(`koemo.cli.main` called in a fresh Python process, so `peak_rss_mb` is that process's own
high-water mark, VmHWM: interpreter, torch, the predictor and the recording together).
Recordings: `koemo.synth.recording.long_recording` (speech-like utterances and pauses) cut to
the length, written as 16 kHz PCM-16 wav. Predictor: the random-weight directory of
bench_predict, built offline.
- full: configs/paper.yaml (hop 512, n_fft 2048, 128 mels, 512-frame windows, the paper's
  audio and fusion models), a 1-layer BertModel of KoBERT's width (768; the text model's
  depth costs the same at every length, and a 12-layer one would only add a constant that
  hides growth); recordings of 1, 5 and 10 minutes.
- tiny: configs/tiny.yaml and bench_predict's tiny encoder; 4 and 12 s (seconds, for the tests).

Rows (ratio = baseline_s / candidate_s, the times; `rss_ratio` = candidate / baseline peak,
`rss_growth_mb` = candidate - baseline peak; about 600 MB of every peak is torch's import;
full size: the higher peak of two rounds, `*_peak_spread_mb` the difference between them):
1-2. block-wise reading (the default): the shortest recording (baseline) against each longer one.
3. (full only) the whole-file path (`Predictor.read_in_blocks = False`: the recording loaded
   and its features computed at once, as koemo did before issue #21) on the shortest against
   the longest recording.
4. the longest recording, whole-file (baseline) against block-wise (candidate).

Measured 2026-12-03, full size, on the shared 2-core AMD EPYC development machine (23.5 GiB,
no GPU; other jobs running), results/2026-12-03-full-predict_memory.md: peak RSS read in
blocks 1,743 / 1,805 / 1,806 MB for 1 / 5 / 10 minutes (1.04x and 1.04x the 1-minute peak);
the whole-file path 1,744 / 1,808 MB for 1 / 10 minutes (1.04x: up to 10 minutes the model
passes set the peak). The two rounds' peaks differed by at most 0.4 MB. The first full run
(commit b28454a, before `koemo predict` pinned glibc's mmap threshold) gave 1,864 / 1,990 /
2,065 MB read in blocks (1.11x at 10 minutes) and 1,811 / 2,087 MB whole-file.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import make_row, run_in_subprocess

SAMPLE_RATE = 16000
TEXT = "오늘 정말 기분이 좋아요"
SIZES = {
    # tiny: three child processes (~10 s each on two shared cores); the whole-file path on the
    # longest recording only
    "tiny": {"config": "tiny", "seconds": [4, 12], "whole_seconds": [12], "repeats": 1,
             "text_model": "tiny"},
    # two rounds (before `koemo predict` pinned glibc's mmap threshold, the two peaks of one
    # command differed by up to 62 MB, commit b28454a): each row takes the higher peak and the
    # faster time
    "full": {"config": "paper", "seconds": [60, 300, 600], "whole_seconds": [60, 600], "repeats": 2,
             "text_model": {"vocab": 8002, "bert": {"hidden_size": 768, "num_layers": 1,
                                                    "num_heads": 12, "intermediate_size": 3072}}},
}


def write_recording(path: Path, seconds: float, seed: int = 0) -> float:
    """A synthetic recording of exactly `seconds` s as a wav file; returns its duration."""
    import soundfile as sf

    from koemo.synth.recording import long_recording

    # ~3.4 s per utterance and pause on average: enough utterances, then cut to the length
    wave, _ = long_recording(n_utterances=int(seconds / 3.0) + 2, seed=seed)
    wave = wave[:int(seconds * SAMPLE_RATE)]
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    return len(wave) / SAMPLE_RATE


def predict_cli(predictor_dir: str, wav: str, read_in_blocks: bool = True) -> dict:
    """Child process: `koemo predict` as the command runs it (read_in_blocks=False: the
    whole-file reference path)."""
    import contextlib
    import io
    import json

    from koemo.cli import main
    from koemo.inference.predictor import Predictor

    Predictor.read_in_blocks = read_in_blocks
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["predict", wav, "--text", TEXT, "--checkpoint", predictor_dir, "--json",
                       "--no-progress"])
    if status != 0:
        raise RuntimeError(f"koemo predict exited {status}")
    result = json.loads(out.getvalue())
    return {"label": result["label"], "arousal": result["arousal"],
            "windows": result["windows"]["n_windows"]}


def measure(directory: Path, wav: Path, read_in_blocks: bool) -> dict:
    return run_in_subprocess("benchmarks.bench_predict_memory:predict_cli",
                             predictor_dir=str(directory), wav=str(wav),
                             read_in_blocks=read_in_blocks)


def combine(runs: list[dict]) -> dict:
    """Repeated measures of one command: the highest peak, the best time, the peaks' spread."""
    peaks = [r["peak_rss_mb"] for r in runs]
    return dict(runs[0], peak_rss_mb=max(peaks), seconds=min(r["seconds"] for r in runs),
                peak_spread_mb=max(peaks) - min(peaks))


def memory_row(benchmark: str, baseline: str, base: dict, candidate: str, cand: dict,
               notes: str, **extra) -> dict:
    return make_row(benchmark, baseline, base["seconds"], candidate, cand["seconds"],
                    notes=notes, baseline_peak_rss_mb=base["peak_rss_mb"],
                    candidate_peak_rss_mb=cand["peak_rss_mb"],
                    rss_ratio=cand["peak_rss_mb"] / base["peak_rss_mb"],
                    rss_growth_mb=cand["peak_rss_mb"] - base["peak_rss_mb"],
                    baseline_peak_spread_mb=base["peak_spread_mb"],
                    candidate_peak_spread_mb=cand["peak_spread_mb"],
                    baseline_windows=base["windows"], candidate_windows=cand["windows"], **extra)


def _length(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def run(size: str) -> list[dict]:
    import torch

    from benchmarks.bench_predict import SIZES as PREDICT_SIZES
    from benchmarks.bench_predict import build_predictor_dir, build_text_model, synthetic_utterances
    from koemo.config.load import load_config

    spec = SIZES[size]
    cfg = load_config(spec["config"])
    text_spec = spec["text_model"]
    text_spec = PREDICT_SIZES[text_spec] if isinstance(text_spec, str) else text_spec
    shape = (f"config {cfg.name} (hop {cfg.features.hop_length}, window "
             f"{cfg.features.max_frames} frames), text encoder {text_spec['bert']['num_layers']} "
             f"layer(s) / hidden {text_spec['bert']['hidden_size']}, random weights, "
             f"torch threads {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_predict_memory_") as tmp:
        root = Path(tmp)
        texts = [t for _, t in synthetic_utterances(200, 0.3, seed=1)] + [TEXT]
        text_model = build_text_model(root / "text", texts, text_spec)
        directory = build_predictor_dir(root, cfg, text_model)
        wavs = {}
        for seconds in spec["seconds"]:
            wavs[seconds] = root / f"recording-{seconds}s.wav"
            write_recording(wavs[seconds], seconds)
        shortest, longest = spec["seconds"][0], spec["seconds"][-1]
        runs = {}                    # (read_in_blocks, seconds) -> measures, rounds interleaved
        for _ in range(spec["repeats"]):
            for seconds in spec["seconds"]:
                for in_blocks in (True, False):
                    if in_blocks or seconds in spec["whole_seconds"]:
                        runs.setdefault((in_blocks, seconds), []).append(
                            measure(directory, wavs[seconds], in_blocks))
        blocks = {s: combine(runs[True, s]) for s in spec["seconds"]}
        whole = {s: combine(runs[False, s]) for s in spec["whole_seconds"]}
        for seconds in spec["seconds"][1:]:
            rows.append(memory_row(
                f"predict peak RSS, {_length(seconds)} vs {_length(shortest)} (blocks)",
                f"koemo predict, {_length(shortest)} recording", blocks[shortest],
                f"koemo predict, {_length(seconds)} recording", blocks[seconds],
                notes=f"read in blocks (the default); {shape}"))
        if shortest in whole:
            rows.append(memory_row(
                f"predict peak RSS, {_length(longest)} vs {_length(shortest)} (whole file)",
                f"whole-file path, {_length(shortest)} recording", whole[shortest],
                f"whole-file path, {_length(longest)} recording", whole[longest],
                notes=f"Predictor.read_in_blocks=False (before issue #21); {shape}"))
        arousal_gap = abs(whole[longest]["arousal"] - blocks[longest]["arousal"])
        rows.append(memory_row(
            f"predict peak RSS, {_length(longest)}: whole file vs blocks",
            "whole-file path", whole[longest], "read in blocks", blocks[longest],
            notes=f"same recording; arousal differs by {arousal_gap:.2g}; {shape}",
            same_label=whole[longest]["label"] == blocks[longest]["label"]))
    return rows
