"""Stable hashes of config sub-trees (on-disk caches are keyed by exactly the settings that
shape them), the config as written, and the library versions records carry (the run record
itself: koemo.modeling.runs.save_run_record)."""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from typing import Any

from koemo.config.schema import Section, feature_keys
from koemo.config.schema import Config


def as_written(obj: Any) -> Any:
    """A typed config section -> the mapping it was written as (anything else: str)."""
    return obj.as_dict() if isinstance(obj, Section) else str(obj)


def written_config(cfg: Section | dict[str, Any]) -> dict[str, Any]:
    """A typed config as written (a plain mapping stays as it is): what run files record."""
    return cfg.as_dict() if isinstance(cfg, Section) else cfg


def fingerprint(obj: Any, length: int = 12) -> str:
    """Stable short hash of any JSON-serialisable value (dict key order does not matter);
    typed config sections hash as written (koemo.config.schema), never with defaults."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=as_written)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def feature_fingerprint(cfg: Config) -> str:
    """Only the settings that change the stored mel+delta arrays (marked `stored` in the
    schema), as written."""
    written = cfg.features.as_dict()
    return fingerprint({k: written[k] for k in feature_keys()})


_VERSIONED = ("koemo", "torch", "torchaudio", "transformers", "sentencepiece", "librosa",
              "numpy", "pandas", "scikit-learn", "safetensors")


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
