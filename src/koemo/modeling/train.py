"""The training engine: `train_stage` trains one stage (audio regressor, text regressor or the
multimodal classifier) for one config and seed (`koemo.modeling.evaluate` scores a finished
run or checkpoint again).

The run directory (`W/runs/<protocol>[_f<k>]/<config name>/<stage or classifier kind>/seed<s>/`;
its layout and every file in it: koemo.modeling.runs.RunDir) gets each epoch's checkpoints,
training state and log row, the run record, and after training the test metrics and
predictions; with train.tensorboard, TensorBoard event files. Every epoch is also reported to
`W/progress.jsonl` (koemo.modeling.monitor, koemo.modeling.progress) for `koemo reproduce` to show.

One function per concern: whether and where to resume (koemo.modeling.resume.resume_point),
the runtime (koemo.modeling.precision.set_up_runtime), the stage's job on the device
(`prepare_job`), the loop (`fit_model`: `run_epoch`, `write_epoch`, early stopping) and test
scoring (koemo.modeling.scoring.score_test_split). The job is frozen: what the loop runs is
derived from it, never written into it.

As the paper (docs/paper.md, training): RMSE loss (sqrt of the batch MSE) for the regressors,
cross-entropy for the classifier (class weights optional: train.multimodal.class_weights), Adam,
ExponentialLR stepped once per epoch, early stopping on the validation loss with patience.
The test set is scored with the last epoch's weights as the original did, or with the best
validation checkpoint under `fixes.test_best_checkpoint`.

Determinism: every epoch reseeds torch/numpy/random from (seed, epoch) and shuffles with its own
generator, so a resumed run draws exactly what an uninterrupted one would. The test split is
scored with every draw (attention dropout, which the faithful model keeps on in eval) from the
run's seed (koemo.modeling.scoring; the metrics record it as `scoring_seed`), as `koemo
evaluate` scores it again: the same numbers on every call.

Devices: cfg.train.device (auto|cpu|cuda[:N]), precision fp32|bf16|fp16|auto (autocast, CUDA
only; fp16 with a gradient scaler; auto = bf16 where supported, else fp16; see
koemo.modeling.precision; the resolved precision goes into the run record, the test metrics
and the progress events), num_workers (pin_memory on CUDA), compile (torch.compile of the trained
module). On CPU denormal flushing is on: without it the RNN backward runs several times slower.

Multi-GPU: under `accelerate launch` or `torchrun` (WORLD_SIZE > 1, the optional `accelerate`
package installed: `pip install koemo[gpu]`) the model, optimizer and training loader go through
`accelerate.Accelerator`: each process trains on its shard of every batch. The main process
fills the on-disk caches first; every process validates on the whole validation set (so the
early-stopping decisions agree); only the main process writes files (its logged train loss is
the mean over its own shard). The multimodal stage needs cache_frozen there (forward_raw would
bypass DDP). Tested with `torchrun --nproc_per_node 2` on CPU (gloo; tests/test_launch.py).
With one process the plain loop runs; `koemo train` refuses a multi-process launch without
accelerate (koemo.experiments.runlock.launch_state), which would train the whole run in every process.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from koemo.config.schema import Config, FusionKind, Precision, Stage, TrainStage
from koemo.config.workdir import data_fingerprint
from koemo.dataset.labels import data_classes
from koemo.errors import KoemoInputError
from koemo.modeling import data as D
from koemo.modeling.monitor import RunMonitor
from koemo.modeling.precision import (Runtime, autocast_for, compiled_model, grad_scaler_for,
                                      set_up_runtime)
from koemo.modeling.resume import (counters_snapshot, resume_fingerprint, resume_point,
                                   state_finished, write_counters)
from koemo.modeling.runs import RunDir, run_dir_for, split_name
from koemo.modeling.scoring import predict, score, score_test_split
from koemo.modeling.stage import STAGES, StageJob, build_stage, make_loader, on_device

BAR_EVERY = 20          # training steps between loss read-backs for the progress bar


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 10_000 + epoch


# ----------------------------------------------------------------------------- loop pieces

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(job: StageJob, cfg: Config, device: torch.device) -> LossFn:
    if not job.is_classifier:
        return lambda out, target: torch.sqrt(torch.nn.functional.mse_loss(out.float(), target.float()))
    weight = class_weights(job, cfg)
    ce = torch.nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))
    if D.target_kind(cfg) == "soft":      # cross-entropy against the raters' distribution
        return lambda out, target: ce(out.float(), target.float())
    return lambda out, target: ce(out.float(), target.long())


def class_weights(job: StageJob, cfg: Config) -> torch.Tensor | None:
    """train.multimodal.class_weights: false (the paper), true/"balanced" (n / (C * n_c) over
    the augmented train rows), or an explicit list in class order."""
    setting = cfg.train.multimodal.class_weights
    if setting is False or setting is None:
        return None
    n_classes = len(job.classes)
    if setting is True or setting == "balanced":
        counts = np.bincount(job.rows["train"]["label_id"].to_numpy(), minlength=n_classes)
        weights = len(job.rows["train"]) / (n_classes * np.maximum(counts, 1))
    else:                      # one weight per class (koemo.config.load.validate)
        weights = np.asarray(setting, dtype=float)
    return torch.tensor(weights, dtype=torch.float32)


def train_epoch(job: StageJob, model: torch.nn.Module, loader: Any, optimizer: Any,
                loss_fn: LossFn, device: torch.device, precision: Precision, *, scaler: Any = None,
                accelerator: Any = None, desc: str = "", progress: bool = True) -> float:
    """One pass over the training loader; returns the row-weighted mean training loss.

    The loss is summed on the device (float64, the same sums as Python floats), read back once
    per epoch and every BAR_EVERY steps for the bar: a host sync per step stalls a GPU."""
    from tqdm.auto import tqdm

    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    # tqdm.auto calls iter() on a plain iterable itself and then again when looped over: given
    # the iterator, it starts the DataLoader (its workers, its seed draw) once, not twice.
    bar = tqdm(iter(loader), total=len(loader), desc=desc, disable=not progress, leave=False)
    for step, batch in enumerate(bar, 1):
        target = batch["target"].to(device)
        with autocast_for(device, precision):
            loss = loss_fn(job.forward(model, batch, device), target)
        optimizer.zero_grad(set_to_none=True)
        if accelerator is not None:
            accelerator.backward(loss)
        elif scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        total += loss.detach().double() * len(target)
        count += len(target)
        if progress and step % BAR_EVERY == 0:
            bar.set_postfix(loss=f"{float(total) / count:.4f}")
    return float(total) / max(count, 1)


def checkpoint_meta(job: StageJob, cfg: Config, seed: int, epoch: int,
                    metrics: dict[str, Any], classifier_kind: FusionKind) -> dict[str, Any]:
    return {"stage": job.stage, "seed": seed, "epoch": epoch, "classifier_kind": classifier_kind,
            "classes": list(data_classes(cfg.data)), "split": split_name(cfg),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


# ----------------------------------------------------------------------------- train_stage

def train_stage(stage: Stage, workdir: str | Path, cfg: Config, seed: int,
                out_dir: str | Path | None = None, resume: bool = True,
                classifier_kind: FusionKind = "attention_lstm", progress: bool = True) -> Path:
    """Train one stage and score its test split; returns the run directory.

    A finished run (all epochs or early-stopped, test scored) with the same settings is returned
    as it is; an interrupted one continues from its last epoch (resume=False starts over).
    """
    if stage not in STAGES:
        raise KoemoInputError(f"stage must be one of {STAGES}, not {stage!r}")
    workdir = Path(workdir)
    run = RunDir(out_dir if out_dir is not None
                 else run_dir_for(workdir, cfg, stage, seed, classifier_kind))
    data_fp = data_fingerprint(workdir)
    state = resume_point(run, cfg, stage, data_fp, resume)
    if state is not None and state_finished(state, cfg.train.stage(stage), run.path):
        return run.path
    runtime = set_up_runtime(cfg.train)
    seed_everything(seed)
    run.path.mkdir(parents=True, exist_ok=True)
    fit = Fit(prepare_job(stage, workdir, cfg, seed, run, runtime, classifier_kind, progress),
              cfg, seed, run, runtime, workdir, classifier_kind, progress,
              resume_fingerprint(cfg, stage), data_fp)
    model = fit.job.model.to(runtime.device)
    optimizer, scheduler, counters, log = start_training(fit, model, state)
    if runtime.is_main:
        run.write_record(cfg, seed, stage=stage, classifier_kind=classifier_kind,
                         device=str(runtime.device), precision=runtime.precision,
                         tf32=runtime.tf32)
    counters = fit_model(fit, model, optimizer, scheduler, counters, log)
    if runtime.is_main:
        write_counters(run.path, optimizer, scheduler, counters, fit.run_fp, data_fp)
        score_test_split(fit.job, model, run.path, cfg, seed, counters["epoch"], classifier_kind,
                         runtime.device, runtime.precision, int(cfg.train.num_workers))
    if runtime.accelerator is not None:
        runtime.accelerator.wait_for_everyone()      # the run's files are complete for every process
    return run.path


def prepare_job(stage: Stage, workdir: Path, cfg: Config, seed: int, run: RunDir,
                runtime: Runtime, classifier_kind: FusionKind, progress: bool) -> StageJob:
    """The stage's job on the run's device (koemo.modeling.stage.on_device)."""
    accelerator = runtime.accelerator
    # Under accelerate the main process fills the on-disk caches (KoBERT states, frozen
    # outputs) first; the others then find them complete instead of writing them too.
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        job = build_stage(stage, workdir, cfg, seed, run_dir=run.path, device=runtime.device,
                          classifier_kind=classifier_kind, progress=progress and runtime.is_main)
    if accelerator is not None and job.runs_regressors:
        raise KoemoInputError("multi-process training of the multimodal stage needs "
                              "train.multimodal.cache_frozen=true (forward_raw bypasses DDP)")
    # accelerate shards a DataLoader; resident data is not one
    return on_device(job, cfg, runtime.device, classifier_kind, resident=accelerator is None)


# ----------------------------------------------------------------------------- fit

@dataclass(frozen=True)
class Fit:
    """What the training loop of one run reads (it changes none of it)."""
    job: StageJob
    cfg: Config
    seed: int
    run: RunDir
    runtime: Runtime
    workdir: Path
    classifier_kind: FusionKind
    progress: bool
    run_fp: str                             # the resume fingerprint its state records
    data_fp: str | None                     # the prepared data it trains on

    @property
    def settings(self) -> TrainStage:
        return self.cfg.train.stage(self.job.stage)


def start_training(fit: Fit, model: torch.nn.Module, state: dict[str, Any] | None
                   ) -> tuple[Any, Any, dict[str, Any], list[dict[str, Any]]]:
    """(optimizer, scheduler, epoch counters, log rows): new, or where `state` left them."""
    from koemo.modeling.checkpoint import load_checkpoint, load_training_state

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=fit.settings.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=fit.settings.gamma)
    counters: dict[str, Any] = {"epoch": 0, "best": math.inf, "bad_epochs": 0,
                                "stopped_early": False}
    if state is None:
        return optimizer, scheduler, counters, []
    model.load_state_dict(load_checkpoint(fit.run.last)[0])
    # Every epoch reseeds itself, so the global RNG state is not restored.
    load_training_state(fit.run.state, optimizer, scheduler, restore_rng=False)
    counters.update({k: state[k] for k in counters})
    return optimizer, scheduler, counters, fit.run.log_rows()[:state["epoch"]]


def fit_model(fit: Fit, model: torch.nn.Module, optimizer: Any, scheduler: Any,
              counters: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, Any]:
    """Train epochs from counters["epoch"] to the budget, stopping early after `patience`
    epochs without a lower validation loss; each epoch's files are written while the next
    trains. Returns the final counters."""
    from koemo.modeling.epoch_writer import EpochWriter

    runtime, settings, stage = fit.runtime, fit.settings, fit.job.stage
    train_model = compiled_model(model, fit.cfg.train.compile, stage, runtime.device)
    # fp16 scales the loss (accelerate does that itself under a multi-process launch).
    scaler = grad_scaler_for(runtime.device, runtime.precision) if runtime.accelerator is None \
        else None
    if runtime.accelerator is not None:
        train_model, optimizer = runtime.accelerator.prepare(train_model, optimizer)
    loop = Loop(train_model, optimizer, scheduler, scaler,
                loss_function(fit.job, fit.cfg, runtime.device),
                make_loader(fit.job.datasets["valid"], settings.batch_size, runtime.device,
                            int(fit.cfg.train.num_workers)))
    patience = settings.epochs if settings.patience is None else settings.patience
    monitor = RunMonitor(fit.workdir, fit.run.path, fit.cfg, stage, fit.seed, split_name(fit.cfg),
                         fit.classifier_kind, runtime.precision, enabled=runtime.is_main)
    monitor.start(counters["epoch"])
    with EpochWriter(background=bool(fit.cfg.train.background_writes)) as writer:
        for epoch in range(counters["epoch"], settings.epochs):
            if counters["bad_epochs"] >= patience:
                counters["stopped_early"] = True
                break
            valid = run_epoch(fit, model, loop, epoch, counters, log)
            if runtime.is_main:     # copies taken now, written while the next epoch trains
                write_epoch(fit, model, loop, writer, epoch, valid, counters, log)
            monitor.epoch(log[-1], log)
    monitor.done(counters)
    return counters


@dataclass(frozen=True)
class Loop:
    """The pieces of one run's loop that stay the same from epoch to epoch."""
    train_model: Any                        # the model as trained (compiled, accelerate-wrapped)
    optimizer: Any
    scheduler: Any
    scaler: Any                             # fp16's gradient scaler, else None
    loss_fn: LossFn
    valid_loader: Any


def run_epoch(fit: Fit, model: torch.nn.Module, loop: Loop, epoch: int,
              counters: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, Any]:
    """Train one epoch, score the validation split, update `counters` and append the epoch's
    row to `log`; returns the validation metrics."""
    runtime, settings, job = fit.runtime, fit.settings, fit.job
    seed_everything(epoch_seed(fit.seed, epoch))
    loader = make_loader(job.datasets["train"], settings.batch_size, runtime.device,
                         int(fit.cfg.train.num_workers), shuffle_seed=epoch_seed(fit.seed, epoch))
    if runtime.accelerator is not None:
        loader = runtime.accelerator.prepare(loader)
    # Frozen regressors follow the classifier's mode, as the original (they only run
    # here when cache_frozen is off; the cache holds eval-mode outputs).
    model.train()
    started = time.perf_counter()
    train_loss = train_epoch(job, loop.train_model, loader, loop.optimizer, loop.loss_fn,
                             runtime.device, runtime.precision, scaler=loop.scaler,
                             accelerator=runtime.accelerator,
                             desc=f"{job.stage} epoch {epoch + 1}/{settings.epochs}",
                             progress=fit.progress and runtime.is_main)
    lr = loop.optimizer.param_groups[0]["lr"]
    loop.scheduler.step()
    valid = score(job, predict(job, model, loop.valid_loader, runtime.device, runtime.precision),
                  "valid", fit.cfg)
    improved = valid["loss"] < counters["best"]
    counters.update(epoch=epoch + 1, bad_epochs=0 if improved else counters["bad_epochs"] + 1,
                    best=min(valid["loss"], counters["best"]))
    log.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                "valid_loss": valid["loss"],
                **{f"valid_{k}": v for k, v in valid.items()
                   if k != "loss" and isinstance(v, (int, float)) and k != "n"},
                "seconds": time.perf_counter() - started, "best": improved})
    return valid


def write_epoch(fit: Fit, model: torch.nn.Module, loop: Loop, writer: Any, epoch: int,
                valid: dict[str, Any], counters: dict[str, Any], log: list[dict[str, Any]]) -> None:
    """Hand the epoch's files (weights, log, training state: copies taken now) to the writer."""
    from koemo.modeling.checkpoint import checkpoint_snapshot
    from koemo.modeling.epoch_writer import write_epoch_files

    meta = checkpoint_meta(fit.job, fit.cfg, fit.seed, epoch + 1, valid, fit.classifier_kind)
    writer.submit(write_epoch_files, fit.run.path, checkpoint_snapshot(model, fit.cfg, meta),
                  bool(log[-1]["best"]), list(log),
                  counters_snapshot(loop.optimizer, loop.scheduler, counters, fit.run_fp,
                                    fit.data_fp))
