"""The speech-encoder front-end inside a predictor directory (`koemo.inference.predictor`).

A predictor trained with `models.audio.frontend: encoder` needs the speech encoder at
prediction time: a local encoder directory is copied into `DIR/audio-encoder/` when exporting
(a hub id stays a reference, fetched or taken from the hub cache when loading), and
`Predictor.from_checkpoint` loads it next to the text encoder.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from koemo.config.schema import Config
from koemo.errors import CheckpointError, KoemoInputError
from koemo.audio.speech_encoder import encoder_settings, load_speech_encoder, uses_speech_encoder
from koemo.inference.checks import check_encoder_config
from koemo.inference.manifest import inside

if TYPE_CHECKING:
    from koemo.inference.predictor import Predictor

AUDIO_ENCODER_DIR = "audio-encoder"


def copy_speech_encoder(cfg: Config, out_dir: Path) -> dict:
    """Manifest entry {"audio_encoder": reference} ({} for the mel front-end)."""
    if not uses_speech_encoder(cfg):
        return {}
    name = encoder_settings(cfg).name
    if Path(name).expanduser().is_dir():
        shutil.copytree(Path(name).expanduser(), out_dir / AUDIO_ENCODER_DIR)
        return {"audio_encoder": AUDIO_ENCODER_DIR}
    return {"audio_encoder": name}


def attach_speech_encoder(predictor: Predictor, directory: Path, manifest: dict,
                          device: str) -> Predictor:
    """Load the predictor's speech encoder when its config uses one; returns the predictor."""
    cfg = predictor.cfg
    if not uses_speech_encoder(cfg):
        return predictor
    spec = encoder_settings(cfg)
    reference = manifest.get("audio_encoder", spec.name)
    local = Path(directory) / str(reference)
    if local.exists() or str(reference).startswith((".", "/", "~")):
        local = inside(directory, reference, "audio_encoder")      # never a folder outside
        check_encoder_config(local)             # bounded before transformers builds it
    try:
        encoder = load_speech_encoder(str(local) if local.exists() else reference,
                                      spec.layers, device=device)
    except KoemoInputError as err:
        raise CheckpointError(f"{directory}: speech encoder not usable: {err}") from err
    if encoder.hidden_size != spec.input_dim:
        raise CheckpointError(f"{directory}: speech encoder width {encoder.hidden_size} differs from "
                              f"the audio model's input width {spec.input_dim}: wrong encoder")
    predictor.speech_encoder = encoder
    return predictor
