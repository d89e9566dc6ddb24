"""Checkpoints: `model.safetensors` (weights) + `meta.json` (config, stage, classes, head
counts, fingerprints, library versions, epoch, metrics), both written atomically; a
separate `training_state.pt` (optimizer, scheduler, epoch, best, RNG states) for resuming,
read back with torch.load(weights_only=True). No pickles.

Every problem with a checkpoint (missing or corrupt file, wrong stage, weights that do not
fit the model, a head-count or config mismatch) raises CheckpointError naming the file.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from koemo.config.fingerprints import (feature_fingerprint, fingerprint, library_versions,
                                       written_config)
from koemo.config.load import parse_saved_config
from koemo.config.schema import STAGES, Config, Stage
from koemo.errors import CheckpointError
from koemo.dataset.labels import classes_for, data_classes
from koemo.modeling.fusion import build_classifier, fusion_kind
from koemo.modeling.layers import AttentionImpl, MultiHeadAttention
from koemo.modeling.models import AudioRegressor, FrozenRegressors, TextRegressor

CHECKPOINT_FORMAT = "koemo-checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
TRAINING_STATE_FILE = "training_state.pt"
# Config entries that shape the weights: a checkpoint only fits a config that agrees on them.
_MODEL_SHAPING = (("models",), ("features", "n_mels"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see the
    old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def model_stage(model: nn.Module) -> Stage:
    if isinstance(model, AudioRegressor):
        return "audio"
    if isinstance(model, TextRegressor):
        return "text"
    if isinstance(model, FrozenRegressors):
        return "multimodal"
    raise ValueError(f"{type(model).__name__} is not a koemo model")


def model_num_heads(model: nn.Module) -> dict[str, int | None]:
    """Head counts as the model runs them: the regressors' own, and for a classifier also
    its fusion layers' (None when it has none) and its regressors' as run inside it."""
    if isinstance(model, (AudioRegressor, TextRegressor)):
        return {model_stage(model): model.num_heads}
    if not isinstance(model, FrozenRegressors):
        raise ValueError(f"{type(model).__name__} is not a koemo model")
    own = [m for name, m in model.named_modules()
           if isinstance(m, MultiHeadAttention) and not name.startswith(("AudioModel.", "TextModel."))]
    heads: dict[str, int | None] = {"multimodal": own[0].num_heads if own else None}
    if model.has_regressors:
        heads.update(audio=model.AudioModel.num_heads, text=model.TextModel.num_heads)
    return heads


def _weights_bytes(state: dict, stage: str) -> bytes:
    return safetensors_save(state, metadata={"format": "pt", "koemo_stage": stage})


def cpu_copy(value: Any) -> Any:
    """A CPU copy of every tensor in a nested dict/list (what is saved must not change while a
    background writer saves it and training goes on)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True).contiguous()
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


def checkpoint_snapshot(model: nn.Module, cfg: Config, meta: dict | None = None) -> dict:
    """What `save_checkpoint` writes, taken now: CPU copies of the weights and the meta record
    (without the weights' hash, computed when written)."""
    meta = dict(meta or {})
    stage = model_stage(model)
    if meta.setdefault("stage", stage) != stage:
        raise ValueError(f"meta says stage {meta['stage']!r} but the model is a {stage} model")
    record = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage,
        "kind": fusion_kind(model) if stage == "multimodal" else None,
        "regressors": bool(getattr(model, "has_regressors", False)),
        "classes": list(data_classes(cfg.data)),
        "num_heads": model_num_heads(model),
        "config_name": cfg.name,
        "config_fingerprint": fingerprint(cfg),
        "feature_fingerprint": feature_fingerprint(cfg),
        "data_fingerprint": None,
        "epoch": None,
        "metrics": {},
        "versions": library_versions(),
        "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": written_config(cfg),
        **meta,
    }
    return {"state": cpu_copy(model.state_dict()), "record": record}


def write_checkpoint(directory: str | Path, snapshot: dict) -> Path:
    """Write a `checkpoint_snapshot` as `directory/model.safetensors` + `directory/meta.json`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = _weights_bytes(snapshot["state"], snapshot["record"]["stage"])
    record = {**snapshot["record"], "weights_sha256": hashlib.sha256(weights).hexdigest()}
    # Weights first, meta last: meta.json names the exact weights it belongs to (sha256).
    atomic_write_bytes(directory / WEIGHTS_FILE, weights)
    text = json.dumps(record, indent=2, ensure_ascii=False, default=str)
    atomic_write_bytes(directory / META_FILE, text.encode("utf-8"))
    return directory


def save_checkpoint(directory: str | Path, model: nn.Module, cfg: Config,
                    meta: dict | None = None) -> Path:
    """Write `directory/model.safetensors` and `directory/meta.json`; return the directory.

    `meta` adds or overrides entries (epoch, metrics, data_fingerprint, source, ...); its
    `stage`, if given, must match the model.
    """
    return write_checkpoint(directory, checkpoint_snapshot(model, cfg, meta))


def copy_checkpoint(source: str | Path, directory: str | Path) -> Path:
    """`directory` made the same checkpoint as `source` (files hard-linked where the filesystem
    allows, else copied; each replaced atomically, weights before meta), without serialising
    the weights again."""
    import shutil

    source, directory = Path(source), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, META_FILE):
        tmp = directory / f".{name}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(source / name, tmp)
            except OSError:         # no hard links here (e.g. a FUSE-mounted Drive)
                shutil.copyfile(source / name, tmp)
            os.replace(tmp, directory / name)
        finally:
            tmp.unlink(missing_ok=True)
    return directory


def read_format_json(directory: str | Path, filename: str, expected_format: str,
                     what: str, missing_hint: str) -> dict:
    """Read `directory/filename`, a JSON object whose `format` must be `expected_format`;
    every problem is a CheckpointError naming the file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: {what} directory not found")
    path = directory / filename
    if not path.is_file():
        raise CheckpointError(f"{path}: missing ({missing_hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} file")
    return data


def read_meta(directory: str | Path) -> dict:
    return read_format_json(directory, META_FILE, CHECKPOINT_FORMAT, "checkpoint",
                            "not a koemo checkpoint, or its save was interrupted")


def load_checkpoint(directory: str | Path,
                    expect_stage: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint: (state_dict on CPU, meta)."""
    directory = Path(directory)
    meta = read_meta(directory)
    if expect_stage is not None and meta.get("stage") != expect_stage:
        raise CheckpointError(f"{directory}: a {meta.get('stage')} checkpoint, "
                              f"expected a {expect_stage} one")
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{path}: does not match {META_FILE} (corrupt, truncated, "
                              "or written by a different save)")
    try:
        state = safetensors_load(data)
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{path}: cannot be read as safetensors ({err})") from err
    return state, meta


def saved_config(meta: dict, source: str | Path = "checkpoint meta.json") -> Config:
    """The typed config a checkpoint was saved with. Keys this koemo does not know (written by
    another version) are a warning, not an error; see koemo.config.load.parse_saved_config."""
    import warnings

    if isinstance(meta["config"], Config):
        return meta["config"]
    cfg, notes = parse_saved_config(meta["config"], str(source))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return cfg


def config_differences(saved: Config | dict[str, Any], cfg: Config) -> list[str]:
    """Model-shaping config entries that differ between a checkpoint's config (typed, or as
    its meta.json wrote it) and `cfg`."""
    diffs = []
    was, now = written_config(saved), written_config(cfg)     # compared as written
    for keys in _MODEL_SHAPING:
        a, b = was, now
        for key in keys:
            a, b = a.get(key, {}), b.get(key, {})
        if a != b:
            diffs.append(f"{'.'.join(keys)}: checkpoint {a!r} vs config {b!r}")
    saved_classes = classes_for(was["data"]["label_policy"], was["data"].get("classes"))
    classes = classes_for(now["data"]["label_policy"], now["data"].get("classes"))
    if saved_classes != classes:
        diffs.append(f"classes: checkpoint {list(saved_classes)} vs config {list(classes)}")
    return diffs


def check_config(meta: dict, cfg: Config, source: str | Path) -> None:
    diffs = config_differences(meta["config"], cfg)
    if diffs:
        raise CheckpointError(f"{source}: checkpoint does not fit the config: " + "; ".join(diffs))


def check_num_heads(model: nn.Module, meta: dict, source: str | Path) -> None:
    """Head counts are invisible in weight shapes: compare them with the ones recorded."""
    recorded, actual = meta.get("num_heads", {}), model_num_heads(model)
    wrong = {k: (recorded.get(k), v) for k, v in actual.items() if recorded.get(k) != v}
    if wrong:
        details = ", ".join(f"{k}: saved with {saved} heads, model has {now}"
                            for k, (saved, now) in wrong.items())
        raise CheckpointError(f"{source}: attention head count mismatch ({details})")


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """strict load with a readable error for missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit {type(model).__name__}: "
                              + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_into(model: nn.Module, directory: str | Path, cfg: Config | None = None) -> dict:
    """Load a checkpoint into an existing model (stage, heads, config and shapes checked)."""
    state, meta = load_checkpoint(directory, expect_stage=model_stage(model))
    if cfg is not None:
        check_config(meta, cfg, directory)
    check_num_heads(model, meta, directory)
    load_weights(model, state, directory)
    return meta


def build_model(meta: dict, attention_impl: AttentionImpl = "sdpa",
                encoder: nn.Module | None = None) -> nn.Module:
    """An untrained model of the architecture a checkpoint's meta describes."""
    cfg, stage = saved_config(meta), meta["stage"]
    models, fixes = cfg.models, cfg.fixes
    heads = meta.get("num_heads", {})
    if stage == "audio":
        return AudioRegressor(models, fixes, attention_impl, num_heads=heads.get("audio"))
    if stage == "text":
        return TextRegressor(models, fixes, encoder, attention_impl, num_heads=heads.get("text"))
    if stage != "multimodal":
        raise CheckpointError(f"unknown checkpoint stage {stage!r}")
    audio, text = None, None
    if meta.get("regressors"):
        # As trained: the classifier's own reuse rule (fixes) sets the audio heads it runs with.
        audio = AudioRegressor(models, fixes, attention_impl)
        text = TextRegressor(models, fixes, encoder, attention_impl, num_heads=heads.get("text"))
    return build_classifier(meta["kind"], models, fixes, cfg.data, audio, text, attention_impl)


def build_from_checkpoint(directory: str | Path, expect_stage: str | None = None,
                          cfg: Config | None = None, attention_impl: AttentionImpl = "sdpa",
                          encoder: nn.Module | None = None) -> nn.Module:
    """Rebuild the saved model from its own config and load its weights; returns it in eval
    mode. With `cfg`, also require that the checkpoint fits that config."""
    state, meta = load_checkpoint(directory, expect_stage)
    if cfg is not None:
        check_config(meta, cfg, directory)
    try:
        model = build_model(meta, attention_impl, encoder)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory}: cannot rebuild the model from {META_FILE} ({err})") from err
    check_num_heads(model, meta, directory)
    load_weights(model, state, directory)
    return model.eval()


# --- training state (resume) -------------------------------------------------------------

def capture_rng_state() -> dict:
    """Python, NumPy (global) and torch RNG states as tensors/primitives (weights_only-safe)."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)          # legacy=True: the tuple form, never the dict
    name, keys, pos, has_gauss, cached = legacy
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state_snapshot(optimizer: torch.optim.Optimizer, scheduler: Any = None,
                            epoch: int = 0, best: float | None = None,
                            rng_state: dict | None = None, extra: dict | None = None) -> dict:
    """What `save_training_state` writes, taken now (CPU copies of the optimizer's tensors)."""
    import copy

    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "best": best,
        "optimizer": cpu_copy(optimizer.state_dict()),
        "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,
        "rng": rng_state if rng_state is not None else capture_rng_state(),
        "extra": copy.deepcopy(extra or {}),
    }


def write_training_state(directory: str | Path, payload: dict) -> Path:
    """Write a `training_state_snapshot` as `directory/training_state.pt` (atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TRAINING_STATE_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_training_state(directory: str | Path, optimizer: torch.optim.Optimizer,
                        scheduler: Any = None, epoch: int = 0, best: float | None = None,
                        rng_state: dict | None = None, extra: dict | None = None) -> Path:
    """Everything needed to resume after `epoch`: `directory/training_state.pt`.
    `rng_state` defaults to the current global RNG states; `extra` holds small primitives
    (early-stopping counter, history, ...)."""
    return write_training_state(directory, training_state_snapshot(
        optimizer, scheduler, epoch, best, rng_state, extra))


def load_training_state(directory: str | Path, optimizer: torch.optim.Optimizer | None = None,
                        scheduler: Any = None, restore_rng: bool = True) -> dict:
    """Load `training_state.pt` into the given optimizer/scheduler (and the global RNGs);
    return dict(epoch, best, extra, rng)."""
    path = Path(directory) / TRAINING_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (nothing to resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling/zip errors of a damaged or foreign file
        raise CheckpointError(f"{path}: cannot be read ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a koemo training state")
    try:
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None and payload["scheduler"] is not None:
            scheduler.load_state_dict(payload["scheduler"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: does not fit this optimizer/scheduler ({err})") from err
    if restore_rng:
        restore_rng_state(payload["rng"])
    return {k: payload[k] for k in ("epoch", "best", "extra", "rng")}
