"""Scoring a stage's outputs: predictions over a loader, whole-set metrics, the per-row table,
and a split scored as a run scores its test split (`score_split`, which `koemo evaluate`
repeats exactly) or the run's own test scoring (`score_test_split`, into its run directory).

The test split is scored with every draw (attention dropout, which the faithful model keeps
on in eval) from the run's seed: its metrics record it as `scoring_seed`, and the same
checkpoint gives the same numbers on every call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from koemo.config.schema import Config, Precision
from koemo.dataset.splits import Split
from koemo.modeling.metrics import batch_averaged_f1, classification_report, regression_report
from koemo.modeling.precision import autocast_for
from koemo.modeling.runs import RunDir, SplitMetrics, split_name
from koemo.modeling.stage import StageJob, make_loader, seeded

REGRESSION_TARGETS = {"audio": "arousal", "text": "valence"}


@torch.no_grad()
def predict(job: StageJob, model: torch.nn.Module, loader: Any, device: torch.device,
            precision: Precision) -> np.ndarray:
    """Raw outputs over a whole loader: predictions [N] or logits [N, C] (float32)."""
    model.eval()
    outputs = []
    for batch in loader:
        with autocast_for(device, precision):
            outputs.append(job.forward(model, batch, device).float())
    return torch.cat(outputs).cpu().numpy()      # one copy back: no host sync per batch


def score(job: StageJob, outputs: np.ndarray, split: Split, cfg: Config) -> dict[str, Any]:
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


def prediction_table(job: StageJob, outputs: np.ndarray, split: Split) -> pd.DataFrame:
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


def score_split(job: StageJob, model: torch.nn.Module, split: Split, cfg: Config, seed: int,
                device: torch.device, precision: Precision,
                num_workers: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(raw outputs, metrics) of one split as a run scores its test split and `koemo evaluate`
    scores it again: every row in table order, in batches of the stage's batch_size, every
    random draw (attention dropout kept on in eval by the faithful model) from the run's seed,
    so the same checkpoint gives the same numbers on every call."""
    loader = make_loader(job.datasets[split], cfg.train.stage(job.stage).batch_size, device,
                         num_workers)
    with seeded(seed, device):
        outputs = predict(job, model, loader, device, precision)
    return outputs, score(job, outputs, split, cfg)


def score_test_split(job: StageJob, model: torch.nn.Module, run_dir: Path, cfg: Config,
                     seed: int, epochs: int, classifier_kind: str, device: torch.device,
                     precision: Precision, num_workers: int) -> SplitMetrics:
    """Score the test split with the last epoch's weights (faithful) or the best checkpoint
    (fixes.test_best_checkpoint); write the run's test metrics and predictions."""
    from koemo.modeling.checkpoint import load_checkpoint

    run = RunDir(run_dir)
    use_best = bool(cfg.fixes.test_best_checkpoint)
    if use_best:
        model.load_state_dict(load_checkpoint(run.best)[0])
    outputs, scores = score_split(job, model, "test", cfg, seed, device, precision, num_workers)
    metrics = SplitMetrics.model_validate({
        **scores, "checkpoint": "best" if use_best else "last", "epochs_trained": epochs,
        "stage": job.stage, "classifier_kind": classifier_kind if job.is_classifier else "",
        "split": split_name(cfg), "subset": "test", "seed": seed, "precision": precision,
        "scoring_seed": seed})
    run.write_metrics(metrics)
    run.write_predictions(prediction_table(job, outputs, "test"))
    return metrics
