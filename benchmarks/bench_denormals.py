"""Issue "Performance": how much do denormal numbers cost on THIS CPU, and what does
torch.set_flush_denormal(True) buy?

The 2x training-step target assumed the measurement in the shared notes ("without
set_flush_denormal the RNN backward hits denormals and runs 3-8x slower"). That penalty is a
property of the processor: some cores take a microcode assist for every denormal operand,
others handle them at full speed. These rows measure it directly, in one run:

1. the same element-wise multiply-add on an array of denormal floats vs normal floats
   (ratio = denormal / normal time: ~1 means no penalty on this CPU);
2. a GRU forward + backward whose input is half padding (the original reads the last step, so
   its gradient decays through the padding into the denormal range), with flushing off vs on,
   plus the share of denormal values flushing removed from the input gradient.
"""
from __future__ import annotations

import torch

FLOAT32_TINY = torch.finfo(torch.float32).tiny      # smallest normal float32
SIZES = {
    # (elements for the element-wise row, GRU batch, steps, input width, hidden, repeats)
    "tiny": {"elements": 1 << 16, "gru": (4, 64, 64, 16), "repeats": 3},
    "full": {"elements": 1 << 24, "gru": (32, 512, 768, 64), "repeats": 3},   # the paper's audio GRU
}


def _seconds(fn, repeats: int) -> float:
    """Best of `repeats` calls after one warm-up call."""
    from benchmarks.common import timed

    fn()
    return timed(fn, repeats)[1]


def _elementwise_row(elements: int, repeats: int) -> dict:
    from benchmarks.common import make_row

    scale = torch.full((elements,), 0.5)
    normal = torch.full((elements,), 1e-3)
    denormal = torch.full((elements,), FLOAT32_TINY / 64)      # ~1.8e-40: denormal
    torch.set_flush_denormal(False)
    slow = _seconds(lambda: denormal * scale + denormal, repeats)
    fast = _seconds(lambda: normal * scale + normal, repeats)
    return make_row(f"x * 0.5 + x on {elements:,} float32", "denormal x", slow, "normal x", fast,
                    notes="ratio ~1: this CPU has no denormal penalty for element-wise math")


def _denormal_share(grad: torch.Tensor) -> float:
    tiny = (grad != 0) & (grad.abs() < FLOAT32_TINY)
    return float(tiny.float().mean())


def _gru_row(batch: int, steps: int, width: int, hidden: int, repeats: int) -> dict:
    from benchmarks.common import make_row

    torch.manual_seed(0)
    gru = torch.nn.GRU(width, hidden, num_layers=2, bias=False, batch_first=True)
    inputs = torch.randn(batch, steps, width) * 0.5
    inputs[:, steps // 2:] = 0                              # padding, as stored
    shares = {}

    def step(flush: bool):
        def run():
            torch.set_flush_denormal(flush)
            x = inputs.clone().requires_grad_(True)
            out, _ = gru(x)
            out[:, -1].sum().backward()                     # the original's last-step readout
            shares[flush] = _denormal_share(x.grad)
        return run

    try:
        slow = _seconds(step(False), repeats)
        fast = _seconds(step(True), repeats)
    finally:
        torch.set_flush_denormal(False)
    return make_row(f"GRU({width}->{hidden}, 2 layers) fwd+bwd [{batch},{steps},{width}], half padding",
                    "denormals kept", slow, "set_flush_denormal(True)", fast,
                    notes=f"denormal share of the input gradient: {shares[False]:.4f} kept, "
                          f"{shares[True]:.4f} with flushing")


def run(size: str = "tiny") -> list[dict]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    spec = SIZES[size]
    rows = [_elementwise_row(spec["elements"], spec["repeats"]),
            _gru_row(*spec["gru"], spec["repeats"])]
    for row in rows:
        row.update(size=size, device="cpu", threads=torch.get_num_threads())
    return rows


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "tiny"):
        print(row)
