"""Epoch time of each training stage at the paper's configuration, against the paper's Colab figures.

Synthetic data of the paper's shapes (random mel+delta [B,2,512,128], random KoBERT-size states
[B,64,768]); `steps` timed training steps after warm-up, extrapolated to one epoch of the
paper's augmented train set (10,043 rows; audio batch 32, text and multimodal batch 16).

Rows (ratio = baseline_s / candidate_s):
- text: KoBERT forward every step, as the original trained (baseline), vs states read from the
  cache (candidate). The paper reports ~45 s/epoch for its text regressor on Colab.
- multimodal: frozen regressors recomputed every step, as the original (baseline), vs their
  outputs read from the cache (candidate). The paper reports ~5 min/epoch on Colab.
- audio: fp32 (baseline) vs bf16 autocast (candidate) on CUDA; fp32 twice on a CPU.
The paper's figures are quoted in `notes`, never used as a measured side.
"""
from __future__ import annotations

import time

import torch

from koemo.reporting import paper_numbers as P

TRAIN_ROWS = P.SPLIT_SIZES["train_augmented"]
SIZES = {
    "tiny": {"config": "tiny", "steps": 2, "batch": {"audio": 4, "text": 4, "multimodal": 4},
             "bert": {"num_layers": 1, "num_heads": 2, "intermediate_size": 128}},
    "full": {"config": "paper", "steps": 20, "batch": {"audio": 32, "text": 16, "multimodal": 16},
             "bert": {"num_layers": 12, "num_heads": 12, "intermediate_size": 3072}},
}


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_seconds(step, steps: int, device) -> float:
    step()  # warm-up: kernels, allocator
    step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - started) / steps


def _trainer(model, params, loss_of, precision: str, device):
    optimizer = torch.optim.Adam(params, lr=2e-5)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None and device.type == "cuda"):
            loss = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def run(size: str = "tiny") -> list[dict]:
    from benchmarks.common import make_row
    from koemo.config.load import load_config
    from koemo.modeling.fusion import build_classifier
    from koemo.modeling.models import AudioRegressor, TextRegressor, text_input_dim
    from koemo.text.standin import random_bert

    spec = SIZES[size]
    cfg = load_config(spec["config"], ["fixes.eval_attention_dropout_off=true"])
    device, steps, batch = _device(), spec["steps"], spec["batch"]
    torch.manual_seed(0)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    feats_cfg, length, d_model = cfg.features, cfg.text.max_length, cfg.models.d_model
    rows = []

    def epoch(stage: str, seconds_per_step: float) -> float:
        return seconds_per_step * -(-TRAIN_ROWS // batch[stage])

    # audio: fp32 vs bf16 autocast
    b = batch["audio"]
    feats = (torch.rand(b, 2, feats_cfg.max_frames, feats_cfg.n_mels, device=device) * -80)
    lengths = torch.full((b,), feats_cfg.max_frames, device=device)
    target = torch.rand(b, device=device) * 4 + 1
    audio = AudioRegressor(cfg.models, cfg.fixes).to(device).train()
    audio_loss = lambda: torch.sqrt(((audio(feats, lengths)["pred"].float() - target) ** 2).mean())  # noqa: E731
    fp32 = _step_seconds(_trainer(audio, audio.parameters(), audio_loss, "fp32", device), steps, device)
    low = "bf16" if device.type == "cuda" else "fp32"
    fast = _step_seconds(_trainer(audio, audio.parameters(), audio_loss, low, device), steps, device)
    rows.append(make_row("epoch: audio regressor", "fp32", epoch("audio", fp32), low,
                         epoch("audio", fast), notes=f"{device.type}; {steps} steps x batch {b}, "
                         f"extrapolated to {TRAIN_ROWS} rows; the paper gives no audio figure"))

    # text: KoBERT forward every step vs cached states
    b = batch["text"]
    bert = random_bert(8002, seed=0, hidden_size=text_input_dim(cfg.models), **spec["bert"]).to(device).eval().requires_grad_(False)
    ids = torch.randint(5, 8002, (b, length), device=device)
    mask = torch.ones(b, length, dtype=torch.long, device=device)
    states = torch.randn(b, length, bert.config.hidden_size, device=device)
    text = TextRegressor(cfg.models, cfg.fixes).to(device).train()
    target = torch.rand(b, device=device) * 4 + 1

    def text_with_bert():
        with torch.no_grad():
            hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        return torch.sqrt(((text(hidden, mask)["pred"].float() - target) ** 2).mean())
    text_cached = lambda: torch.sqrt(((text(states, mask)["pred"].float() - target) ** 2).mean())  # noqa: E731
    slow = _step_seconds(_trainer(text, text.parameters(), text_with_bert, "fp32", device), steps, device)
    fast = _step_seconds(_trainer(text, text.parameters(), text_cached, "fp32", device), steps, device)
    rows.append(make_row("epoch: text regressor", "KoBERT every step (original)", epoch("text", slow),
                         "cached KoBERT states", epoch("text", fast),
                         notes=f"{device.type}, fp32; paper (reported, Colab GPU): "
                               f"~{P.RUNTIME['text_s_per_epoch']} s/epoch"))

    # multimodal: recompute frozen regressors every step vs cached frozen outputs
    b = batch["multimodal"]
    classifier = build_classifier("attention_lstm", cfg.models, cfg.fixes, cfg.data, AudioRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes)).to(device)
    classifier.train()
    feats, lengths = feats[:1].expand(b, -1, -1, -1).contiguous(), lengths[:1].expand(b).contiguous()
    states = states[:1].expand(b, -1, -1).contiguous()
    mask = mask[:1].expand(b, -1).contiguous()
    labels = torch.randint(0, 5, (b,), device=device)
    with torch.no_grad():
        frozen = classifier.frozen_features(feats, lengths, states, mask)
    frozen = [frozen[k] for k in ("audio_hidden", "audio_mask", "text_hidden", "text_mask")]
    trainable = [p for p in classifier.parameters() if p.requires_grad]
    ce = torch.nn.functional.cross_entropy
    raw = lambda: ce(classifier.forward_raw(feats, lengths, states, mask)["logits"].float(), labels)  # noqa: E731
    cached = lambda: ce(classifier(*frozen)["logits"].float(), labels)  # noqa: E731
    slow = _step_seconds(_trainer(classifier, trainable, raw, "fp32", device), steps, device)
    fast = _step_seconds(_trainer(classifier, trainable, cached, "fp32", device), steps, device)
    rows.append(make_row("epoch: multimodal classifier", "frozen regressors every step (original)",
                         epoch("multimodal", slow), "cached frozen outputs", epoch("multimodal", fast),
                         notes=f"{device.type}, fp32; paper (reported, Colab GPU): "
                               f"~{P.RUNTIME['multimodal_s_per_epoch']} s/epoch"))
    return rows
