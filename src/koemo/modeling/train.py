"""The training engine: `train_stage` trains one stage (audio regressor, text regressor or the
multimodal classifier) for one config and seed (`koemo.modeling.evaluate` scores a finished
run or checkpoint again).

Run directory: `W/runs/<protocol>[_f<k>]/<config name>/<stage>/seed<s>/`, where the multimodal
stage uses its classifier kind (`attention_lstm`, the paper's model, or a fusion baseline) as
<stage>. It holds `best/` and `last/` checkpoints (koemo.modeling.checkpoint), `state/` (optimizer,
scheduler, epoch counters: what resume needs), `log.csv` + `log.json` (one row per epoch),
`run.json` + `config.yaml`, and after training `test_metrics.json` + `test_predictions.parquet`;
with train.tensorboard, `tensorboard/` event files. Every epoch is also reported to
`W/progress.jsonl` (koemo.modeling.monitor, koemo.modeling.progress) for `koemo reproduce` to show.

As the paper (docs/paper.md, training): RMSE loss (sqrt of the batch MSE) for the regressors,
cross-entropy for the classifier (class weights optional: train.multimodal.class_weights), Adam,
ExponentialLR stepped once per epoch, early stopping on the validation loss with patience.
The test set is scored with the last epoch's weights as the original did, or with the best
validation checkpoint under `fixes.test_best_checkpoint`.

Determinism: every epoch reseeds torch/numpy/random from (seed, epoch) and shuffles with its own
generator, so a resumed run draws exactly what an uninterrupted one would. The test split is
scored with every draw (attention dropout, which the faithful model keeps on in eval) from the
run's seed (`score_split`; test_metrics.json records it as `scoring_seed`), as `koemo evaluate`
scores it again: the same numbers on every call.

Devices: cfg.train.device (auto|cpu|cuda[:N]), precision fp32|bf16|fp16|auto (autocast, CUDA
only; fp16 with a gradient scaler; auto = bf16 where supported, else fp16; see
koemo.modeling.precision; the resolved precision goes into run.json, test_metrics.json and
the progress events), num_workers (pin_memory on CUDA), compile (torch.compile of the trained
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
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from koemo.config.fingerprints import save_run_record
from koemo.config.workdir import data_fingerprint
from koemo.errors import KoemoInputError
from koemo.modeling.metrics import batch_averaged_f1, classification_report, regression_report
from koemo.modeling import data as D
from koemo.modeling.monitor import RunMonitor
from koemo.modeling.precision import (autocast_for, grad_scaler_for,  # noqa: F401 (re-exported)
                                      compiled_model, configure_tf32, maybe_accelerator,
                                      resolve_device, resolve_precision)
from koemo.modeling.stage import (STAGES, StageJob, build_stage, cached_forward, make_loader,
                                  raw_forward, resident_datasets, seeded)
from koemo.modeling.trim import trimming_forward
from koemo.modeling.runs import (clear_run, counters_snapshot, read_counters,
                                 resume_fingerprint, run_dir_for, same_settings, split_name,
                                 state_finished, weights_match_state, write_counters, write_json)

BAR_EVERY = 20          # training steps between loss read-backs for the progress bar
REGRESSION_TARGETS = {"audio": "arousal", "text": "valence"}

# ----------------------------------------------------------------------------- devices
# (resolve_device, resolve_precision, autocast_for, grad_scaler_for, maybe_accelerator live in
# koemo.modeling.precision and are re-exported here.)

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 10_000 + epoch


# ----------------------------------------------------------------------------- loop pieces

def loss_function(job: StageJob, cfg: dict, device: torch.device):
    if not job.is_classifier:
        return lambda out, target: torch.sqrt(torch.nn.functional.mse_loss(out.float(), target.float()))
    weight = class_weights(job, cfg)
    ce = torch.nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))
    if D.target_kind(cfg) == "soft":      # cross-entropy against the raters' distribution
        return lambda out, target: ce(out.float(), target.float())
    return lambda out, target: ce(out.float(), target.long())


def class_weights(job: StageJob, cfg: dict) -> torch.Tensor | None:
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


@torch.no_grad()
def predict(job: StageJob, model, loader, device, precision: str) -> np.ndarray:
    """Raw outputs over a whole loader: predictions [N] or logits [N, C] (float32)."""
    model.eval()
    outputs = []
    for batch in loader:
        with autocast_for(device, precision):
            outputs.append(job.forward(model, batch, device).float())
    return torch.cat(outputs).cpu().numpy()      # one copy back: no host sync per batch


def score(job: StageJob, outputs: np.ndarray, split: str, cfg: dict) -> dict:
    """Whole-set metrics plus the loss, for a split's raw outputs."""
    rows = job.rows[split]
    if not job.is_classifier:
        target = rows[REGRESSION_TARGETS[job.stage]].to_numpy(dtype=float)
        report = regression_report(target, outputs)
        return {"loss": report["rmse"], **report}
    target = rows["label_id"].to_numpy()
    logits = torch.from_numpy(outputs)
    loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(target)))
    pred = outputs.argmax(axis=1)
    report = classification_report(target, pred, job.classes, job.majority_class)
    batch = cfg.train.multimodal.batch_size
    # The paper's number: per-batch weighted F1 averaged, its test loader dropping the last batch.
    report["weighted_f1_batch_mean"] = batch_averaged_f1(target, pred, batch,
                                                         drop_last=len(target) >= batch)
    return {"loss": loss, **report}


def prediction_table(job: StageJob, outputs: np.ndarray, split: str) -> pd.DataFrame:
    rows = job.rows[split]
    table = pd.DataFrame({"segment_id": rows["segment_id"].to_numpy()})
    if not job.is_classifier:
        table["true"] = rows[REGRESSION_TARGETS[job.stage]].to_numpy(dtype=float)
        table["pred"] = outputs.astype(float)
        return table
    probs = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
    table["true"] = [job.classes[i] for i in rows["label_id"]]
    table["pred"] = [job.classes[i] for i in outputs.argmax(axis=1)]
    for k, name in enumerate(job.classes):
        table[f"prob_{name}"] = probs[:, k]
    return table


def train_epoch(job: StageJob, model, loader, optimizer, loss_fn, device, precision: str, *,
                scaler=None, accelerator=None, desc: str = "", progress: bool = True) -> float:
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


def checkpoint_meta(job: StageJob, cfg: dict, seed: int, epoch: int, metrics: dict,
                    classifier_kind: str) -> dict:
    return {"stage": job.stage, "seed": seed, "epoch": epoch, "classifier_kind": classifier_kind,
            "classes": list(cfg.data.classes), "split": split_name(cfg),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


# ----------------------------------------------------------------------------- train_stage

def train_stage(stage: str, workdir: str | Path, cfg: dict, seed: int, out_dir: str | Path | None = None,
                resume: bool = True, classifier_kind: str = "attention_lstm",
                progress: bool = True) -> Path:
    """Train one stage and score its test split; returns the run directory.

    A finished run (all epochs or early-stopped, test scored) with the same settings is returned
    as it is; an interrupted one continues from its last epoch (resume=False starts over).
    """
    from koemo.modeling.checkpoint import checkpoint_snapshot, load_checkpoint, load_training_state
    from koemo.modeling.epoch_writer import EpochWriter, write_epoch_files

    if stage not in STAGES:
        raise KoemoInputError(f"stage must be one of {STAGES}, not {stage!r}")
    workdir = Path(workdir)
    run_dir = Path(out_dir) if out_dir is not None else run_dir_for(workdir, cfg, stage, seed,
                                                                     classifier_kind)
    settings = cfg.train.stage(stage)
    run_fp = resume_fingerprint(cfg, stage)
    state = read_counters(run_dir) if resume else None
    if state is not None and not same_settings(state, cfg, stage):
        raise KoemoInputError(f"{run_dir}: holds a run with other settings; use --no-resume to "
                              f"start over or another --config name / out_dir")
    data_fp = data_fingerprint(workdir)
    if state is not None and state.get("data") != data_fp:
        print(f"{run_dir}: trained on an earlier preparation of the corpus "
              f"({state.get('data')} -> {data_fp}); training it again")
        state = None
    if state is not None and not weights_match_state(run_dir, state):
        # Killed after saving an epoch's weights but before its optimizer state: the two no
        # longer describe the same epoch, so continuing would not give the uninterrupted run.
        print(f"{run_dir}: interrupted between saving epoch {state['epoch'] + 1} and its "
              "training state; training it again from the start")
        state = None
    if state is None:
        clear_run(run_dir)
    elif state_finished(state, settings, run_dir):
        return run_dir

    device = resolve_device(cfg.train.device)
    # What the run really computes in (`auto` and any mixed setting on a CPU resolve here).
    precision = resolve_precision(cfg.train.precision, device)
    accelerator = maybe_accelerator(precision, device)
    if accelerator is not None:
        device = accelerator.device
        precision = resolve_precision(precision, device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    tf32 = configure_tf32(cfg.train.tf32, device)
    is_main = accelerator is None or accelerator.is_main_process
    seed_everything(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Under accelerate the main process fills the on-disk caches (KoBERT states, frozen
    # outputs) first; the others then find them complete instead of writing them too.
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        job = build_stage(stage, workdir, cfg, seed, run_dir=run_dir, device=device,
                          classifier_kind=classifier_kind, progress=progress and is_main)
    if accelerator is None:         # accelerate shards a DataLoader; resident data is not one
        job.datasets = resident_datasets(job.datasets, cfg, device)
    model = job.model.to(device)
    # train.trim_padding: batches cut to their longest valid length where that is exact.
    job.forward = trimming_forward(job.forward, cfg, stage, job.forward is cached_forward,
                                   classifier_kind)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma)
    log = json.loads((run_dir / "log.json").read_text(encoding="utf-8")) if state else []
    counters = {"epoch": 0, "best": math.inf, "bad_epochs": 0, "stopped_early": False}
    if state is not None:
        model.load_state_dict(load_checkpoint(run_dir / "last")[0])
        # Every epoch reseeds itself, so the global RNG state is not restored.
        load_training_state(run_dir / "state", optimizer, scheduler, restore_rng=False)
        counters.update({k: state[k] for k in counters})
        log = log[:state["epoch"]]
    if is_main:
        save_run_record(run_dir, cfg, seed, stage=stage, classifier_kind=classifier_kind,
                        device=str(device), precision=precision, tf32=tf32,
                        run_dir=str(run_dir))

    train_model = compiled_model(model, cfg.train.compile, stage, device)
    # fp16 scales the loss (accelerate does that itself under a multi-process launch).
    scaler = grad_scaler_for(device, precision) if accelerator is None else None
    if accelerator is not None:
        if job.forward is raw_forward:
            raise KoemoInputError("multi-process training of the multimodal stage needs "
                                  "train.multimodal.cache_frozen=true (forward_raw bypasses DDP)")
        train_model, optimizer = accelerator.prepare(train_model, optimizer)
    loss_fn = loss_function(job, cfg, device)
    num_workers = int(cfg.train.num_workers)
    valid_loader = make_loader(job.datasets["valid"], settings.batch_size, device, num_workers)
    patience = settings.epochs if settings.patience is None else settings.patience
    monitor = RunMonitor(workdir, run_dir, cfg, stage, seed, split_name(cfg), classifier_kind,
                         precision, enabled=is_main)
    monitor.start(counters["epoch"])

    with EpochWriter(background=bool(cfg.train.background_writes)) as writer:
        for epoch in range(counters["epoch"], settings.epochs):
            if counters["bad_epochs"] >= patience:
                counters["stopped_early"] = True
                break
            seed_everything(epoch_seed(seed, epoch))
            loader = make_loader(job.datasets["train"], settings.batch_size, device,
                                 num_workers, shuffle_seed=epoch_seed(seed, epoch))
            if accelerator is not None:
                loader = accelerator.prepare(loader)
            # Frozen regressors follow the classifier's mode, as the original (they only run
            # here when cache_frozen is off; the cache holds eval-mode outputs).
            model.train()
            started = time.perf_counter()
            train_loss = train_epoch(job, train_model, loader, optimizer, loss_fn, device,
                                     precision, scaler=scaler, accelerator=accelerator,
                                     desc=f"{stage} epoch {epoch + 1}/{settings.epochs}",
                                     progress=progress and is_main)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            valid = score(job, predict(job, model, valid_loader, device, precision), "valid", cfg)
            improved = valid["loss"] < counters["best"]
            counters.update(epoch=epoch + 1,
                            bad_epochs=0 if improved else counters["bad_epochs"] + 1,
                            best=min(valid["loss"], counters["best"]))
            log.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                        "valid_loss": valid["loss"],
                        **{f"valid_{k}": v for k, v in valid.items()
                           if k != "loss" and isinstance(v, (int, float)) and k != "n"},
                        "seconds": time.perf_counter() - started, "best": improved})
            if is_main:     # copies taken now, written while the next epoch trains
                meta = checkpoint_meta(job, cfg, seed, epoch + 1, valid, classifier_kind)
                writer.submit(write_epoch_files, run_dir, checkpoint_snapshot(model, cfg, meta),
                              improved, list(log),
                              counters_snapshot(optimizer, scheduler, counters, run_fp, data_fp))
            monitor.epoch(log[-1], log)
    monitor.done(counters)
    if is_main:
        write_counters(run_dir, optimizer, scheduler, counters, run_fp, data_fp)
        score_test_split(job, model, run_dir, cfg, seed, counters["epoch"], classifier_kind,
                         device, precision, num_workers)
    if accelerator is not None:
        accelerator.wait_for_everyone()      # the run's files are complete for every process
    return run_dir


def score_split(job: StageJob, model, split: str, cfg: dict, seed: int, device, precision: str,
                num_workers: int) -> tuple[np.ndarray, dict]:
    """(raw outputs, metrics) of one split as a run scores its test split and `koemo evaluate`
    scores it again: every row in table order, in batches of the stage's batch_size, every
    random draw (attention dropout kept on in eval by the faithful model) from the run's seed,
    so the same checkpoint gives the same numbers on every call."""
    loader = make_loader(job.datasets[split], cfg.train.stage(job.stage).batch_size, device,
                         num_workers)
    with seeded(seed, device):
        outputs = predict(job, model, loader, device, precision)
    return outputs, score(job, outputs, split, cfg)


def score_test_split(job: StageJob, model, run_dir: Path, cfg: dict, seed: int, epochs: int,
                     classifier_kind: str, device, precision: str, num_workers: int) -> dict:
    """Score the test split with the last epoch's weights (faithful) or the best checkpoint
    (fixes.test_best_checkpoint); write test_metrics.json and test_predictions.parquet."""
    from koemo.modeling.checkpoint import load_checkpoint

    use_best = bool(cfg.fixes.test_best_checkpoint)
    if use_best:
        model.load_state_dict(load_checkpoint(run_dir / "best")[0])
    outputs, metrics = score_split(job, model, "test", cfg, seed, device, precision, num_workers)
    metrics.update(checkpoint="best" if use_best else "last", epochs_trained=epochs,
                   stage=job.stage, classifier_kind=classifier_kind if job.is_classifier else "",
                   split=split_name(cfg), subset="test", seed=seed, precision=precision,
                   scoring_seed=seed)
    write_json(run_dir / "test_metrics.json", metrics)
    prediction_table(job, outputs, "test").to_parquet(run_dir / "test_predictions.parquet", index=False)
    return metrics
