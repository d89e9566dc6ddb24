"""Per-epoch files: what the training thread waits for at the end of every epoch.

For each stage's model (paper shapes at size full, tiny.yaml's at tiny), one improving epoch's
files (`last/` and `best/` checkpoints, the training state with Adam's moments):

- baseline: written in the training thread as koemo did before (`save_checkpoint` twice, then
  the training state), the training thread blocked throughout;
- candidate: `train.background_writes` (koemo.modeling.epoch_writer): the training thread takes
  CPU copies and hands them to the writer thread; timed is the training thread's share. The
  writer's own time (last + a link for best + state) is in the notes.

Best of `repeats`; files go to a temporary folder on the same disk as the repository.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import REPO_ROOT, make_row

SIZES = {"tiny": {"config": "tiny", "repeats": 1}, "full": {"config": "paper", "repeats": 3}}


def _models(cfg: dict) -> dict:
    from koemo.modeling.fusion import build_classifier
    from koemo.modeling.models import AudioRegressor, TextRegressor

    torch.manual_seed(0)
    return {"audio": AudioRegressor(cfg.models, cfg.fixes), "text": TextRegressor(cfg.models, cfg.fixes),
            "multimodal": build_classifier("attention_lstm", cfg.models, cfg.fixes, cfg.data, AudioRegressor(cfg.models, cfg.fixes),
                                           TextRegressor(cfg.models, cfg.fixes))}


def _optimizer(model):
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-5)
    for parameter in trainable:             # Adam's moments exist after a first step
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)


def stage_row(stage: str, model, cfg: dict, root: Path, repeats: int) -> dict:
    from koemo.modeling.checkpoint import checkpoint_snapshot, save_checkpoint
    from koemo.modeling.epoch_writer import EpochWriter, write_epoch_files
    from koemo.modeling.resume import counters_snapshot, write_counters

    optimizer, scheduler = _optimizer(model)
    counters = {"epoch": 1, "best": 0.5, "bad_epochs": 0, "stopped_early": False}
    meta = {"epoch": 1}
    log = [{"epoch": 1, "train_loss": 1.0, "valid_loss": 0.5}]

    def foreground() -> float:
        run_dir = Path(tempfile.mkdtemp(dir=root))
        started = time.perf_counter()
        save_checkpoint(run_dir / "best", model, cfg, meta)
        save_checkpoint(run_dir / "last", model, cfg, meta)
        write_counters(run_dir, optimizer, scheduler, counters, "fp", "data")
        return time.perf_counter() - started

    def background() -> tuple[float, float]:
        run_dir = Path(tempfile.mkdtemp(dir=root))
        writer = EpochWriter(background=True)
        started = time.perf_counter()
        writer.submit(write_epoch_files, run_dir, checkpoint_snapshot(model, cfg, meta), True,
                      log, counters_snapshot(optimizer, scheduler, counters, "fp", "data"))
        blocked = time.perf_counter() - started
        writer.close()
        return blocked, time.perf_counter() - started

    fore, back = [], []
    for _ in range(repeats):
        fore.append(foreground())
        back.append(background())
    blocked, total = min(back)
    size_mb = sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1e6
    return make_row(f"epoch files: {stage}", "written in the training thread", min(fore),
                    "background writer (training thread's share)", blocked,
                    notes=f"{cfg.name} shapes, weights {size_mb:.0f} MB; writer thread "
                          f"{total:.2f} s in all; best of {repeats}")


def run(size: str = "tiny") -> list[dict]:
    from koemo.config.load import load_config

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    cfg = load_config(SIZES[size]["config"])
    (REPO_ROOT / "data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_epoch_files_", dir=REPO_ROOT / "data") as tmp:
        return [stage_row(stage, model, cfg, Path(tmp), SIZES[size]["repeats"])
                for stage, model in _models(cfg).items()]
