"""Issue "Performance": one training step (forward + backward) of our modules run the
original way (the authors' manual attention, denormals left on) vs our way (SDPA attention,
torch.set_flush_denormal(True)) on CPU, same weights and inputs.

size "full": paper shapes (batch 32, audio [32,2,512,128] -> [32,512,768], classifier
[32,576,768]) with 1 transformer layer per model so it takes minutes on a small CPU; the
step time grows about linearly with layers. size "tiny": the tiny config, seconds.
Each row also reports the largest output difference between the two runs (eval mode,
attention dropout off): the speed-up must not change the numbers. Where CUDA is available the
same rows are repeated on the GPU (manual vs SDPA; denormal flushing is a CPU setting).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from koemo.config.load import load_config
from koemo.modeling.layers import TransformerLayer, set_attention_impl
from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor

SIZES = {
    "tiny": {"config": "tiny", "batch": 4, "repeats": 3, "overrides": []},
    "full": {"config": "paper", "batch": 32, "repeats": 3,
             "overrides": ["models.audio.n_layers=1", "models.text.n_layers=1",
                           "models.multimodal.n_layers=1"]},
}
# Faithful otherwise; eval outputs deterministic so the two runs can be compared.
DETERMINISTIC_EVAL = ["fixes.eval_attention_dropout_off=true"]


def _time_step(step: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> float:
    """Median seconds of `step` (forward + backward) after one warm-up call."""
    def timed() -> float:
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()
    return statistics.median(timed() for _ in range(repeats))


def _compare(model: torch.nn.Module, forward: Callable[[], torch.Tensor], repeats: int,
             device: torch.device) -> dict:
    """Time a training step both ways and measure the eval-mode output difference."""
    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        out = forward()
        out.float().square().mean().backward()
        return out

    results = {}
    for label, impl, flush in (("baseline", "manual", False), ("candidate", "sdpa", True)):
        set_attention_impl(model, impl)
        torch.set_flush_denormal(flush and device.type == "cpu")
        try:
            model.train()
            seconds = _time_step(step, repeats, device)
            model.eval()
            with torch.no_grad():
                output = forward().detach().clone()
        finally:
            torch.set_flush_denormal(False)
        results[label] = (seconds, output)
    (base_s, base_out), (cand_s, cand_out) = results["baseline"], results["candidate"]
    return {"baseline_s": round(base_s, 4), "candidate_s": round(cand_s, 4),
            "ratio": round(base_s / cand_s, 2),
            "max_abs_diff": float((base_out - cand_out).abs().max())}


def _audio_inputs(cfg: dict, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    steps, bins = cfg.features.max_frames, cfg.features.n_mels
    feats = -80 * torch.rand(batch, 2, steps, bins, generator=gen)
    lengths = torch.randint(steps // 4, steps + 1, (batch,), generator=gen)
    for i, n in enumerate(lengths.tolist()):
        feats[i, :, n:] = 0  # zero padding, as stored
    return feats, lengths


def _rows(cfg: dict, batch: int, repeats: int, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    d_model = cfg.models.d_model
    steps = cfg.features.max_frames
    tokens = cfg.text.max_length
    rows = []

    spec = cfg.models.audio
    layer = TransformerLayer(d_model, spec.num_heads, spec.inner_dim, spec.dropout,
                             dropout_in_eval=False).to(device)
    x = torch.randn(batch, steps, d_model, device=device)
    rows.append({"benchmark": f"transformer layer fwd+bwd [{batch},{steps},{d_model}]",
                 **_compare(layer, lambda: layer(x), repeats, device)})

    audio = AudioRegressor(cfg.models, cfg.fixes).to(device)
    feats, lengths = (t.to(device) for t in _audio_inputs(cfg, batch))
    rows.append({"benchmark": f"audio regressor step ({spec.n_layers} layer) [{batch},2,{steps},"
                              f"{cfg.features.n_mels}]",
                 **_compare(audio, lambda: audio(feats, lengths)["pred"], repeats, device)})

    clf = EmoClassifier(cfg.models, cfg.fixes, cfg.data, AudioRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes)).to(device)
    gen = torch.Generator().manual_seed(1)
    audio_hidden = torch.randn(batch, steps, d_model, generator=gen).to(device)
    text_hidden = torch.randn(batch, tokens, d_model, generator=gen).to(device)
    audio_mask = (feats[:, 0] != 0).all(dim=-1)
    text_mask = (torch.arange(tokens)[None, :] < torch.randint(3, tokens + 1, (batch, 1),
                                                               generator=gen)).to(device)
    rows.append({"benchmark": f"classifier step from cache ({cfg.models.multimodal.n_layers} "
                              f"layer) [{batch},{steps + tokens},{d_model}]",
                 **_compare(clf, lambda: clf(audio_hidden, audio_mask, text_hidden, text_mask)["logits"],
                            repeats, device)})
    if device.type == "cuda":
        notes = f"GPU {torch.cuda.get_device_name(device)}, fp32, torch {torch.__version__}"
        candidate = "SDPA"
    else:
        notes = f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
        candidate = "SDPA + set_flush_denormal(True)"
    for row in rows:
        row.update(baseline="manual attention, denormals on (original)", candidate=candidate,
                   notes=notes, device=device.type)
    return rows


def run(size: str = "tiny") -> list[dict]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    spec = SIZES[size]
    cfg = load_config(spec["config"], spec["overrides"] + DETERMINISTIC_EVAL)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [row for device in devices for row in _rows(cfg, spec["batch"], spec["repeats"], device)]
    for row in rows:
        row["size"] = size
    return rows


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "tiny"):
        print(row)
