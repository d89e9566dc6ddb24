"""Scoring a finished run or checkpoint again (`koemo evaluate`): the stage's data for one
split, the checkpoint the test-scoring rule names, and the same metrics as test_metrics.json."""
from __future__ import annotations

from pathlib import Path

import torch

from koemo.errors import KoemoInputError
from koemo.modeling.precision import resolve_device, resolve_precision
from koemo.modeling.runs import split_name
from koemo.modeling.trim import trimming_forward
from koemo.modeling.train import predict, prediction_table, score
from koemo.modeling.stage import STAGES, build_stage, make_loader, resident_datasets


def resolve_checkpoint(run_or_checkpoint: str | Path, cfg: dict | None) -> tuple[Path, dict]:
    """(checkpoint dir, config) from a run dir (its config.yaml; best or last checkpoint as the
    test-scoring rule says) or a checkpoint dir (model.safetensors + meta.json)."""
    from koemo.config.load import load_saved_config

    path = Path(run_or_checkpoint)
    if not path.is_dir():
        raise KoemoInputError(f"{path}: not a run or checkpoint directory")
    run_dir = path.parent if (path / "model.safetensors").is_file() else path
    if cfg is None:
        config_file = run_dir / "config.yaml"
        if not config_file.is_file():
            raise KoemoInputError(f"{config_file}: not found; pass the config explicitly")
        cfg = load_saved_config(config_file)
    if (path / "model.safetensors").is_file():
        return path, cfg
    which = "best" if cfg.fixes.test_best_checkpoint else "last"
    if not (path / which / "model.safetensors").is_file():
        raise KoemoInputError(f"{path / which}: no checkpoint (is {path} a finished run?)")
    return path / which, cfg


def evaluate(run_or_checkpoint: str | Path, workdir: str | Path, cfg: dict | None = None,
             split: str = "test", predictions_out: str | Path | None = None,
             progress: bool = False) -> dict:
    """Score a run's checkpoint (or a checkpoint dir) on one split of `workdir`; returns the
    metrics dict (as in test_metrics.json) and writes per-row predictions to `predictions_out`.

    The multimodal classifier runs its frozen regressors on the raw inputs here (no cache)."""
    from koemo.modeling.checkpoint import build_from_checkpoint, load_checkpoint

    checkpoint, cfg = resolve_checkpoint(run_or_checkpoint, cfg)
    _, meta = load_checkpoint(checkpoint)
    stage = meta.get("stage")
    if stage not in STAGES:
        raise KoemoInputError(f"{checkpoint}/meta.json: unknown stage {stage!r}")
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    model = build_from_checkpoint(checkpoint).to(device)
    seed = int(meta.get("seed", cfg.seed))
    job = build_stage(stage, workdir, cfg, seed, run_dir=checkpoint, device=device,
                      classifier_kind=meta.get("classifier_kind") or "attention_lstm",
                      splits=(split,), model=model, cache_frozen=False, augment=False,
                      progress=progress)
    job.datasets = resident_datasets(job.datasets, cfg, device)
    job.forward = trimming_forward(job.forward, cfg, stage)     # as the run's test scoring
    loader = make_loader(job.datasets[split], cfg.train.stage(stage).batch_size, device,
                         int(cfg.train.num_workers))
    outputs = predict(job, model, loader, device, precision)
    metrics = score(job, outputs, split, cfg)
    # As in test_metrics.json: `split` names the protocol split, `subset` the rows scored.
    metrics.update(checkpoint=str(checkpoint), stage=stage, split=split_name(cfg), subset=split,
                   epoch=meta.get("epoch"))
    if predictions_out is not None:
        prediction_table(job, outputs, split).to_parquet(predictions_out, index=False)
    return metrics
