"""Speech-encoder state caching (`models.audio.frontend: encoder`): utterances per second of
`koemo.audio.encoder_store.build_encoder_store` for a base-size architecture, first pass (read wave,
feature extractor, frozen encoder, write float16 rows) vs second pass (the complete cache is
found and opened; the encoder is not even loaded). The first pass includes loading the encoder
from its directory (hashing its weights for the cache key), as `koemo train` pays it once.

The encoder is a wav2vec2 with random weights built from a config (`koemo.synth.encoders`):
size full = wav2vec2-base's dimensions (7-layer conv feature encoder, 12 transformer layers,
768 wide, 95M parameters), one cached hidden state (layer 6), max_frames 400; utterances are
synthetic speech-like waves of 6 s (KEMDy20's mean), group-norm base model = one utterance per
forward (exactly what prediction computes). Size tiny = the tiny random wav2vec2 (32 wide,
2 layers), 12 utterances of 1 s. Random weights: the cost does not depend on their values.
Utterances/s are in the notes; on a GPU the first pass is bound by the encoder.
Measured on the shared 2-core CPU of the development container (2 torch threads, other jobs
running: load average 6-10), full size: 179 s for 48 utterances = 0.27 utt/s encoding with the
encoder run only up to layer 7 (335 s = 0.14 utt/s before that change, all 12 layers); second
pass 0.24 s. At 0.27 utt/s all of KEMDy20 would take ~14 h on such a CPU: the real encoders
belong on a GPU (not measured here: no GPU was available to this change).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import make_row, timed

SIZES = {"tiny": {"size": "tiny", "rows": 12, "seconds": 1.0, "layers": [1], "max_frames": 40},
         "full": {"size": "base", "rows": 48, "seconds": 6.0, "layers": [6], "max_frames": 400}}


def _corpus(root: Path, rows: int, seconds: float):
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(rows):
        f0 = rng.uniform(100, 250)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)))
        wave += 0.02 * rng.standard_normal(len(t))
        path = root / f"utt{i:04d}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        paths.append(str(path))
    return pd.DataFrame({"segment_id": [f"s{i:04d}" for i in range(rows)], "wav_path": paths})


def run(size: str) -> list[dict]:
    import torch

    from koemo.config.load import load_config
    from koemo.audio.encoder_store import build_encoder_store
    from koemo.synth.encoders import build_speech_encoder

    import transformers  # noqa: F401  (imported before timing: a one-off per process)

    spec = SIZES[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="bench_encoder_cache_") as tmp:
        root = Path(tmp)
        folder = build_speech_encoder("wav2vec2", root / "encoder", size=spec["size"])
        table = _corpus(root, spec["rows"], spec["seconds"])
        width = 32 if spec["size"] == "tiny" else 768
        cfg = load_config("paper", [
            "models.audio.frontend=encoder", f"models.audio.encoder.name={folder}",
            f"models.audio.encoder.layers={spec['layers']}", f"models.audio.encoder.input_dim={width}",
            f"models.audio.encoder.max_frames={spec['max_frames']}", f"train.device={device}"])
        work = root / "work"
        first, first_s = timed(lambda: build_encoder_store(table, work, cfg, progress=False))
        second, second_s = timed(lambda: build_encoder_store(table, work, cfg, progress=False))
        if second.directory != first.directory or not np.array_equal(first.get(0), second.get(0)):
            raise RuntimeError("second pass did not reuse the cache")
        mb = first.states.nbytes / 2**20
    rows = spec["rows"]
    arch = f"wav2vec2 {spec['size']} (random), layer {spec['layers']}, {spec['seconds']:g} s utterances, {device}"
    return [make_row(
        "speech-encoder states, cache", "first pass: read + encode + store", first_s,
        "second pass: complete cache reused", second_s,
        notes=f"{arch}; {rows} utterances: {rows / first_s:.2f} utt/s encoding, "
              f"{rows / second_s:.0f} utt/s reuse; cache {mb:.1f} MiB",
        utterances_per_s=rows / first_s)]
