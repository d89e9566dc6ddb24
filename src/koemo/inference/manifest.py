"""The predictor directory's manifest (`predictor.json`): which stage lives where and which text
model goes with it. `koemo.inference.export` writes it, `koemo.inference.predictor.Predictor` and
`koemo.inference.hub` read it."""
from __future__ import annotations

from pathlib import Path

MANIFEST_FILE = "predictor.json"
MANIFEST_FORMAT = "koemo-predictor/1"
STAGE_DIRS = {"audio": "audio", "text": "text", "multimodal": "multimodal"}
TEXT_MODEL_DIR = "kobert"


def read_manifest(directory: Path) -> dict:
    from koemo.modeling.checkpoint import read_format_json

    return read_format_json(
        directory, MANIFEST_FILE, MANIFEST_FORMAT, "predictor checkpoint",
        "a predictor directory is assembled from trained stages with "
        "`koemo predict --export DIR ...` (koemo.inference.export.export_predictor)")


def resolve_text_model(directory: Path, reference: str) -> str:
    """A manifest entry is a directory relative to the predictor directory, or a hub id."""
    local = directory / reference
    return str(local) if local.exists() else reference
