"""Scoring a finished run or checkpoint again (`koemo evaluate`): the stage's data for one
split, the checkpoint the test-scoring rule names, and the same metrics as test_metrics.json.

Scored as the run scored its test split (`koemo.modeling.scoring.score_split`): the same rows in
the same batches, the classifier from the run's frozen-output cache where it trained from one,
every random draw (the faithful model keeps attention dropout on in eval) from the run's seed.
So the test split of a run gives its test_metrics.json exactly, on every call (runs scored
before koemo seeded test scoring, which have no `scoring_seed` there, are reproduced only
where no dropout is drawn).

The config is the run's own config.yaml (or `cfg`), with `overrides` applied. The model is
rebuilt from the checkpoint's own settings, so a setting that differs from the checkpoint's is
honoured only where evaluation reads it (`evaluation_changes`): the eval-time switches
(fixes.eval_attention_dropout_off, fixes.test_best_checkpoint), the evaluated stage's batch
size, and the settings the schema marks as not changing results (device, precision, resident,
...). The result then differs from the run's and says so (`settings_changed`, `notes`). Any
other difference (model shapes, features, text encoder, the split, training settings) is
refused in one line naming the setting, the checkpoint's value and why.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, cast

import torch

from koemo.config.schema import (Config, FusionKind, Section, Stage, _section_type,
                                 not_results_sections, speed_settings)
from koemo.dataset.splits import Split
from koemo.errors import KoemoInputError
from koemo.modeling.precision import resolve_device, resolve_precision
from koemo.modeling.runs import RunDir, scores_files, split_name
from koemo.modeling.scoring import prediction_table, score_split
from koemo.modeling.stage import STAGES, build_stage, on_device

# Settings that change how a trained model is run or scored, not what it learned.
EVALUATION_SWITCHES = ("fixes.eval_attention_dropout_off", "fixes.test_best_checkpoint")
# Why any other setting cannot differ from the checkpoint's (first matching prefix).
REFUSAL_REASONS = (
    ("models.", "it shapes the model, whose weights fit only the checkpoint's value"),
    ("features.", "the model was trained on features made with the checkpoint's value"),
    ("text.", "the model was trained on the states of the checkpoint's text encoder"),
    ("fixes.", "it changes what the model computes; evaluate rebuilds it as it was trained"),
    ("data.", "it chooses the run's rows and labels; evaluate that split's own run instead"),
    ("augment.", "a training setting: scoring does not read it"),
    ("train.", "a training setting: scoring does not read it"),
    ("seed", "the checkpoint was trained with its own seed; evaluate that seed's run instead"),
)


def resolve_checkpoint(run_or_checkpoint: str | Path, cfg: Config | None,
                       overrides: Iterable[str] = ()) -> tuple[Path, Config]:
    """(checkpoint dir, config) from a run dir (its config.yaml; best or last checkpoint as the
    test-scoring rule says) or a checkpoint dir (model.safetensors + meta.json). `overrides`
    (`key=value`) are applied to the config first."""
    from koemo.config.load import apply_overrides, load_saved_config, with_changes

    path = Path(run_or_checkpoint)
    if not path.is_dir():
        raise KoemoInputError(f"{path}: not a run or checkpoint directory")
    run = RunDir(path.parent if (path / "model.safetensors").is_file() else path)
    if cfg is None:
        config_file = run.config_file
        if not config_file.is_file():
            raise KoemoInputError(f"{config_file}: not found; pass the config explicitly")
        cfg = load_saved_config(config_file)
    overrides = list(overrides)
    if overrides:
        cfg = with_changes(cfg, apply_overrides({}, overrides))
    if (path / "model.safetensors").is_file():
        return path, cfg
    checkpoint = run.best if cfg.fixes.test_best_checkpoint else run.last
    if not (checkpoint / "model.safetensors").is_file():
        raise KoemoInputError(f"{checkpoint}: no checkpoint (is {path} a finished run?)")
    return checkpoint, cfg


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested dict."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _changes_no_result(key: str) -> bool:
    """Whether the schema marks `key` (or a section above it) as never changing results."""
    parts = key.split(".")
    if parts[0] in not_results_sections():
        return True
    section: type[Section] | None = Config
    for part in parts:
        if section is None or part not in section.model_fields:
            return False
        if part in speed_settings(section):
            return True
        section = _section_type(section.model_fields[part].annotation)
    return False


def evaluation_changes(saved: Config, cfg: Config, stage: Stage, source: Path) -> dict:
    """{key: (checkpoint's value, evaluated value)} of the settings where `cfg` differs from the
    checkpoint's config and evaluation honours it; KoemoInputError (one line) naming every
    setting it cannot honour."""
    missing = object()
    old, new = dict(_leaves(saved.model_dump())), dict(_leaves(cfg.model_dump()))
    honoured, refused = {}, []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a == b:
            continue
        a, b = (None if v is missing else v for v in (a, b))
        if key in EVALUATION_SWITCHES or key == f"train.{stage}.batch_size" or _changes_no_result(key):
            honoured[key] = (a, b)
            continue
        why = next((reason for prefix, reason in REFUSAL_REASONS if key.startswith(prefix)),
                   "evaluate cannot honour it")
        refused.append(f"{key}={b!r} (the checkpoint has {a!r}: {why})")
    if refused:
        raise KoemoInputError(f"{source}: cannot evaluate with " + "; ".join(refused))
    return {k: v for k, v in honoured.items() if k.split(".")[0] not in not_results_sections()}


def evaluate(run_or_checkpoint: str | Path, workdir: str | Path, cfg: Config | None = None,
             split: Split = "test", predictions_out: str | Path | None = None,
             progress: bool = False, overrides: Iterable[str] = ()) -> dict:
    """Score a run's checkpoint (or a checkpoint dir) on one split of `workdir`; returns the
    metrics dict (as in test_metrics.json) and writes per-row predictions to `predictions_out`.
    Frozen outputs the run's cache lacks are computed in a temporary folder, never in the run."""
    from koemo.modeling.checkpoint import build_from_checkpoint, read_meta, saved_config
    from koemo.modeling.models import set_eval_attention_dropout

    checkpoint, cfg = resolve_checkpoint(run_or_checkpoint, cfg, overrides)
    meta = read_meta(checkpoint)
    if meta.get("stage") not in STAGES:
        raise KoemoInputError(f"{checkpoint}/meta.json: unknown stage {meta.get('stage')!r}")
    stage = cast(Stage, meta["stage"])
    changed = evaluation_changes(saved_config(meta, checkpoint / "meta.json"), cfg, stage,
                                 checkpoint / "meta.json")
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    model = set_eval_attention_dropout(build_from_checkpoint(checkpoint),
                                       bool(cfg.fixes.eval_attention_dropout_off)).to(device)
    seed = int(meta.get("seed", cfg.seed))
    kind: FusionKind = meta.get("classifier_kind") or "attention_lstm"
    with tempfile.TemporaryDirectory(prefix="koemo-evaluate-") as scratch:
        job = build_stage(stage, workdir, cfg, seed, run_dir=checkpoint.parent, device=device,
                          classifier_kind=kind, splits=(split,), model=model, augment=False,
                          progress=progress, scratch=Path(scratch))
        job = on_device(job, cfg, device, kind)         # as the run's scoring
        outputs, metrics = score_split(job, model, split, cfg, seed, device, precision,
                                       int(cfg.train.num_workers))
    # As in test_metrics.json: `split` names the protocol split, `subset` the rows scored.
    metrics.update(checkpoint=str(checkpoint), stage=stage, split=split_name(cfg), subset=split,
                   epoch=meta.get("epoch"), precision=precision, scoring_seed=seed)
    notes = unseeded_run_note(checkpoint.parent, split, cfg)
    if changed:
        metrics["settings_changed"] = {k: {"checkpoint": a, "evaluated": b}
                                       for k, (a, b) in changed.items()}
        notes.append("scored with settings other than the checkpoint's ("
                     + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
                     + "): the numbers can differ from the run's own test metrics")
    if notes:
        metrics["notes"] = notes
    if predictions_out is not None:
        prediction_table(job, outputs, split).to_parquet(predictions_out, index=False)
    return metrics


def unseeded_run_note(run_dir: Path, split: Split, cfg: Config) -> list[str]:
    """A note when the run's test metrics were scored before koemo seeded test scoring
    (no `scoring_seed`) and attention dropout is drawn in eval: evaluate cannot give its numbers."""
    run = RunDir(run_dir)
    if split != "test" or cfg.fixes.eval_attention_dropout_off or not run.is_scored():
        return []
    if run.metrics().scoring_seed is not None:
        return []
    return [f"{scores_files(run.path, 'test')[0]} was scored before koemo seeded test scoring: "
            "where attention dropout is drawn in eval, these numbers are repeatable but cannot "
            "equal that file's"]
