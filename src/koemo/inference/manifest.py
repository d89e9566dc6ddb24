"""The predictor directory's manifest (`predictor.json`): which stage lives where and which text
model goes with it. `koemo.inference.export` writes it, `koemo.inference.predictor.Predictor` and
`koemo.inference.hub` read it.

A predictor folder may come from anyone (a download, a hub repository), so what its manifest
names is checked before anything is read: every stage and local text model must lie inside the
folder (no `../other/audio`, no absolute paths, no symlink out), and a text model named by hub
id must be one koemo knows (`KNOWN_HUB_TEXT_MODELS`); any other must be copied into the folder.
"""
from __future__ import annotations

from pathlib import Path

from koemo.errors import CheckpointError

MANIFEST_FILE = "predictor.json"
MANIFEST_FORMAT = "koemo-predictor/1"
STAGE_DIRS = {"audio": "audio", "text": "text", "multimodal": "multimodal"}
TEXT_MODEL_DIR = "kobert"
# Hub ids a manifest may name for its tokenizer/encoder (the paper's KoBERT); another text
# model travels inside the folder (`koemo predict --export ... --text-model DIR` copies it).
KNOWN_HUB_TEXT_MODELS = ("skt/kobert-base-v1",)


def read_manifest(directory: Path) -> dict:
    from koemo.modeling.checkpoint import read_format_json

    return read_format_json(
        directory, MANIFEST_FILE, MANIFEST_FORMAT, "predictor checkpoint",
        "a predictor directory is assembled from trained stages with "
        "`koemo predict --export DIR ...` (koemo.inference.export.export_predictor)")


def inside(directory: Path, reference: object, key: str) -> Path:
    """directory/reference, refused (naming the manifest and key) unless it stays inside."""
    manifest = Path(directory) / MANIFEST_FILE
    if not isinstance(reference, str) or not reference.strip():
        raise CheckpointError(f"{manifest}: {key} must be a folder name inside the predictor "
                              f"folder, not {reference!r}")
    target = (Path(directory) / reference).resolve()
    if Path(reference).is_absolute() or not target.is_relative_to(Path(directory).resolve()):
        raise CheckpointError(f"{manifest}: {key} {reference!r} points outside the predictor "
                              "folder; a predictor folder must hold its own files")
    return Path(directory) / reference


def stage_dirs(directory: Path, manifest: dict) -> dict[str, Path]:
    """{stage: its folder}, every stage present and inside `directory`."""
    stages = manifest.get("stages")
    path = Path(directory) / MANIFEST_FILE
    if not isinstance(stages, dict):
        raise CheckpointError(f"{path}: no `stages` entry (it names the folders of "
                              f"{', '.join(STAGE_DIRS)})")
    missing = [stage for stage in STAGE_DIRS if stage not in stages]
    if missing:
        raise CheckpointError(f"{path}: `stages` lacks {', '.join(missing)} (a predictor needs "
                              f"all of {', '.join(STAGE_DIRS)})")
    return {stage: inside(directory, stages[stage], f"stages.{stage}") for stage in STAGE_DIRS}


def resolve_text_model(directory: Path, manifest: dict, part: str) -> str:
    """The manifest's tokenizer/encoder entry: a folder inside the predictor directory, or a
    known hub id."""
    reference = manifest.get(part)
    if isinstance(reference, str) and reference in KNOWN_HUB_TEXT_MODELS \
            and not (Path(directory) / reference).exists():
        return reference
    if isinstance(reference, str) and not (Path(directory) / reference).exists() \
            and not reference.startswith((".", "/", "~")):
        raise CheckpointError(
            f"{Path(directory) / MANIFEST_FILE}: {part} {reference!r} is neither a folder inside "
            f"the predictor folder nor a known hub model ({', '.join(KNOWN_HUB_TEXT_MODELS)}); "
            "copy the text model into the folder (export with --text-model DIR)")
    return str(inside(directory, reference, part))
