"""Prediction latency and throughput of `koemo.Predictor` (a 6 s wav + its transcript).

Setup (both sizes): a predictor directory exported with `koemo.inference.export.export_predictor` from
random-weight models (timing does not depend on the weights' values) and a random-weight
encoder with a sentencepiece tokenizer trained on synthetic transcripts, all built offline.
- full: configs/paper.yaml (faithful: the classifier runs the audio regressor with 4 heads, so
  the audio regressor runs twice: 6 heads for arousal, 4 inside the classifier), a BertModel of
  KoBERT's size (12 layers, hidden 768, vocab 8002, from a BertConfig), 6 s utterances.
- tiny: configs/tiny.yaml and a 1-layer hidden-64 encoder, 1.5 s utterances (seconds).

Rows (CPU; the same rows on the GPU when torch sees one):
1. single-utterance latency, p50 (p95 in the extra columns). Baseline: the naive per-call path,
   `Predictor.from_checkpoint(DIR).predict(wav, text)` on every call (reads the checkpoints,
   rebuilds the three models and the encoder each time: what a script calling a predict
   function per file without keeping the model does; Python start-up not included).
   Candidate: one cached Predictor, `predict(wav, text)` per call (reads + resamples the wav,
   features, tokenizer, encoder, three models).
2. batch throughput over N utterances. Baseline: the cached Predictor, `predict` one utterance
   at a time. Candidate: `predict_many` with batch_size 8 (windows and transcripts of 8
   utterances per model pass). Rows report utterances/s.

Measured 2026-11-22, full size, on the lent machine (one H100, 16 CPU cores, torch 2.11, 16
threads): CPU latency p50 2.52 s naive vs 0.50 s cached (p95 2.84 vs 0.62 s; 5.1x); CPU
throughput 2.08 vs 2.46 utt/s (1.18x); GPU latency p50 2.19 s vs 0.026 s (p95 2.44 vs 0.032 s);
GPU throughput 38.7 vs 117.8 utt/s (3.0x). On the shared 2-core development machine under a
load of ~7 (about half a core free) the CPU rows were 30.5 s vs 18.6 s and 0.056 vs 0.134 utt/s:
numbers from a busy machine, kept only as a bound. At the paper config every window is 512
frames, so a 6 s utterance costs as much as a 16 s one, and the faithful classifier runs the
audio regressor a second time (4 heads).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import make_row

SIZES = {
    "tiny": {"config": "tiny", "seconds": 1.5, "latency_calls": 5, "naive_calls": 2,
             "throughput_items": 8, "vocab": 300,
             "bert": {"hidden_size": 256, "num_layers": 1, "num_heads": 2, "intermediate_size": 128}},
    "full": {"config": "paper", "seconds": 6.0, "latency_calls": 20, "naive_calls": 5,
             "throughput_items": 32, "vocab": 8002,
             "bert": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}},
}
BATCH_SIZE = 8
SAMPLE_RATE = 16000


def synthetic_utterances(n: int, seconds: float, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """Speech-like waves (koemo.synth) and Korean transcripts, deterministic."""
    from koemo.synth.sentences import make_sentence
    from koemo.synth.speech import make_voice, synthesize

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        voice = make_voice("FM"[i % 2], rng)
        wave = synthesize(int(seconds * SAMPLE_RATE), float(rng.uniform(2, 4.5)), voice, rng)
        items.append((wave.astype(np.float32), make_sentence(float(rng.uniform(1, 5)), rng)))
    return items


def build_text_model(out_dir: Path, texts: list[str], spec: dict) -> Path:
    """Tokenizer trained on `texts` + a random encoder of `spec["bert"]` size, saved together."""
    from koemo.text.standin import random_bert, train_kobert_spm
    from koemo.text.tokenizer import KoBERTTokenizer

    out_dir.mkdir(parents=True)
    (out_dir / "spiece.model").write_bytes(train_kobert_spm(texts, spec["vocab"]))
    tokenizer = KoBERTTokenizer(out_dir / "spiece.model")
    tokenizer.save_pretrained(out_dir)
    vocab = max(spec["vocab"], tokenizer.vocab_size)       # full: KoBERT's 8002 embeddings
    random_bert(vocab, seed=0, **spec["bert"]).save_pretrained(out_dir)
    return out_dir


def build_predictor_dir(root: Path, cfg: dict, text_model: Path) -> Path:
    """Random-weight stages of `cfg`, saved as checkpoints and exported as a predictor."""
    import torch

    from koemo.modeling.checkpoint import save_checkpoint
    from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor
    from koemo.inference.export import export_predictor

    torch.manual_seed(0)
    audio, text = AudioRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes)
    stages = {"audio": audio, "text": text, "multimodal": EmoClassifier(cfg.models, cfg.fixes, cfg.data, audio, text)}
    for name, model in stages.items():
        save_checkpoint(root / "stages" / name, model, cfg)
    return export_predictor(*(root / "stages" / name for name in stages), root / "predictor",
                            text_model=str(text_model))


def latencies(fn, calls: int) -> np.ndarray:
    import time

    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return np.array(out)


def device_rows(directory: Path, wav: Path, text: str, items: list, spec: dict, device: str,
                shape: str) -> list[dict]:
    import torch

    from koemo.inference.predictor import Predictor

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def naive():
        Predictor.from_checkpoint(directory, device=device).predict(wav, text)
        sync()

    cached = Predictor.from_checkpoint(directory, device=device, batch_size=BATCH_SIZE)

    def one():
        cached.predict(wav, text)
        sync()

    one()                                                   # warm-up (lazy inits, kernels)
    naive_s = latencies(naive, spec["naive_calls"])
    cached_s = latencies(one, spec["latency_calls"])
    p = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    rows = [make_row(
        f"predict latency, one {spec['seconds']:g} s utterance ({device})",
        "naive: Predictor.from_checkpoint(DIR).predict per call (reload + rebuild)", p(naive_s, 50),
        "cached Predictor.predict", p(cached_s, 50),
        notes=(f"p50 over {spec['naive_calls']} / {spec['latency_calls']} calls; p95 "
               f"{p(naive_s, 95):.3f} s vs {p(cached_s, 95):.3f} s; {shape}"),
        baseline_p95_s=p(naive_s, 95), candidate_p95_s=p(cached_s, 95))]

    def sequential():
        for wave, transcript in items:
            cached.predict(wave, transcript, sample_rate=SAMPLE_RATE)
        sync()

    def batched():
        for result in cached.predict_many([(w, t, SAMPLE_RATE) for w, t in items]):
            if isinstance(result, Exception):
                raise result
        sync()

    seq_s = float(latencies(sequential, 1)[0])
    batch_s = float(latencies(batched, 1)[0])
    n = len(items)
    rows.append(make_row(
        f"predict throughput, {n} utterances of {spec['seconds']:g} s ({device})",
        "cached Predictor.predict, one utterance at a time", seq_s,
        f"Predictor.predict_many, batch_size {BATCH_SIZE}", batch_s,
        notes=f"utterances/s {n / seq_s:.2f} vs {n / batch_s:.2f}; {shape}",
        baseline_utt_per_s=n / seq_s, candidate_utt_per_s=n / batch_s))
    return rows


def run(size: str) -> list[dict]:
    import soundfile as sf
    import torch

    from koemo.config.load import load_config

    spec = SIZES[size]
    cfg = load_config(spec["config"])
    utterances = synthetic_utterances(spec["throughput_items"] + 1, spec["seconds"])
    texts = [t for _, t in synthetic_utterances(200, 0.3, seed=1)] + [t for _, t in utterances]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    bert = spec["bert"]
    shape = (f"config {cfg.name} (window {cfg.features.max_frames} frames), encoder "
             f"{bert['num_layers']} layers / hidden {bert['hidden_size']}, "
             f"torch threads {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        root = Path(tmp)
        text_model = build_text_model(root / "kobert", texts, spec)
        directory = build_predictor_dir(root, cfg, text_model)
        wav = root / "utterance.wav"
        sf.write(wav, utterances[0][0], SAMPLE_RATE, subtype="PCM_16")
        for device in devices:
            rows += device_rows(directory, wav, utterances[0][1], utterances[1:], spec, device, shape)
    return rows
