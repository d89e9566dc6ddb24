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
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping

import torch

from koemo.config.schema import CompileMode, CompileSetting, Precision, Stage, Train
from koemo.errors import KoemoInputError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KoemoInputError(f"train.device={spec!r} but no CUDA device is available")
    return device


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """The precision a run on `device` computes in: fp32, bf16 or fp16 (see the module doc;
    `precision` is train.precision, koemo.config.schema.Precision, or already resolved)."""
    if device.type != "cuda":
        return "fp32"
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_for(device: torch.device, precision: Precision) -> ContextManager[Any]:
    """Mixed precision on CUDA only; fp32 (and any CPU run) gets a no-op context.
    `precision` may be `auto` (resolved here) or already resolved."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_DTYPES[resolved])


def grad_scaler_for(device: torch.device, precision: Precision) -> torch.amp.GradScaler | None:
    """A torch.amp.GradScaler for fp16 on CUDA (loss scaling keeps small float16 gradients from
    flushing to zero); None otherwise (bf16 has fp32's exponent range and needs none)."""
    if resolve_precision(precision, device) != "fp16":
        return None
    return torch.amp.GradScaler("cuda")


def maybe_accelerator(precision: Precision, device: torch.device) -> Any:
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


def compile_mode(setting: CompileSetting | Mapping[Stage, CompileSetting],
                 stage: Stage) -> CompileMode | None:
    """`train.compile`: false, true (torch.compile's default mode), a mode name (one of
    koemo.config.schema.CompileMode), or a mapping stage -> one of those (e.g. {text:
    reduce-overhead}: CUDA graphs for the latency-bound text stage only). None: the stage
    trains uncompiled."""
    chosen = setting.get(stage, False) if isinstance(setting, Mapping) else setting
    if chosen is False or chosen is None:
        return None
    return "default" if chosen is True else chosen


def compiled_model(model: torch.nn.Module, setting: CompileSetting | Mapping[Stage, CompileSetting],
                   stage: Stage, device: torch.device) -> Any:
    """The module `train.compile` asks for: torch.compile'd, or `model` itself (with one note
    saying why) where that cannot work: reduce-overhead records CUDA graphs, so off CUDA the
    stage trains uncompiled; so does a torch without a working torch.compile. The uncompiled
    module computes the same results."""
    mode = compile_mode(setting, stage)
    if mode is None:
        return model
    if mode == "reduce-overhead" and device.type != "cuda":
        print(f"[koemo] train.compile={mode} records CUDA graphs and needs a CUDA device: the "
              f"{stage} stage trains uncompiled on {device.type}", flush=True)
        return model
    try:
        return torch.compile(model, mode=None if mode == "default" else mode)
    except Exception as err:        # e.g. a Python version this torch's compiler does not support
        print(f"[koemo] torch.compile is not available here ({type(err).__name__}: {err}): the "
              f"{stage} stage trains uncompiled", flush=True)
        return model


def configure_tf32(setting: bool, device: torch.device) -> bool:
    """`train.tf32`: false (the default: full fp32 matrix products and convolutions, as the
    paper's numbers) or true (TF32 tensor cores on Ampere and later: ~10 mantissa bits in
    products, fp32 accumulation). Sets torch's matmul and cuDNN switches on CUDA only (note
    torch's own default keeps cuDNN's TF32 on; false turns it off); a no-op on a CPU.
    Returns whether TF32 is on for the run."""
    if device.type != "cuda":
        return False
    enabled = bool(setting)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return enabled


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: its device, the precision it resolved to (`auto` and any
    mixed setting on a CPU resolve here), TF32, and the accelerate launch it is part of."""
    device: torch.device
    precision: Precision
    tf32: bool
    accelerator: Any = None                 # accelerate.Accelerator under a multi-process launch

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files (always, without accelerate)."""
        return self.accelerator is None or bool(self.accelerator.is_main_process)


def set_up_runtime(train: Train) -> Runtime:
    """The run's device and precision from `train`, an accelerate launch joined where there
    is one, TF32 set, denormals flushed on a CPU (the RNN backward runs several times slower
    without)."""
    device = resolve_device(train.device)
    precision = resolve_precision(train.precision, device)
    accelerator = maybe_accelerator(precision, device)
    if accelerator is not None:
        device = accelerator.device
        precision = resolve_precision(precision, device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    return Runtime(device, precision, configure_tf32(train.tf32, device), accelerator)
