"""Text states for a whole corpus: first pass (tokenise + frozen encoder + store) vs second pass
(tokenise + cache hits), through `koemo.text.TextStateCache`.

Both passes do the same work around the encoder: tokenise every transcript
(`KoBERTTokenizer.batch_encode`), `ensure` the states, then read them all back in batches of 256
(`get_many`, as a training epoch would). The first pass finds an empty cache and runs the
encoder; the second opens the cache from disk and finds every row there.

Transcripts come from the synthetic corpus' sentence generator (`koemo.synth.sentences`), the
tokenizer is a stand-in sentencepiece model trained on them with KoBERT's id layout.
Sizes: tiny = 200 transcripts, a 1-layer hidden-32 encoder, max_length 32 (seconds);
full = 13,462 transcripts (KEMDy20's count), a random-weight encoder of KoBERT's shape
(12 layers, hidden 768; the vocabulary is what sentencepiece learns from the synthetic sentences,
~700 pieces, which leaves the encoder's cost unchanged), max_length 64, batch 64 (seconds on a
GPU, ~15 min on a 2-core CPU). Random weights: timing does not depend on their values.
Measured on one H100 (2026-11-22, two runs): full 8.0 / 8.5 s first pass vs 1.66 / 1.74 s
second pass (4.8x; ~1,600 vs ~8,000 rows/s; the second pass is mostly tokenising in Python);
tiny 0.24 s vs 0.026 s.
"""
from __future__ import annotations

import tempfile

import numpy as np

from benchmarks.common import make_row, timed

SIZES = {
    "tiny": {"rows": 200, "max_length": 32, "batch": 64, "vocab": 400,
             "bert": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
    "full": {"rows": 13462, "max_length": 64, "batch": 64, "vocab": 8002,
             "bert": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}},
}
READ_BATCH = 256


def synthetic_transcripts(n: int, seed: int = 0) -> list[str]:
    from koemo.synth.sentences import make_sentence

    rng = np.random.default_rng(seed)
    return [make_sentence(float(v), rng) for v in rng.uniform(1.0, 5.0, size=n)]


def one_pass(workdir: str, encoder, tokenizer, texts: list[str], spec: dict) -> dict:
    """Tokenise, ensure, read everything back; the cache is opened fresh from disk."""
    from koemo.text import TextStateCache

    cache = TextStateCache(workdir, encoder, tokenizer)
    ids = tokenizer.batch_encode(texts, spec["max_length"])["input_ids"]
    call = cache.ensure(ids, batch_size=spec["batch"], progress=False)
    checksum = 0.0
    for start in range(0, len(ids), READ_BATCH):
        checksum += float(cache.get_many(ids[start:start + READ_BATCH])[:, 0, 0].astype(np.float32).sum())
    return dict(call, checksum=checksum)


def run(size: str) -> list[dict]:
    import torch

    from koemo.text.standin import random_bert, train_kobert_spm
    from koemo.text.tokenizer import KoBERTTokenizer

    spec = SIZES[size]
    texts = synthetic_transcripts(spec["rows"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="bench_text_") as tmp:
        model_file = f"{tmp}/spiece.model"
        with open(model_file, "wb") as fh:
            fh.write(train_kobert_spm(texts, spec["vocab"]))
        tokenizer = KoBERTTokenizer(model_file)
        encoder = random_bert(tokenizer.vocab_size, seed=0, **spec["bert"]).requires_grad_(False).to(device)
        first, first_s = timed(lambda: one_pass(f"{tmp}/w", encoder, tokenizer, texts, spec))
        second, second_s = timed(lambda: one_pass(f"{tmp}/w", encoder, tokenizer, texts, spec))
    if second["computed"] or second["hits"] != len(texts) or first["checksum"] != second["checksum"]:
        raise RuntimeError(f"second pass was not all cache hits with the same states: {second}")
    bert = spec["bert"]
    shape = (f"{bert['num_layers']} layers, hidden {bert['hidden_size']}, vocab {tokenizer.vocab_size}, "
             f"L={spec['max_length']}, batch {spec['batch']}, encoder on {device}")
    return [make_row(
        "text states, whole corpus", "first pass: tokenise + frozen encoder + store", first_s,
        "second pass: tokenise + cache hits", second_s,
        notes=(f"{len(texts)} transcripts ({first['computed']} distinct); {shape}; rows/s "
               f"{len(texts) / first_s:,.0f} vs {len(texts) / second_s:,.0f}; both passes read all "
               f"states back (float16) in batches of {READ_BATCH}"),
        rows=len(texts))]
