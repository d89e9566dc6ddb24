"""Devices and numeric precision for training and evaluation.

`train.device`: auto | cpu | cuda[:N]. `train.precision`:
  fp32  full precision everywhere (the paper's numbers; the default in configs/paper.yaml);
  bf16  autocast to bfloat16 on CUDA;
  fp16  autocast to float16 on CUDA, with a gradient scaler (float16 gradients underflow without);
  auto  the fastest safe choice for the device: bf16 where the GPU supports it
        (torch.cuda.is_bf16_supported(): Ampere and later), fp16 + gradient scaler where it does
        not (T4, V100), fp32 on the CPU.
Every mixed setting falls back to fp32 on the CPU (autocast is CUDA-only here), so
`resolve_precision` returns what a run really computes in; runs record that value.
"""
from __future__ import annotations

import contextlib
import os

import torch

from koemo.errors import KoemoInputError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KoemoInputError(f"train.device={spec!r} but no CUDA device is available")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run on `device` computes in: fp32, bf16 or fp16 (see the module doc)."""
    if precision not in PRECISIONS:
        raise KoemoInputError(f"train.precision must be one of {', '.join(PRECISIONS)}, "
                              f"not {precision!r}")
    if device.type != "cuda":
        return "fp32"
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_for(device: torch.device, precision: str):
    """Mixed precision on CUDA only; fp32 (and any CPU run) gets a no-op context.
    `precision` may be `auto` (resolved here) or already resolved."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_DTYPES[resolved])


def grad_scaler_for(device: torch.device, precision: str):
    """A torch.amp.GradScaler for fp16 on CUDA (loss scaling keeps small float16 gradients from
    flushing to zero); None otherwise (bf16 has fp32's exponent range and needs none)."""
    if resolve_precision(precision, device) != "fp16":
        return None
    return torch.amp.GradScaler("cuda")


def maybe_accelerator(precision: str, device: torch.device):
    """An accelerate.Accelerator under a multi-process launch (`accelerate launch`, torchrun:
    WORLD_SIZE > 1), else None. train.device=cpu keeps the processes on the CPU (gloo).
    `precision` must be resolved (fp32 | bf16 | fp16); accelerate then owns the fp16 scaler."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    try:
        from accelerate import Accelerator
    except ImportError:
        return None
    return Accelerator(mixed_precision={"fp32": "no"}.get(precision, precision),
                       cpu=device.type == "cpu")
