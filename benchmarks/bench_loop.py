"""Training loop overhead: one epoch of `koemo train`'s loop against the model alone.

For each stage (audio, text, multimodal) on a prepared synthetic workdir, with koemo's own
pieces (`build_stage`, `make_loader`, `loss_function`, `train_epoch`):

- baseline ("model alone"): the same optimizer steps on the same batches, collated once from
  the same shuffled training loader and already on the device; only forward, loss, backward and
  step are timed (no host sync per step).
- candidates ("koemo train loop"): the batches koemo builds for an epoch plus `train_epoch`
  over them, as `train_stage` runs them (tqdm off), once with the stage's data resident on the
  device (`train.resident: true`, koemo.modeling.resident) and once through the DataLoader
  (`false`); the one-time copy onto the device is in the notes, not in the epoch.

ratio = model / loop (1 = no overhead); `loop_over_model` is its inverse, the number issue #14
bounds: at most 1.25 for every stage. Sides are interleaved and each is the best of `repeats`
epochs, after warm-up steps. Sizes: tiny (tiny.yaml, a throwaway workdir: seconds) and full
(demo.yaml's corpus and models, the workdir cached under data/bench/loop-demo/).
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import REPO_ROOT, make_row

SIZES = {"tiny": {"config": "tiny", "repeats": 1, "warmup": 1},
         "full": {"config": "demo", "repeats": 3, "warmup": 3}}
CACHE_DIR = REPO_ROOT / "data" / "bench"
SEED = 1


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def prepared_workdir(cfg: dict, root: Path) -> Path:
    """Synthetic corpus of cfg.synthetic's size, prepared with cfg into root/work (`.complete`
    marks a finished one, so the full size is written once)."""
    from koemo.dataset.prepare import prepare
    from koemo.synth import write_corpus

    workdir, marker = root / "work", root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        syn = cfg.synthetic
        corpus = write_corpus(root / "corpus" / "KEMDy20_v1_1", sessions=syn.sessions,
                              seed=syn.seed, utterances_per_session=syn.utterances_per_session,
                              silent_recordings=syn.silent_recordings,
                              workers=os.cpu_count() or 1,      # same bytes for any count
                              mean_duration=syn.mean_duration)
        prepare(corpus, workdir, cfg, progress=False)
        marker.touch()
    return workdir


def _job(stage: str, workdir: Path, cfg: dict, run_dir: Path, device):
    from koemo.modeling.stage import build_stage

    model = None
    if stage == "multimodal":   # fresh regressors: their speed, not their training, matters here
        from koemo.modeling.fusion import build_classifier
        from koemo.modeling.models import AudioRegressor, TextRegressor
        model = build_classifier("attention_lstm", cfg.models, cfg.fixes, cfg.data, AudioRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes))
    return build_stage(stage, workdir, cfg, SEED, run_dir=run_dir, device=device, model=model,
                       splits=("train",), progress=False)


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class FirstSteps:
    """The first `steps` batches of a loader (all when None), with the length train_epoch's
    bar asks for."""

    def __init__(self, loader, steps: int | None):
        self.loader = loader
        self.steps = len(loader) if steps is None else min(steps, len(loader))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.steps)


def stage_rows(stage: str, workdir: Path, cfg: dict, run_dir: Path, device, repeats: int,
               warmup: int, max_steps: int | None = None) -> list[dict]:
    """Rows for one stage: model alone vs the loop, resident and through the DataLoader, over
    one epoch or its first `max_steps` steps (the same steps on every side)."""
    from koemo.modeling.precision import autocast_for, resolve_precision
    from koemo.modeling.resident import make_resident
    from koemo.modeling.train import epoch_seed, loss_function, train_epoch
    from koemo.modeling.stage import make_loader

    precision = resolve_precision(cfg.train.precision, device)
    settings, num_workers = cfg.train.stage(stage), int(cfg.train.num_workers)
    job = _job(stage, workdir, cfg, run_dir, device)
    started = time.perf_counter()
    on_device = make_resident(job.datasets, device)["train"]
    _sync(device)
    copy_s = time.perf_counter() - started
    model = job.model.to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    loss_fn = loss_function(job, cfg, device)
    paths = {"resident": on_device, "DataLoader": job.datasets["train"]}

    def loader(path):
        return FirstSteps(make_loader(paths[path], settings.batch_size, device, num_workers,
                                      shuffle_seed=epoch_seed(SEED, 0)), max_steps)

    batches = [_to_device(b, device) for b in loader("DataLoader")]     # collated once, resident

    def model_step(batch):
        # train_epoch's step without its bookkeeping (loss sum, tqdm).
        with autocast_for(device, precision):
            loss = loss_fn(job.forward(model, batch, device), batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def model_alone() -> float:
        _sync(device)
        started = time.perf_counter()
        for batch in batches:
            model_step(batch)
        _sync(device)
        return time.perf_counter() - started

    def loop(path) -> float:
        _sync(device)
        started = time.perf_counter()
        train_epoch(job, model, loader(path), optimizer, loss_fn, device, precision, progress=False)
        _sync(device)
        return time.perf_counter() - started

    for batch in batches[:warmup]:          # kernels, allocator, Adam state
        model_step(batch)
    times = {"model": [], **{path: [] for path in paths}}
    for _ in range(repeats):                # interleaved: drift on a shared machine hits all
        for path in paths:
            times[path].append(loop(path))
        times["model"].append(model_alone())
    alone_s = min(times["model"])
    rows = len(job.datasets["train"])
    span = "one epoch" if max_steps is None or max_steps >= len(loader("DataLoader").loader) \
        else "first steps of an epoch"
    out = []
    for path in paths:
        loop_s = min(times[path])
        extra = f", copy onto the device once: {copy_s:.2f} s" if path == "resident" else ""
        out.append(make_row(
            f"loop: {stage} ({path})", "model alone (batches in memory)", alone_s,
            f"koemo train loop ({path} + train_epoch)", loop_s,
            notes=f"{device.type}, {precision}; {span}: {len(batches)} steps x batch "
                  f"{settings.batch_size} (epoch of {rows} rows), num_workers={num_workers}, "
                  f"best of {repeats}{extra}",
            loop_over_model=loop_s / alone_s))
    return out


def run(size: str = "tiny") -> list[dict]:
    from koemo.config.load import load_config
    from koemo.modeling.precision import resolve_device

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    spec = SIZES[size]
    cfg = load_config(spec["config"])
    device = resolve_device(cfg.train.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)      # as train_stage does
    with tempfile.TemporaryDirectory(prefix="bench_loop_") as tmp:
        root = CACHE_DIR / "loop-demo" if size == "full" else Path(tmp) / "data"
        workdir = prepared_workdir(cfg, root)
        return [row for stage in ("audio", "text", "multimodal")
                for row in stage_rows(stage, workdir, cfg, Path(tmp) / "runs" / stage, device,
                                      spec["repeats"], spec["warmup"])]
