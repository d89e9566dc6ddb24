"""Audio upstreams through transformers: the wav2vec2 family and Whisper's encoder.

- wav2vec2 / HuBERT / WavLM / XLS-R (anything `koemo.audio.speech_encoder` loads: AutoModel +
  AutoFeatureExtractor, a wav2vec2-style conv front-end): every hidden state, 0 = the CNN
  features (after the feature projection) .. N = the last layer, 50 frames a second, as
  transformers returns them in `hidden_states` (for the large models' stable layer norm the
  last one comes before the encoder's final layer norm; EmoBox's one-layer setting reads
  `last_hidden_state`, after it).
- Whisper (a checkpoint whose config.json says `model_type: whisper`, e.g.
  openai/whisper-large-v3): `WhisperFeatureExtractor` + the encoder of `WhisperModel`, every
  hidden state (0 = the convolution + position embeddings .. N = the last layer, after the
  encoder's final layer norm). Whisper reads 30 s of log-mel at a time and pads shorter audio
  to 30 s: only the encoder frames that cover the utterance are kept (one frame per 320
  samples = 20 ms, ceil(samples / 320)), as EmoBox's feature extraction keeps the first
  samples // 320. An utterance past 30 s is encoded 30 s at a time and the pieces' frames are
  concatenated (EmoBox skips such utterances).

`load_audio_upstream(name, device)` picks the loader: emotion2vec+ (`koemo.upstreams.emotion2vec`),
Whisper, else the wav2vec2 family. Each upstream carries `fingerprint` (its files), so caches
of its states are keyed by the weights that computed them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from koemo.audio.speech_encoder import (SpeechEncoder, check_encodable, encoder_folder,
                                        load_speech_encoder)
from koemo.config.fingerprints import fingerprint
from koemo.errors import KoemoInputError
from koemo.text.encoder import encoder_directory, weights_fingerprint
from koemo.upstreams.protocol import AudioUpstream

SAMPLE_RATE = 16000
SETTING = "reproduce.foundation.audio"     # where a study names its audio upstreams
WHISPER_CONV_STRIDE = 2                    # Whisper's second convolution halves the mel frames


class SpeechUpstream:
    """A frozen wav2vec2-family encoder (koemo.audio.speech_encoder) giving every layer."""

    def __init__(self, encoder: SpeechEncoder, name: str):
        self.encoder, self.name = encoder, str(name)
        self.num_layers, self.dim = len(encoder.layers), int(encoder.hidden_size)
        self.fingerprint = encoder.fingerprint

    def layer_states(self, wave: np.ndarray) -> torch.Tensor:
        check_encodable(len(wave), self.name)
        return torch.from_numpy(self.encoder.states([wave], half=False)[0])


class WhisperUpstream:
    """The encoder of a frozen Whisper checkpoint giving every layer over the utterance only."""

    def __init__(self, encoder: Any, extractor: Any, name: str, fingerprint: str):
        self.model, self.extractor = encoder, extractor
        self.name, self.fingerprint = str(name), fingerprint
        config = encoder.config
        self.num_layers, self.dim = int(config.encoder_layers) + 1, int(config.d_model)
        self.hop_samples = int(extractor.hop_length) * WHISPER_CONV_STRIDE
        self.piece_samples = int(extractor.n_samples)          # 30 s
        self.max_frames = int(config.max_source_positions)

    def frames(self, n_samples: int) -> int:
        """Encoder frames that cover `n_samples` samples of one piece (at least one)."""
        return max(1, min(self.max_frames, math.ceil(n_samples / self.hop_samples)))

    def layer_states(self, wave: np.ndarray) -> torch.Tensor:
        wave = np.asarray(wave, dtype=np.float32)
        if not len(wave):
            raise KoemoInputError(f"{self.name}: empty audio")
        device = next(self.model.parameters()).device
        pieces = []
        for start in range(0, len(wave), self.piece_samples):
            piece = wave[start:start + self.piece_samples]
            features = self.extractor(piece, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            with torch.inference_mode():
                out = self.model(features["input_features"].to(device), output_hidden_states=True)
                stack = torch.stack(out.hidden_states, dim=0)[:, 0]          # [L, 1500, D]
            pieces.append(stack[:, :self.frames(len(piece))].float().cpu())
        return torch.cat(pieces, dim=1)


def model_type(folder: Path) -> str:
    """config.json's model_type ('' without one)."""
    path = folder / "config.json"
    if not path.is_file():
        return ""
    return str(json.loads(path.read_text(encoding="utf-8")).get("model_type", ""))


def is_emotion2vec(name: str) -> bool:
    """An emotion2vec(+) checkpoint: a FunASR directory whose config.yaml says so, a known hub
    id, or a name that says so (emotion2vec/emotion2vec_base)."""
    from koemo.upstreams.funasr_loader import is_kind

    return is_kind("emotion2vec", name) or "emotion2vec" in str(name).lower()


def load_whisper_upstream(folder: Path, name: str, device: str = "cpu") -> WhisperUpstream:
    from transformers import WhisperFeatureExtractor, WhisperModel

    from koemo.text.quiet import quiet_weight_loading

    try:
        with quiet_weight_loading():
            whole = WhisperModel.from_pretrained(str(folder))
        extractor = WhisperFeatureExtractor.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as err:
        raise KoemoInputError(f"{folder}: could not load a Whisper encoder ({err})") from err
    encoder = whole.get_encoder()
    del whole                                   # the decoder is never run
    encoder.requires_grad_(False)
    encoder.eval()
    encoder.to(device)
    files = fingerprint({"weights": weights_fingerprint(folder),
                         "extractor": extractor.to_json_string()})
    return WhisperUpstream(encoder, extractor, name, files)


def audio_upstream_folder(name: str) -> Path:
    """The folder `load_audio_upstream` reads `name` from, its files checked (a hub id: from
    the hub cache, or fetched into it; `hub_local_only` keeps it from downloading)."""
    if is_emotion2vec(name):
        from koemo.upstreams.funasr_loader import model_directory
        return model_directory("emotion2vec", name)
    path = Path(str(name)).expanduser()
    if path.is_dir() and model_type(path) == "whisper":
        # a local Whisper may keep its feature extractor in processor_config.json
        return encoder_directory(path, "Whisper encoder")
    return encoder_folder(str(name), setting=SETTING)


def load_audio_upstream(name: str, device: str = "cpu") -> AudioUpstream:
    """An `AudioUpstream` (koemo.upstreams.protocol) from a hub id or local directory."""
    if is_emotion2vec(name):
        from koemo.upstreams.emotion2vec import load_emotion2vec_upstream
        return load_emotion2vec_upstream(name, device)
    folder = audio_upstream_folder(name)
    if model_type(folder) == "whisper":
        return load_whisper_upstream(folder, name, device)
    return SpeechUpstream(load_speech_encoder(str(folder), None, device), name)
