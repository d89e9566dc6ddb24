"""Experiment configuration: one YAML file per experiment, with `base:` inheritance.

A config is a plain nested dict. `load_config` resolves `base:` chains (paths relative to the
including file), applies `key.sub=value` overrides from the command line, and validates the
few invariants everything else relies on (koemo.config.fingerprints hashes its sub-trees).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from koemo.config.assets import configs_dir
from koemo.errors import KoemoInputError

# The checkout's configs/, or the copy a wheel carries (koemo.config.assets).
CONFIG_DIR = configs_dir()


class ConfigError(KoemoInputError):
    """A config file is missing, malformed or inconsistent."""


# keep: recordings without signal train and score as in the original; drop: left out.
SILENT_AUDIO_POLICIES = ("keep", "drop")


def _deep_merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Accept a path, or a bare name such as `paper` for `configs/paper.yaml`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path, CONFIG_DIR / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config not found: {name_or_path} (looked in . and {CONFIG_DIR})")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular `base:` chain")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return _deep_merge(_read_yaml((path.parent / base), seen + (path,)), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.audio.epochs=3` -> (['train','audio','epochs'], 3); values parse as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip().split("."), parsed


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = parse_override(text)
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key} is not a mapping")
        node[keys[-1]] = value
    return cfg


def text_input_dim(cfg: dict) -> int:
    """Width of the text encoder's states: models.text.input_dim, or d_model when unset (the
    paper: KoBERT's 768 = d_model, no projection)."""
    return int(cfg["models"]["text"].get("input_dim") or cfg["models"]["d_model"])


# fixes: switches renamed so that every one reads false = as the original: old name -> message.
_RENAMED_FIXES = {
    "reseed_every_call": "fixes.reseed_every_call was renamed fixes.seed_per_sample, with the "
                         "opposite meaning: reseed_every_call true (the original) is "
                         "seed_per_sample false, reseed_every_call false is seed_per_sample true",
}


def validate(cfg: dict) -> dict:
    for section in ("data", "features", "text", "models", "fixes", "train"):
        if section not in cfg:
            raise ConfigError(f"config {cfg.get('name', '?')}: missing section `{section}`")
    for old, message in _RENAMED_FIXES.items():
        if old in cfg["fixes"]:
            raise ConfigError(f"config {cfg.get('name', '?')}: {message}")
    feats, models = cfg["features"], cfg["models"]
    if feats["n_mels"] % 4:
        raise ConfigError("features.n_mels must be divisible by 4 (two stride-2 convolutions)")
    audio_dim = models["audio"]["conv_channels"][-1] * feats["n_mels"] // 4
    frontend = models["audio"].get("frontend", "mel") or "mel"
    if frontend not in ("mel", "encoder"):
        raise ConfigError(f"models.audio.frontend must be mel or encoder, not {frontend!r}")
    if frontend == "encoder":
        if not (models["audio"].get("encoder") or {}).get("name"):
            raise ConfigError("models.audio.frontend: encoder needs models.audio.encoder.name "
                              "(hub id or local directory of a wav2vec2/HuBERT/WavLM model)")
    elif audio_dim != models["d_model"]:
        raise ConfigError(
            f"models.d_model={models['d_model']} but the audio extractor gives "
            f"conv_channels[-1] * n_mels / 4 = {audio_dim}")
    for stage in ("audio", "text", "multimodal"):
        heads = models[stage]["num_heads"]
        if models["d_model"] % heads:
            raise ConfigError(f"models.d_model must be divisible by models.{stage}.num_heads")
    # The stand-in's width is checked here when set; an unset one takes build_standin's
    # default and a mismatch then surfaces in the text model.
    text_dim = text_input_dim(cfg)
    standin = cfg["text"].get("standin") or {}
    if cfg["text"].get("encoder") == "standin" and standin.get("hidden_size", text_dim) != text_dim:
        raise ConfigError(
            f"text.standin.hidden_size={standin['hidden_size']} but the text model takes states "
            f"of width {text_dim} (models.text.input_dim, default models.d_model): set them equal")
    if cfg["data"].get("silent_audio", "keep") not in SILENT_AUDIO_POLICIES:
        raise ConfigError(f"data.silent_audio must be one of {', '.join(SILENT_AUDIO_POLICIES)}, "
                          f"not {cfg['data']['silent_audio']!r}")
    if cfg["data"]["protocol"] not in ("paper", "session", "cv5"):
        raise ConfigError(f"data.protocol must be paper, session or cv5, not {cfg['data']['protocol']!r}")
    return cfg


def load_config(name_or_path: str | Path = "paper", overrides: Iterable[str] = ()) -> dict:
    """Load a config by name or path, resolve `base:`, apply overrides, validate."""
    path = resolve_config_path(name_or_path)
    cfg = apply_overrides(_read_yaml(path), overrides)
    cfg.setdefault("name", path.stem)
    return validate(cfg)
