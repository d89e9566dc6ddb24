"""The probe of the foundation study: a small classifier over a frozen upstream's pooled states,
trained per fold, and the scored-run files every row of that study writes.

Model (EmoBox's downstream `SuperbBaseModel`, over pooled states; see koemo.upstreams.pooled for
why the mean comes first): each input [B, L, D] (every hidden state's mean over time) is
reduced to [B, D] by one chosen layer or by a learned softmax weighting over the L layers
(weights start equal), then Linear(D, hidden) -> ReLU -> Linear(hidden, classes).
A fused probe has two inputs (an audio and a text upstream), each with its own layer
weighting; their vectors are concatenated, so its first Linear reads D_audio + D_text values.
Concatenation keeps it the same probe with a wider input (no second branch to size).

Training: cross-entropy, Adam, batches of `batch_size` shuffled per epoch with a generator
seeded from (seed, epoch) (as koemo.modeling.train), the learning rate warmed up linearly over
`warmup_epochs` and then decayed linearly to 0 at `epochs` (EmoBox: SpeechBrain's
LinearWarmupScheduler, 10 of 20, stepped once per epoch), early stopping on the validation
loss after `patience` epochs without improvement; the test rows are scored with the weights of
the epoch of lowest validation loss. EmoBox trains all 20 epochs and tests every saved epoch.

A run directory (W/runs/<split>/<config>/<probe name>/seed<s>/) holds what every koemo run
holds, written through its owner koemo.modeling.runs.RunDir: the run record (config, seed,
library versions), the log, the best epoch's weights (model.safetensors + meta.json in the
`best` checkpoint folder), the test metrics and predictions.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from koemo.errors import KoemoInputError
from koemo.modeling.metrics import classification_report
from koemo.config.foundation import FoundationProbe
from koemo.config.schema import Config
from koemo.modeling.runs import RunDir, SplitMetrics, write_json

WEIGHTS = "model.safetensors"


class LayerChoice(nn.Module):
    """[B, L, D] -> [B, D]: hidden state `layer`, or a learned softmax-weighted sum."""

    def __init__(self, num_layers: int, layer: str | int):
        super().__init__()
        self.num_layers = int(num_layers)
        if layer == "weighted":
            self.index = None
            self.weights = nn.Parameter(torch.zeros(self.num_layers))
        else:
            index = int(layer) + self.num_layers if int(layer) < 0 else int(layer)
            if not 0 <= index < self.num_layers:
                raise ValueError(f"layer {layer} out of range: the upstream gives "
                                 f"{self.num_layers} hidden states")
            self.index = index

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            return states[:, self.index]
        return torch.einsum("l,bld->bd", torch.softmax(self.weights, dim=0), states)


class Probe(nn.Module):
    """Linear -> ReLU -> Linear over the (concatenated) layer-reduced pooled states."""

    def __init__(self, shapes: Sequence[tuple[int, int]], layer: str | int, hidden: int,
                 n_classes: int):
        super().__init__()
        self.layers = nn.ModuleList(LayerChoice(n, layer) for n, _ in shapes)
        self.pre_net = nn.Linear(sum(d for _, d in shapes), hidden)
        self.post_net = nn.Linear(hidden, n_classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([choice(x) for choice, x in zip(self.layers, inputs)], dim=-1)
        return self.post_net(torch.relu(self.pre_net(mixed)))


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """Linear warm-up over `warmup` epochs, then linear decay to 0 at `epochs` (0-based)."""
    if warmup <= 0:
        return 1.0
    if epoch < warmup:
        return (epoch + 1) / warmup
    return max(0.0, (epochs - epoch) / max(1, epochs - warmup))


def _logits(model: Probe, inputs: list[torch.Tensor], rows: torch.Tensor | None = None,
            batch: int = 4096) -> torch.Tensor:
    n = len(inputs[0]) if rows is None else len(rows)
    picks = torch.arange(n) if rows is None else rows
    out = [model(*(x[picks[i:i + batch]].float() for x in inputs)) for i in range(0, n, batch)]
    return torch.cat(out) if out else torch.zeros(0)


def fit(model: Probe, data: dict[str, tuple[list[torch.Tensor], torch.Tensor]],
        settings: FoundationProbe, seed: int, device: torch.device,
        on_epoch: Callable[[dict[str, Any]], None] = lambda row: None
        ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Train on data["train"], stop on data["valid"]; (log rows, best state dict).
    `on_epoch(row)` is told each epoch's log row."""
    from koemo.modeling.train import epoch_seed, seed_everything

    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, settings.epochs, settings.warmup_epochs))
    (x_train, y_train), (x_valid, y_valid) = data["train"], data["valid"]
    patience = settings.patience or settings.epochs
    log, best, best_state, bad = [], math.inf, copy.deepcopy(model.state_dict()), 0
    for epoch in range(settings.epochs):
        if bad >= patience:
            break
        seed_everything(epoch_seed(seed, epoch))
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(
            epoch_seed(seed, epoch)))
        model.train()
        total, lr, started = 0.0, optimizer.param_groups[0]["lr"], time.perf_counter()
        for start in range(0, len(order), settings.batch_size):
            rows = order[start:start + settings.batch_size]
            loss = loss_fn(model(*(x[rows].float() for x in x_train)), y_train[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        schedule.step()
        model.eval()
        with torch.no_grad():
            valid = float(loss_fn(_logits(model, x_valid), y_valid))
        improved = valid < best
        if improved:
            best, best_state, bad = valid, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        log.append({"epoch": epoch + 1, "lr": lr, "train_loss": total / len(order),
                    "valid_loss": valid, "best": improved,
                    "seconds": round(time.perf_counter() - started, 3)})
        on_epoch(log[-1])
    return log, best_state


@dataclass
class ProbeData:
    """A probe's inputs: per split (train, valid, test) one float16 [n, L, D] array per input
    (one upstream, or audio then text) and the class ids; the test rows' segment ids."""
    arrays: dict[str, list[np.ndarray]]
    labels: dict[str, np.ndarray]
    test_ids: list[str]
    classes: list[str]


def train_probe(run_dir: str | Path, data: ProbeData, settings: FoundationProbe, seed: int,
                cfg: Config, device: str = "cpu", record: dict | None = None,
                progress_workdir: Path | None = None) -> dict:
    """Train one probe run and score its test rows; writes the run directory (module doc;
    `record` goes into run.json and test_metrics.json) and returns its test metrics. With
    `progress_workdir`, its start, epochs and end go to that workdir's progress file
    (koemo.modeling.progress), as every training run's do."""
    run_dir, torch_device = Path(run_dir), torch.device(device)
    tensors = {split: ([torch.as_tensor(a, device=torch_device) for a in data.arrays[split]],
                       torch.as_tensor(np.array(data.labels[split]), dtype=torch.long,
                                       device=torch_device))
               for split in ("train", "valid", "test")}
    from koemo.modeling.train import seed_everything

    shapes = [(a.shape[1], a.shape[2]) for a in data.arrays["train"]]
    seed_everything(seed)                       # the initial weights are the seed's
    model = Probe(shapes, settings.layer, settings.hidden, len(data.classes)).to(torch_device)
    run = RunDir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run.clear()                                         # unfinished until scored
    run.write_record(cfg, seed, stage="probe", device=str(torch_device), **(record or {}))
    tell = _progress(progress_workdir, run_dir, cfg, settings, seed, record or {})
    tell("start", epoch=0)
    log, best_state = fit(model, tensors, settings, seed, torch_device, lambda row: tell(
        "epoch", **{k: row[k] for k in ("epoch", "train_loss", "valid_loss", "seconds")}))
    tell("done", epoch=len(log), stopped_early=len(log) < settings.epochs)
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(_logits(model, tensors["test"][0]).float(), dim=1).cpu().numpy()
    run.write_log(log)
    save_weights(run.best, model, {"seed": seed, "classes": list(data.classes),
                                   "epoch": _best_epoch(log), "shapes": shapes})
    train = np.asarray(data.labels["train"])
    majority = int(np.bincount(train, minlength=len(data.classes)).argmax())
    return write_test_outputs(run_dir, data.test_ids, np.asarray(data.labels["test"]),
                              probs.argmax(axis=1), data.classes, majority, probs=probs,
                              extra={"epochs_trained": len(log), "checkpoint": "best",
                                     "seed": seed, **(record or {})})


def _progress(workdir: Path | None, run_dir: Path, cfg: Config, settings: FoundationProbe,
              seed: int, record: dict) -> Callable[..., None]:
    """(event, **fields) -> one line in `workdir`'s progress file (nothing without one)."""
    from koemo.modeling import progress
    from koemo.modeling.runs import split_name

    if workdir is None:
        return lambda event, **fields: None
    head = {"run": str(run_dir), "stage": "probe", "system": record.get("system"),
            "split": split_name(cfg), "config": cfg.name, "seed": seed,
            "epochs": settings.epochs, "precision": "fp32"}
    return lambda event, **fields: progress.emit(workdir, event, **head, **fields)


def _best_epoch(log: list[dict]) -> int:
    improved = [row["epoch"] for row in log if row["best"]]
    return improved[-1] if improved else 0


def save_weights(directory: Path, model: nn.Module, meta: dict) -> None:
    """best/model.safetensors and best/meta.json, each replaced atomically."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, directory / WEIGHTS)
    write_json(directory / "meta.json", meta)


def write_test_outputs(run_dir: str | Path, segment_ids: Sequence[str], true_ids: np.ndarray,
                       pred_ids: np.ndarray, classes: Sequence[str], majority: int,
                       probs: np.ndarray | None = None, extra: dict | None = None,
                       columns: dict | None = None) -> dict:
    """The test metrics and predictions of a classifier run, as koemo.modeling.train scores
    them (class names in `true`/`pred`, `columns` added beside them); returns the metrics."""
    run, classes = RunDir(run_dir), list(classes)
    metrics = classification_report(true_ids, pred_ids, classes, int(majority))
    metrics.update(subset="test", **(extra or {}))
    table = pd.DataFrame({"segment_id": [str(s) for s in segment_ids],
                          "true": [classes[int(i)] for i in true_ids],
                          "pred": [classes[int(i)] for i in pred_ids]})
    if probs is not None:
        for k, name in enumerate(classes):
            table[f"prob_{name}"] = probs[:, k]
    for name, values in (columns or {}).items():
        table[name] = list(values)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_predictions(table)
    run.write_metrics(SplitMetrics.model_validate(metrics))   # last: its presence = scored
    return metrics


def run_identity(run_dir: str | Path) -> str | None:
    """The identity a finished run recorded (None: unfinished or none recorded)."""
    run = RunDir(run_dir)
    if not run.is_scored():
        return None
    try:
        return run.record().model_dump().get("identity")
    except (KoemoInputError, FileNotFoundError):
        return None
