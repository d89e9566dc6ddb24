"""Pretrained speech encoders as the audio front-end (`models.audio.frontend: encoder`).

The paper's audio model reads mel+delta features (`models.audio.frontend: mel`, the default).
With `frontend: encoder` it reads the hidden states of a frozen self-supervised speech encoder
instead (wav2vec2, HuBERT, WavLM: anything `transformers.AutoModel` loads with an
`AutoFeatureExtractor`), from a hub id or a local directory:

    models:
      audio:
        frontend: encoder
        encoder:
          name: facebook/wav2vec2-base   # hub id or local directory (config.json + weights +
                                         # preprocessor_config.json)
          layers: [6]                    # hidden_states index: 0 = CNN features, i = layer i
          pooling: weighted              # several layers: learned softmax-weighted sum
                                         # (SUPERB); `mean`: fixed average
          input_dim: 768                 # the encoder's width (null = models.d_model)
          max_frames: 400                # encoder frames kept (50/s: 8 s); null = features.max_frames
          batch_size: 8                  # utterances per forward while caching

Only the chosen layers are computed into the state cache (`koemo.audio.encoder_store`), once, so
training costs what the paper's mel path costs. An utterance is encoded whole and its first
`max_frames` frames are kept (as the mel path computes the whole spectrogram, then cuts);
prediction encodes a recording of up to 35 s whole, a longer one 30 s at a time
(`piece_states`), and cuts the states into the same windows as the mel path.

Batching: encoders with a layer-norm feature encoder whose feature extractor asks for an
attention mask (`feat_extract_norm: layer` + `return_attention_mask`: wav2vec2-large-lv60,
XLS-R, HuBERT-large, WavLM-large) run on length-sorted padded batches with that mask (states
equal the unpadded ones up to float rounding). Group-norm feature encoders (wav2vec2-base,
HuBERT-base, WavLM-base/base+) normalise over the whole padded input, so zero padding changes
their states: they encode one utterance at a time, and the cache holds exactly what prediction
computes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from koemo.config.schema import Config, Frontend, Models, Pooling, SpeechEncoderSettings
from koemo.errors import KoemoInputError

PREPROCESSOR_FILE = "preprocessor_config.json"
# Shortest input every wav2vec2-style encoder turns into one frame (25 ms receptive field).
MIN_SAMPLES = 400


def audio_frontend(cfg: Config) -> Frontend:
    """`mel` (the paper; also when unset) or `encoder`."""
    return cfg.models.audio.frontend or "mel"


def uses_speech_encoder(cfg: Config) -> bool:
    return audio_frontend(cfg) == "encoder"


@dataclass(frozen=True)
class EncoderSpec:
    """models.audio.encoder (koemo.config.schema.SpeechEncoderSettings) with its open sizes
    resolved: what the state cache, the audio model and the predictor read."""
    name: str                     # hub id or local directory
    layers: list[int]             # hidden_states indices, as given (negative: from the last)
    pooling: Pooling
    input_dim: int                # the encoder's width (unset: models.d_model)
    max_frames: int               # encoder frames kept (unset: features.max_frames)
    batch_size: int


def encoder_layout(models: Models) -> tuple[list[int], int, Pooling]:
    """What the audio model's front-end is built from: the hidden_states indices
    models.audio.encoder mixes (a list, as given), their width (input_dim; unset:
    models.d_model) and the pooling."""
    spec = models.audio.encoder or SpeechEncoderSettings()
    layers = spec.layers if isinstance(spec.layers, (list, tuple)) else [spec.layers]
    return [int(x) for x in layers], int(spec.input_dim or models.d_model), spec.pooling


def encoder_settings(cfg: Config) -> EncoderSpec:
    """models.audio.encoder with its open sizes resolved (max_frames: features.max_frames,
    input_dim: models.d_model; layers as a list, as given). The schema checked the rest: a
    name when the frontend is `encoder`, distinct layers, the pooling."""
    spec = cfg.models.audio.encoder or SpeechEncoderSettings()
    if spec.name is None:
        raise KoemoInputError("models.audio.encoder.name: not set; the speech encoder's hub id "
                              "or local directory is needed (models.audio.frontend: encoder)")
    layers, input_dim, pooling = encoder_layout(cfg.models)
    return EncoderSpec(name=spec.name, layers=layers, pooling=pooling, input_dim=input_dim,
                       max_frames=int(spec.max_frames or cfg.features.max_frames),
                       batch_size=spec.batch_size)


def resolve_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """hidden_states indices (0 .. num_layers; negative counts from the last layer)."""
    resolved = [x + num_layers + 1 if x < 0 else x for x in layers]
    bad = [x for x, r in zip(layers, resolved) if not 0 <= r <= num_layers]
    if bad:
        raise KoemoInputError(f"models.audio.encoder.layers {bad}: the encoder has hidden states "
                              f"0..{num_layers} (0 = its CNN features, {num_layers} = last layer)")
    return resolved


def encoder_folder(name: str, setting: str = "models.audio.encoder.name") -> Path:
    """Local directory of the encoder (a hub id is fetched into the hub cache); offline and not
    cached -> KoemoInputError within seconds, saying how to use a local directory instead (in
    the config `setting` that named it)."""
    from koemo.text.encoder import encoder_directory
    from koemo.text.tokenizer import fetch_hub_files

    try:
        folder = encoder_directory(name, what="speech encoder")
        if not (folder / PREPROCESSOR_FILE).is_file() and not Path(name).expanduser().exists():
            folder = fetch_hub_files(name, [PREPROCESSOR_FILE], what="speech encoder")
    except KoemoInputError as err:
        raise KoemoInputError(
            f"audio encoder {name!r}: {err}\nDownload it where the hub is reachable "
            f"(huggingface_hub.snapshot_download({name!r}, local_dir=DIR)) and name DIR in "
            f"{setting} instead (--set {setting}=DIR)") from err
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise KoemoInputError(f"{folder}: speech encoder directory without {PREPROCESSOR_FILE} "
                              "(save the feature extractor there too: extractor.save_pretrained(DIR))")
    return folder


def folder_fingerprint(folder: Path) -> str:
    """sha1 over config.json, the weights and the feature extractor settings."""
    from koemo.text.encoder import weights_fingerprint

    digest = hashlib.sha1(weights_fingerprint(folder).encode())
    digest.update((folder / PREPROCESSOR_FILE).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class SpeechEncoder:
    """A frozen speech encoder, its feature extractor and what the cache key needs."""
    model: Any                    # a transformers AutoModel (wav2vec2, HuBERT, WavLM)
    extractor: Any                # its AutoFeatureExtractor
    source: str
    fingerprint: str
    layers: list[int]             # resolved hidden_states indices
    hidden_size: int
    sample_rate: int
    uses_mask: bool               # the feature extractor returns an attention mask
    batched: bool                 # padded batches give the unpadded states (see the docstring)

    @property
    def hop_samples(self) -> int:
        """Samples between encoder frames (the conv strides' product: 320 = 20 ms)."""
        return int(np.prod(self.model.config.conv_stride))

    @property
    def hop_seconds(self) -> float:
        return self.hop_samples / self.sample_rate

    def frames(self, n_samples: ArrayLike) -> np.ndarray:
        """Encoder frames of waves of `n_samples` samples (the conv stack's output lengths)."""
        import torch

        lengths = torch.as_tensor(np.atleast_1d(n_samples), dtype=torch.long)
        return self.model._get_feat_extract_output_lengths(lengths).cpu().numpy().astype(np.int64)

    def states(self, waves: Sequence[np.ndarray], half: bool = True) -> list[np.ndarray]:
        """float16 [K, n_i, H] states of the chosen layers per wave (a padded batch with the
        attention mask when the encoder takes one, else one wave at a time); `half=False`:
        float32, as the encoder computed them."""
        if not self.batched and len(waves) > 1:
            return [s for wave in waves for s in self.states([wave], half)]
        import torch

        device = next(self.model.parameters()).device
        inputs = self.extractor([np.asarray(w, dtype=np.float32) for w in waves],
                                sampling_rate=self.sample_rate, padding=True, return_tensors="pt",
                                return_attention_mask=self.uses_mask)
        kwargs = {"output_hidden_states": True}
        if self.uses_mask and len(waves) > 1:
            kwargs["attention_mask"] = inputs["attention_mask"].to(device)
        with torch.inference_mode():
            out = self.model(inputs["input_values"].to(device), **kwargs)
            stack = torch.stack([out.hidden_states[i] for i in self.layers], dim=1)  # [B,K,T,H]
            found = stack.to(torch.float16 if half else torch.float32).cpu().numpy()
        if half and not np.isfinite(found).all():
            raise ValueError("speech encoder states overflow float16 (values beyond +-65504)")
        frames = self.frames([len(w) for w in waves])
        return [found[b, :, :int(frames[b])] for b in range(len(waves))]


def load_speech_encoder(name: str, layers: Sequence[int] | None, device: str = "cpu"
                        ) -> SpeechEncoder:
    """AutoModel + AutoFeatureExtractor from a hub id or local directory, frozen, eval mode;
    `layers` None: every hidden state (0 = the CNN features .. the last layer)."""
    folder = encoder_folder(name)
    from transformers import AutoFeatureExtractor, AutoModel

    try:
        model = AutoModel.from_pretrained(str(folder))
        extractor = AutoFeatureExtractor.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as err:
        raise KoemoInputError(f"{folder}: could not load a speech encoder ({err})") from err
    if not hasattr(model, "_get_feat_extract_output_lengths"):
        raise KoemoInputError(f"{folder}: {type(model).__name__} is not a wav2vec2-style speech "
                              "encoder (wav2vec2, HuBERT, WavLM)")
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    config = model.config
    every = range(int(config.num_hidden_layers) + 1)
    resolved = resolve_layers(every if layers is None else layers, int(config.num_hidden_layers))
    # Layers past the deepest chosen hidden state are never needed: drop them (one more is kept,
    # so a stable-layer-norm model's final norm never lands on a chosen state).
    keep = min(int(config.num_hidden_layers), max(resolved) + 1)
    if keep < len(model.encoder.layers):
        model.encoder.layers = model.encoder.layers[:keep]
    uses_mask = bool(getattr(extractor, "return_attention_mask", False))
    return SpeechEncoder(model, extractor, str(name), folder_fingerprint(folder), resolved,
                         int(config.hidden_size), int(extractor.sampling_rate), uses_mask,
                         uses_mask and getattr(config, "feat_extract_norm", "group") == "layer")


def check_encodable(n_samples: int, label: str = "audio") -> None:
    """KoemoInputError unless the encoder turns `n_samples` samples into at least one frame."""
    if n_samples < MIN_SAMPLES:
        raise KoemoInputError(f"{label}: audio too short ({n_samples} samples); the speech "
                              f"encoder needs at least {MIN_SAMPLES} samples")


def whole_states(encoder: SpeechEncoder, wave: np.ndarray, label: str = "audio") -> np.ndarray:
    """float32 [K, N, H] states of one whole recording, rounded through float16 as the cache
    stored them for training."""
    check_encodable(wave.shape[0], label)
    return encoder.states([wave])[0].astype(np.float32)


# Prediction encodes a long recording in pieces of this length: self-attention over a whole
# recording grows with its square (a 2-hour file would need terabytes), and the models were
# trained on the states of utterances seconds long. A recording of up to one piece plus
# TAIL_SECONDS is encoded whole, as training encoded each utterance.
PIECE_SECONDS = 30.0
TAIL_SECONDS = 5.0      # a shorter last piece is encoded with the one before it


def receptive_field(encoder: SpeechEncoder) -> int:
    """Samples one encoder frame sees, from the conv stack's kernels and strides (400 = 25 ms
    for wav2vec2, HuBERT and WavLM)."""
    config, field, jump = encoder.model.config, 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        field, jump = field + (int(kernel) - 1) * jump, jump * int(stride)
    return field


def piece_states(encoder: SpeechEncoder, blocks: Iterable[np.ndarray], label: str = "audio",
                 piece_seconds: float = PIECE_SECONDS, tail_seconds: float = TAIL_SECONDS
                 ) -> Iterator[np.ndarray]:
    """float32 [K, n_i, H] states of a recording given as sample blocks of any sizes, encoded a
    piece at a time: piece i gives frames [i*m, (i+1)*m) of the whole recording's frame grid
    (it reads the few samples its last frame sees past its end), so the frames line up with
    whole_states' although their states differ (each piece is encoded alone). Holds one piece
    of samples and its states at a time; a recording shorter than a piece plus a tail is one
    piece, whole_states exactly."""
    hop = encoder.hop_samples
    frames = max(1, int(round(piece_seconds * encoder.sample_rate / hop)))
    piece, overlap = frames * hop, receptive_field(encoder) - hop
    tail = max(overlap, int(round(tail_seconds * encoder.sample_rate)))
    held = np.zeros(0, np.float32)
    for block in blocks:
        held = np.concatenate([held, np.asarray(block, np.float32)])
        while len(held) >= piece + tail:
            states = whole_states(encoder, held[:piece + overlap], label)
            if states.shape[1] != frames:     # the conv stack is not the wav2vec2 kind
                raise KoemoInputError(f"{label}: {encoder.source} gives {states.shape[1]} frames "
                                      f"for {piece + overlap} samples, not {frames}; encode it "
                                      "whole (Predictor.read_in_blocks = False)")
            yield states
            held = held[piece:]
    if len(held):
        yield whole_states(encoder, held, label)
