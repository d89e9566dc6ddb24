"""Issue "Performance": one training step (forward + backward) of our modules run the
original way (the authors' manual attention, denormals left on) vs our way (SDPA attention,
torch.set_flush_denormal(True)) on CPU, same weights and inputs.

size "full": paper shapes (batch 32, audio [32,2,512,128] -> [32,512,768], classifier
[32,576,768]) with 1 transformer layer per model so it takes minutes on a small CPU; the
step time grows about linearly with layers. size "tiny": the tiny config, seconds.
Each row also reports the largest output difference between the two runs (eval mode,
attention dropout off): the speed-up must not change the numbers.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from koemo.config import load_config
from koemo.modeling.layers import TransformerLayer, set_attention_impl
from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor

SIZES = {
    "tiny": {"config": "tiny", "batch": 4, "repeats": 3, "overrides": []},
    "full": {"config": "paper", "batch": 32, "repeats": 3,
             "overrides": ["models.audio.n_layers=1", "models.text.n_layers=1",
                           "models.multimodal.n_layers=1"]},
}
ALL_FIXES_OFF_EXCEPT_EVAL_DROPOUT = ["fixes.eval_attention_dropout_off=true"]


def _time_step(step: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median seconds of `step` (forward + backward) after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _compare(model: torch.nn.Module, forward: Callable[[], torch.Tensor], repeats: int) -> dict:
    """Time a training step both ways and measure the eval-mode output difference."""
    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        out = forward()
        out.float().square().mean().backward()
        return out

    results = {}
    for label, impl, flush in (("baseline", "manual", False), ("candidate", "sdpa", True)):
        set_attention_impl(model, impl)
        torch.set_flush_denormal(flush)
        try:
            model.train()
            seconds = _time_step(step, repeats)
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
    steps, bins = cfg["features"]["max_frames"], cfg["features"]["n_mels"]
    feats = -80 * torch.rand(batch, 2, steps, bins, generator=gen)
    lengths = torch.randint(steps // 4, steps + 1, (batch,), generator=gen)
    for i, n in enumerate(lengths.tolist()):
        feats[i, :, n:] = 0  # zero padding, as stored
    return feats, lengths


def run(size: str = "tiny") -> list[dict]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    spec = SIZES[size]
    cfg = load_config(spec["config"], spec["overrides"] + ALL_FIXES_OFF_EXCEPT_EVAL_DROPOUT)
    torch.manual_seed(0)
    batch, repeats = spec["batch"], spec["repeats"]
    d_model = cfg["models"]["d_model"]
    steps = cfg["features"]["max_frames"]
    tokens = cfg["text"]["max_length"]
    notes = f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    rows = []

    mm = cfg["models"]["audio"]
    layer = TransformerLayer(d_model, mm["num_heads"], mm["inner_dim"], mm["dropout"],
                             dropout_in_eval=False)
    x = torch.randn(batch, steps, d_model)
    rows.append({"benchmark": f"transformer layer fwd+bwd [{batch},{steps},{d_model}]",
                 **_compare(layer, lambda: layer(x), repeats)})

    audio = AudioRegressor(cfg)
    feats, lengths = _audio_inputs(cfg, batch)
    rows.append({"benchmark": f"audio regressor step ({mm['n_layers']} layer) [{batch},2,{steps},"
                              f"{cfg['features']['n_mels']}]",
                 **_compare(audio, lambda: audio(feats, lengths)["pred"], repeats)})

    clf = EmoClassifier(cfg, AudioRegressor(cfg), TextRegressor(cfg))
    gen = torch.Generator().manual_seed(1)
    audio_hidden = torch.randn(batch, steps, d_model, generator=gen)
    text_hidden = torch.randn(batch, tokens, d_model, generator=gen)
    audio_mask = (feats[:, 0] != 0).all(dim=-1)
    text_mask = torch.arange(tokens)[None, :] < torch.randint(3, tokens + 1, (batch, 1), generator=gen)
    rows.append({"benchmark": f"classifier step from cache ({cfg['models']['multimodal']['n_layers']} "
                              f"layer) [{batch},{steps + tokens},{d_model}]",
                 **_compare(clf, lambda: clf(audio_hidden, audio_mask, text_hidden, text_mask)["logits"],
                            repeats)})
    for row in rows:
        row.update(baseline="manual attention, denormals on (original)",
                   candidate="SDPA + set_flush_denormal(True)", notes=notes, size=size)
    return rows


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "tiny"):
        print(row)
