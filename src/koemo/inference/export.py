"""Assembling a predictor directory from trained stages (`koemo predict --export`).

See koemo.inference.predictor for the directory layout and for loading it (`Predictor.from_checkpoint`).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from koemo.config.schema import Config, FusionKind
from koemo.errors import CheckpointError, KoemoInputError
from koemo.modeling.checkpoint import saved_config
from koemo.modeling.runs import RunDir, run_dir_for
from koemo.inference.predictor import Predictor
from koemo.inference.manifest import MANIFEST_FILE, MANIFEST_FORMAT, STAGE_DIRS, TEXT_MODEL_DIR
from koemo.inference.checks import check_stage_metas
from koemo.inference.provenance import make_provenance
from koemo.text.standin import TextPart

def checkpoint_dir(path: str | Path, which: str = "best") -> Path:
    """A checkpoint directory, or a training run directory holding `best/` and `last/`.
    which="tested": the checkpoint the run's test metrics were computed with."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    run = RunDir(path)
    if which == "tested":
        which = (run.metrics().checkpoint if run.is_scored() else None) or "best"
    if (run.checkpoint(which) / "meta.json").is_file():
        return run.checkpoint(which)
    raise CheckpointError(f"{path}: neither a checkpoint (meta.json) nor a run directory with "
                          f"{which}/meta.json")


def _text_model_source(cfg: Config, part: TextPart, checkpoint: Path,
                       workdir: str | Path | None) -> str:
    """cfg.text.<part> as a usable reference: a stand-in resolves to W/kobert-standin, the
    workdir given or found above the checkpoint (runs live at W/runs/...)."""
    from koemo.text import resolve_text_source
    from koemo.text.standin import STANDIN_KEYWORD

    if getattr(cfg.text, part) != STANDIN_KEYWORD:
        return str(getattr(cfg.text, part))
    candidates = [Path(workdir)] if workdir is not None else list(checkpoint.resolve().parents)
    for candidate in candidates:
        source = Path(resolve_text_source(cfg, candidate, part=part))
        if source.is_dir():
            return str(source)
    raise CheckpointError(f"{checkpoint}: trained with the KoBERT stand-in (text.{part}: standin) "
                          "but no <workdir>/kobert-standin was found; pass workdir=/--workdir")


def export_predictor(audio: str | Path, text: str | Path, multimodal: str | Path,
                     out_dir: str | Path, workdir: str | Path | None = None,
                     text_model: str | None = None, overwrite: bool = False,
                     allow_mismatched_regressors: bool = False) -> Path:
    """Assemble a predictor directory from three trained stages.

    `audio`, `text`: checkpoint directories, or run directories (their `best/`: the weights
    the classifier was built on). `multimodal`: a checkpoint or run directory (the checkpoint
    its test metrics used). `text_model`: tokenizer+encoder directory or hub id; default: the
    classifier config's text.tokenizer/encoder (a stand-in is found under `workdir`). Local
    text models are copied into DIR/kobert/, hub ids only referenced. The result is loaded
    once as a check before this returns: the classifier's frozen regressors must equal the
    audio/text stages unless `allow_mismatched_regressors` (e.g. original checkpoints from
    different runs; every prediction then says so in its notes).
    """
    from koemo.modeling.checkpoint import read_meta

    out_dir = Path(out_dir)
    sources = {"audio": checkpoint_dir(audio), "text": checkpoint_dir(text),
               "multimodal": checkpoint_dir(multimodal, which="tested")}
    metas = {stage: read_meta(path) for stage, path in sources.items()}
    for stage, meta in metas.items():
        if meta.get("stage") != stage:
            raise CheckpointError(f"{sources[stage]}: a {meta.get('stage')} checkpoint given as the {stage} stage")
    check_stage_metas(metas, {s: out_dir / d for s, d in STAGE_DIRS.items()})
    cfg = saved_config(metas["multimodal"])
    parts: tuple[TextPart, ...] = ("tokenizer", "encoder")
    refs = {part: text_model or _text_model_source(cfg, part, sources["multimodal"], workdir)
            for part in parts}
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise KoemoInputError(f"{out_dir}: exists and is not empty (use overwrite=True / --force)")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stage, path in sources.items():
        shutil.copytree(path, out_dir / STAGE_DIRS[stage])
    manifest_refs = _copy_text_models(refs, out_dir)
    from koemo.inference.frontend import copy_speech_encoder
    manifest_refs.update(copy_speech_encoder(cfg, out_dir))
    manifest = {"format": MANIFEST_FORMAT, "stages": dict(STAGE_DIRS), **manifest_refs,
                "classes": metas["multimodal"]["classes"], "config_name": cfg.name,
                "sources": {stage: str(path.resolve()) for stage, path in sources.items()},
                "text_model_sources": refs,
                "allow_mismatched_regressors": bool(allow_mismatched_regressors),
                "provenance": make_provenance(cfg, sources, workdir),
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    try:
        Predictor.from_checkpoint(out_dir)
    except KoemoInputError:
        shutil.rmtree(out_dir)
        raise
    return out_dir


def export_from_workdir(workdir: str | Path, cfg: Config, seed: int, out_dir: str | Path,
                        classifier_kind: FusionKind = "attention_lstm", text_model: str | None = None,
                        overwrite: bool = False) -> Path:
    """`export_predictor` over the runs `koemo train` wrote for this config, split and seed."""
    runs = [run_dir_for(workdir, cfg, stage, seed, classifier_kind)
            for stage in ("audio", "text", "multimodal")]
    for run in runs:
        if not run.is_dir():
            raise KoemoInputError(f"{run}: no training run here; train the three stages with "
                                  "`koemo train audio|text|multimodal` and the same --config/--seed/--set")
    return export_predictor(runs[0], runs[1], runs[2], out_dir, workdir=workdir,
                            text_model=text_model, overwrite=overwrite)


def _copy_text_models(refs: dict, out_dir: Path) -> dict:
    """Copy local tokenizer/encoder directories into out_dir; hub ids stay references."""
    copied: dict[str, str] = {}
    out = {}
    for part, ref in refs.items():
        if not Path(ref).is_dir():
            out[part] = ref
            continue
        key = str(Path(ref).resolve())
        if key not in copied:
            name = TEXT_MODEL_DIR if not copied else f"{TEXT_MODEL_DIR}-{part}"
            shutil.copytree(ref, out_dir / name)
            copied[key] = name
        out[part] = copied[key]
    return out
