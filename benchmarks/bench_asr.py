"""Throughput of prediction without transcripts (speech recognition + the three models):
`Predictor.predict_many` (what `koemo predict --batch` runs: Whisper generates for a batch of
utterances at once, then the models score the batch) against `Predictor.predict` one utterance
at a time, both measured in the same run on the same utterances.

Setup: the predictor directory of bench_predict (random weights, offline) and a random-weight
Whisper from `koemo.inference.asr_standin` (its vocabulary is ~100 Hangul pieces, so the output
projection is far cheaper than whisper-small's 51,865 entries; everything else has the size
given). Random weights rarely emit end-of-text, so every utterance decodes `max_new_tokens`
tokens in both modes: the comparison is fair, the absolute speed a lower bound for real
transcripts of that length.
- tiny: configs/tiny.yaml, Whisper 1+1 layers / width 32, 8 utterances of 1.5 s, 8 tokens.
- full: configs/paper.yaml, whisper-small's shape (12+12 layers, width 768), 16 utterances of
  6 s, 24 tokens.
Rows: CPU, and the GPU when torch sees one. Utterances/s in the notes and extra columns.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.bench_predict import (SAMPLE_RATE, build_predictor_dir, build_text_model,
                                      synthetic_utterances)
from benchmarks.common import make_row

SIZES = {
    "tiny": {"config": "tiny", "seconds": 1.5, "items": 8, "tokens": 8, "whisper": None,
             "vocab": 300,
             "bert": {"hidden_size": 256, "num_layers": 1, "num_heads": 2, "intermediate_size": 128}},
    "full": {"config": "paper", "seconds": 6.0, "items": 16, "tokens": 24, "whisper": "small",
             "vocab": 8002,
             "bert": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}},
}
BATCH_SIZE = 8


def run(size: str) -> list[dict]:
    import torch

    from koemo.inference.asr_standin import WHISPER_SMALL_DIMS, build_standin_whisper
    from koemo.config.load import load_config
    from koemo.inference.predictor import Predictor

    spec = SIZES[size]
    cfg = load_config(spec["config"])
    items = synthetic_utterances(spec["items"], spec["seconds"])
    texts = [t for _, t in synthetic_utterances(200, 0.3, seed=1)]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_asr_") as tmp:
        root = Path(tmp)
        directory = build_predictor_dir(root, cfg, build_text_model(root / "kobert", texts, spec))
        whisper = build_standin_whisper(root / "whisper",
                                        dims=WHISPER_SMALL_DIMS if spec["whisper"] == "small" else None)
        for device in devices:
            asr = {"model": str(whisper), "max_new_tokens": spec["tokens"], "batch_size": BATCH_SIZE}
            predictor = Predictor.from_checkpoint(directory, device=device, batch_size=BATCH_SIZE, asr=asr)

            def sync():
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            predictor.predict(items[0][0], sample_rate=SAMPLE_RATE)       # warm-up: load Whisper
            sync()
            start = time.perf_counter()
            for wave, _ in items:
                predictor.predict(wave, sample_rate=SAMPLE_RATE)
            sync()
            one_s = time.perf_counter() - start
            start = time.perf_counter()
            results = list(predictor.predict_many([(wave, None, SAMPLE_RATE) for wave, _ in items]))
            sync()
            batch_s = time.perf_counter() - start
            if any(isinstance(r, Exception) or r.text_source != "asr" for r in results):
                raise RuntimeError("a batched prediction failed or did not use speech recognition")
            n = len(items)
            rows.append(make_row(
                f"predict without transcript (ASR + models), {n} utterances of {spec['seconds']:g} s ({device})",
                "Predictor.predict, one utterance at a time", one_s,
                f"Predictor.predict_many (koemo predict --batch), batch {BATCH_SIZE}", batch_s,
                notes=(f"utterances/s {n / one_s:.2f} vs {n / batch_s:.2f}; Whisper "
                       f"{spec['whisper'] or 'tiny'} shape, {spec['tokens']} tokens each; config "
                       f"{cfg.name}; torch threads {torch.get_num_threads()}"),
                baseline_utt_per_s=n / one_s, candidate_utt_per_s=n / batch_s))
    return rows
