"""The authors' checkpoints -> koemo checkpoints.

Their notebooks save `model.state_dict()` with torch.save (EarlyStopping.save_checkpoint):
`audio_arousal.pt` (AudioRegressor), `text_valence.pt` (TextRegressor, with the frozen
KoBERT under `kobert.*`) and `Multi_Modal_Classifier_ye.pt` (EmoClassifier, holding its own
copies of both regressors under `AudioModel.*` / `TextModel.*`). Our module names are
theirs, so each loads with strict=True once KoBERT's keys are set aside (koemo runs KoBERT
outside the text model, from `text.encoder`).

Files are read with torch.load(weights_only=True): a state dict (or a
`{"model_state_dict": ...}` / `{"state_dict": ...}` wrapper) loads; a pickled whole module
does not, and the error says how to re-save it as a state dict where the authors' code runs.

The 6-vs-4 head question: their classifier rebuilt the 6-head audio regressor with 4 heads
(the same Q/K/V/Out matrices split into 4 heads of D/4 = 192 dims) and trained on the
features that gave. The conversion follows the config: faithful (fixes.consistent_heads
false) keeps that 4-head reuse, so the converted classifier reproduces the authors'
outputs; consistent_heads runs the audio model with its trained 6 heads, which the fusion
layers never saw. The choice is written into the multimodal checkpoint's meta.json.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save

from koemo.config.schema import Config, Fixes, Models
from koemo.errors import CheckpointError, KoemoInputError
from koemo.modeling.checkpoint import atomic_write_bytes, load_weights, save_checkpoint
from koemo.modeling.models import (AudioRegressor, EmoClassifier, TextRegressor,
                                   audio_heads_for_classifier)

KOBERT_PREFIX = "kobert."
CLASSIFIER_KOBERT_PREFIX = "TextModel.kobert."
STATE_DICT_WRAPPERS = ("model_state_dict", "state_dict")
KOBERT_FILE = "kobert.safetensors"


def resave_hint(path: Path) -> str:
    return (f"in an environment where the authors' model code imports, run: "
            f"import torch; m = torch.load('{path.name}', weights_only=False); "
            f"torch.save(m.state_dict(), '{path.stem}_state_dict.pt') -- then convert that file")


def read_original_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from one of the authors' .pt files (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise KoemoInputError(f"{path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # A class or function the safe unpickler refuses: the file pickles objects, not tensors.
        if "Unsupported global" in str(err):
            raise KoemoInputError(f"{path}: holds pickled Python objects (a whole model?), "
                                  f"not a state dict; {resave_hint(path)}") from err
        raise KoemoInputError(f"{path}: not a PyTorch checkpoint ({err})") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise KoemoInputError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    if isinstance(obj, dict):
        for key in STATE_DICT_WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        found = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise KoemoInputError(f"{path}: does not hold a state dict of tensors (found {found})")
    return dict(obj)


def split_prefix(state: dict[str, torch.Tensor], prefix: str) -> tuple[dict, dict]:
    """(entries without `prefix`, entries with it, prefix removed)."""
    kept = {k: v for k, v in state.items() if not k.startswith(prefix)}
    moved = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return kept, moved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_meta(path: Path, **extra: Any) -> dict:
    return {"source": "authors' checkpoint (jiwooya1000/KOR-Multimodal-Emotion-Recognition)",
            "source_file": str(path.resolve()), "source_sha256": file_sha256(path), **extra}


def load_original(model: torch.nn.Module, state: dict, path: Path) -> None:
    try:
        load_weights(model, state, path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; convert with the config the file was trained with "
                              "(--config / --set models....)") from err


def convert_audio(path: str | Path, out_dir: Path, cfg: Config) -> Path:
    path = Path(path)
    model = AudioRegressor(cfg.models, cfg.fixes)
    load_original(model, read_original_state(path), path)
    return save_checkpoint(out_dir, model, cfg, source_meta(path))


def convert_text(path: str | Path, out_dir: Path, cfg: Config, keep_kobert: bool = False) -> Path:
    path = Path(path)
    state, kobert = split_prefix(read_original_state(path), KOBERT_PREFIX)
    model = TextRegressor(cfg.models, cfg.fixes)
    load_original(model, state, path)
    directory = save_checkpoint(out_dir, model, cfg, source_meta(
        path, kobert_tensors_set_aside=len(kobert),
        kobert_file=KOBERT_FILE if keep_kobert and kobert else None))
    if keep_kobert and kobert:
        # BertModel key names (prefix removed): loads into transformers' BertModel.
        tensors = {k: v.contiguous() for k, v in kobert.items()}
        atomic_write_bytes(directory / KOBERT_FILE, safetensors_save(tensors, metadata={"format": "pt"}))
    return directory


def heads_resolution(models: Models, fixes: Fixes) -> str:
    heads = audio_heads_for_classifier(models, fixes)
    trained = models.audio.num_heads
    if fixes.consistent_heads:
        return (f"consistent: the audio regressor runs with its trained {trained} heads; the "
                "authors' fusion layers were trained on 4-head audio features, so outputs "
                "differ from theirs")
    dim = models.d_model // heads
    return (f"faithful reuse: the {trained}-head audio regressor's Q/K/V/Out matrices split into "
            f"{heads} heads of {dim} dims, as the authors' classifier ran it")


def convert_classifier(path: str | Path, out_dir: Path, cfg: Config,
                       audio_state: dict | None = None) -> Path:
    path = Path(path)
    state, kobert = split_prefix(read_original_state(path), CLASSIFIER_KOBERT_PREFIX)
    models, fixes = cfg.models, cfg.fixes
    model = EmoClassifier(models, fixes, cfg.data, AudioRegressor(models, fixes),
                          TextRegressor(models, fixes))
    load_original(model, state, path)
    extra: dict[str, Any] = {"kobert_tensors_set_aside": len(kobert),
                             "heads_resolution": heads_resolution(models, fixes)}
    if audio_state is not None:
        # Their classifier file has its own copy of the audio regressor: same weights?
        inner = {k[len("AudioModel."):]: v for k, v in state.items() if k.startswith("AudioModel.")}
        extra["audio_weights_match_audio_file"] = inner.keys() == audio_state.keys() and all(
            torch.equal(v, audio_state[k]) for k, v in inner.items())
    return save_checkpoint(out_dir, model, cfg, source_meta(path, **extra))


def convert_original(audio_pt: str | Path | None, text_pt: str | Path | None,
                     classifier_pt: str | Path | None, out_dir: str | Path, cfg: Config,
                     keep_kobert: bool = False) -> dict[str, Path]:
    """Convert whichever of the three files are given into OUT/{audio,text,multimodal}/.
    Returns {stage: checkpoint directory}."""
    if not any((audio_pt, text_pt, classifier_pt)):
        raise KoemoInputError("nothing to convert: give at least one of the audio, text and "
                              "classifier checkpoints")
    out_dir = Path(out_dir)
    written = {}
    if audio_pt:
        written["audio"] = convert_audio(audio_pt, out_dir / "audio", cfg)
    if text_pt:
        written["text"] = convert_text(text_pt, out_dir / "text", cfg, keep_kobert)
    if classifier_pt:
        audio_state = read_original_state(audio_pt) if audio_pt else None
        written["multimodal"] = convert_classifier(classifier_pt, out_dir / "multimodal", cfg,
                                                   audio_state)
    return written
