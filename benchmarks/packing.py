"""Packing one device (issue #24): throughput of N runs at once per stage, and trimmed against
untrimmed batches. The `packing` part of benchmarks/paper_scale.py.

- concurrency: for N in 1, 2, 4, 8, N spawned processes (as `reproduce.runs_per_device`
  trains them) each build the stage's model at the config's shapes and take training steps on
  random batches of those shapes (data loading is not what N changes), starting together at a
  barrier. Reported: seconds per run for the steps, samples per second summed over the runs,
  the gain over one run, each run's peak allocated memory beside koemo's footprint estimate
  (koemo.experiments.footprint, without resident data), so the estimate can be checked.
- trim: the corrected config's real batches (the prepared workdir's lengths) through
  `train_epoch` and `predict`, whole and cut to their longest valid length
  (koemo.modeling.trim.trim_batch), and the mean fraction of time steps kept. Audio and text:
  the classifier's trimming only cuts its text tail (at most max_length of its
  max_frames + max_length positions).
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

STAGES = ("audio", "text", "multimodal")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _random_stage(stage: str, cfg: dict, device, generator: torch.Generator):
    """(model, batch maker, loss) for one stage at the config's padded shapes."""
    from koemo.config.load import text_input_dim
    from koemo.experiments.footprint import sequence_length
    from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor
    from koemo.modeling.stage import cached_forward, regressor_forward

    batch_size = int(cfg.train.stage(stage).batch_size)
    frames, tokens = int(cfg.features.max_frames), int(cfg.text.max_length)
    d_model, steps = int(cfg.models.d_model), sequence_length(cfg, stage)

    def mask(length: int) -> torch.Tensor:
        valid = torch.randint(max(1, length // 4), length + 1, (batch_size,), generator=generator)
        return torch.arange(length)[None] < valid[:, None]

    if stage == "audio":
        model = AudioRegressor(cfg.models, cfg.fixes)
        make = lambda: {"feats": torch.randn(batch_size, 2, steps, int(cfg.features.n_mels),  # noqa: E731
                                             generator=generator),
                        "lengths": mask(steps).sum(1), "target": torch.rand(batch_size, generator=generator)}
        return model, make, regressor_forward, "rmse"
    if stage == "text":
        model = TextRegressor(cfg.models, cfg.fixes)
        make = lambda: {"states": torch.randn(batch_size, steps, text_input_dim(cfg.models), generator=generator),  # noqa: E731
                        "attention_mask": mask(steps).long(),
                        "target": torch.rand(batch_size, generator=generator)}
        return model, make, regressor_forward, "rmse"
    model = EmoClassifier(cfg.models, cfg.fixes, cfg.data, AudioRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes))
    classes = len(cfg.data.classes)
    make = lambda: {"audio_hidden": torch.randn(batch_size, frames, d_model, generator=generator).half(),  # noqa: E731
                    "audio_mask": mask(frames), "text_mask": mask(tokens),
                    "text_hidden": torch.randn(batch_size, tokens, d_model, generator=generator).half(),
                    "target": torch.randint(0, classes, (batch_size,), generator=generator)}
    return model, make, cached_forward, "ce"


def concurrent_run(stage: str, cfg: dict, steps: int, warmup: int, runs: int, barrier,
                   seed: int) -> dict:
    """One of `runs` processes: warm up, wait for the others, time `steps` training steps."""
    from koemo.modeling.precision import autocast_for, resolve_device, resolve_precision

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // runs))
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)      # as train_stage does
    torch.manual_seed(seed)
    model, make, forward, loss_kind = _random_stage(stage, cfg, device,
                                                    torch.Generator().manual_seed(seed))
    model = model.to(device).train()
    batches = [{k: v.to(device) for k, v in make().items()} for _ in range(4)]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(batch):
        with autocast_for(device, precision):
            out = forward(model, batch, device).float()
            target = batch["target"]
            loss = torch.sqrt(torch.nn.functional.mse_loss(out, target.float())) \
                if loss_kind == "rmse" else torch.nn.functional.cross_entropy(out, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for k in range(warmup):
        step(batches[k % len(batches)])
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    barrier.wait()
    started = time.perf_counter()
    for k in range(steps):
        step(batches[k % len(batches)])
    _sync(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return {"seconds": seconds, "peak_allocated_gib": round(peak / 2**30, 3), "device": str(device),
            "precision": precision}


def concurrency_rows(stage: str, cfg: dict, counts, steps: int, warmup: int, pool, manager) -> dict:
    """Throughput of 1, 2, 4, 8 ... runs of `stage` at once (see the module doc)."""
    from koemo.experiments.footprint import run_footprint_bytes

    batch = int(cfg.train.stage(stage).batch_size)
    rows = []
    for runs in counts:
        barrier = manager.Barrier(runs)
        futures = [pool.submit(concurrent_run, stage, cfg, steps, warmup, runs, barrier, seed)
                   for seed in range(1, runs + 1)]
        results = [f.result() for f in futures]
        slowest = max(r["seconds"] for r in results)
        rows.append({"runs": runs, "seconds_per_run": [round(r["seconds"], 3) for r in results],
                     "samples_per_second": round(runs * steps * batch / slowest, 1),
                     "peak_allocated_gib_per_run": max(r["peak_allocated_gib"] for r in results),
                     "device": results[0]["device"], "precision": results[0]["precision"]})
    for row in rows:
        row["gain_over_one_run"] = round(row["samples_per_second"] / rows[0]["samples_per_second"], 2)
    return {"steps_per_run": steps, "batch_size": batch, "rows": rows,
            "estimated_footprint_gib_without_data": round(run_footprint_bytes(cfg, stage) / 2**30, 3)}


def packing_pool(counts):
    """Spawned workers for the concurrency rows (as many as the largest count) and a manager
    for their barriers."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max(counts), mp_context=context), context.Manager()


def trim_rows(stage: str, workdir: Path, cfg: dict, run_dir: Path, device, steps) -> dict:
    """Seconds of the same training steps and evaluation batches, whole and trimmed."""
    from benchmarks.bench_loop import FirstSteps
    from koemo.experiments.plan import corrected
    from koemo.modeling import trim
    from koemo.modeling.precision import resolve_precision
    from dataclasses import replace

    from koemo.modeling.scoring import predict
    from koemo.modeling.train import epoch_seed, loss_function, train_epoch
    from koemo.modeling.stage import build_stage, make_loader, resident_datasets

    cfg = corrected(cfg)
    if device.type == "cpu":
        torch.set_flush_denormal(True)      # as train_stage does
    precision = resolve_precision(cfg.train.precision, device)
    job = build_stage(stage, workdir, cfg, 1, run_dir=run_dir, device=device, splits=("train",))
    job = replace(job, datasets=resident_datasets(job.datasets, cfg, device))
    model = job.model.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_fn, whole = loss_function(job, cfg, device), job.forward
    batch_size = cfg.train.stage(stage).batch_size

    def loader():
        return FirstSteps(make_loader(job.datasets["train"], batch_size, device, 0,
                                      shuffle_seed=epoch_seed(1, 0)), steps)

    kept = [trim.trim_batch(b, stage) for b in loader()]
    key, axis = ("feats", 2) if stage == "audio" else ("states", 1)
    fraction = sum(b[key].shape[axis] for b in kept) / (len(kept) * next(iter(loader()))[key].shape[axis])
    del kept
    out = {"steps": len(loader()), "batch_size": batch_size, "kept_fraction": round(fraction, 3)}
    for name, forward in (("whole", whole),
                          ("trimmed", lambda m, b, d: whole(m, trim.trim_batch(b, stage), d))):
        job = replace(job, forward=forward)
        model.train()
        warm = FirstSteps(loader().loader, 3)           # kernels and allocator for these shapes
        train_epoch(job, model, warm, optimizer, loss_fn, device, precision, progress=False)
        _sync(device)
        started = time.perf_counter()
        train_epoch(job, model, loader(), optimizer, loss_fn, device, precision, progress=False)
        _sync(device)
        out[f"train_seconds_{name}"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        predict(job, model, loader(), device, precision)
        out[f"eval_seconds_{name}"] = round(time.perf_counter() - started, 3)
    out["train_gain"] = round(out["train_seconds_whole"] / out["train_seconds_trimmed"], 2)
    out["eval_gain"] = round(out["eval_seconds_whole"] / out["eval_seconds_trimmed"], 2)
    return out
