"""Speech recognition for the text path: a Whisper model through transformers.

`koemo predict` without a transcript asks Whisper for one, then runs the full multimodal path;
the result says the text came from speech recognition (`text_source="asr"`). Settings are the
`asr:` section of the config (configs/paper.yaml):

    asr:
      model: openai/whisper-small   # hub id or local directory; none = no speech recognition
      language: korean
      task: transcribe
      device: auto                  # auto (the predictor's device) | cpu | cuda | cuda:N
      batch_size: 8                 # utterances per generate() call
      max_new_tokens: 128
      num_beams: 1

`asr.model` may also name SenseVoice-Small (FunAudioLLM/SenseVoiceSmall, or a FunASR directory
whose config.yaml says `model: SenseVoiceSmall`; needs the optional extra `koemo[foundation]`):
one non-autoregressive pass instead of Whisper's decoding, koemo.upstreams.sensevoice. It
reads asr.language (korean -> ko) and asr.batch_size; task, max_new_tokens and num_beams are
Whisper's alone. docs/foundation.md compares the two.

Whisper reads at most 30 s; longer audio is transcribed from its first 30 s and a note says
so (cut long recordings into utterances with `koemo predict --segments`). A hub id needs a
reachable hub or a filled local hub cache; offline it fails at once with a KoemoInputError
saying how to use a local directory instead (as the KoBERT loader does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from koemo.config.load import parse_section
from koemo.config.schema import SAMPLE_RATE, Asr, Config
from koemo.errors import KoemoInputError

MAX_SECONDS = 30.0
NONE_VALUES = ("none", "off", "false", "")
REQUIRED_FILES = ("config.json", "tokenizer_config.json")
# The feature extractor's settings: preprocessor_config.json (hub repositories, transformers 4)
# or processor_config.json (save_pretrained of transformers 5).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
OPTIONAL_FILES = ("generation_config.json", "tokenizer.json", "vocab.json", "merges.txt",
                  "added_tokens.json", "special_tokens_map.json", "normalizer.json")
WEIGHT_FILES = ("model.safetensors",)


def asr_settings(cfg: Config | Asr | Mapping[str, Any] | None = None, model: str | None = None,
                 **overrides: Any) -> Asr | None:
    """The `asr:` section (of a config or a {"asr": ...} mapping, or given as a typed section
    or mapping; absent: the schema's defaults, koemo.config.schema.Asr), `model` (a hub id, a
    directory or "none") and the other overrides taking precedence; None when speech
    recognition is off."""
    section = cfg.asr if isinstance(cfg, Config) else \
        cfg.get("asr") if isinstance(cfg, Mapping) and "asr" in cfg else cfg
    settings = parse_section(Asr, section, "asr")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if model is not None:
        changes["model"] = model
    settings = parse_section(Asr, {**settings.as_dict(), **changes}, "asr") if changes else settings
    if settings.model is None or str(settings.model).strip().lower() in NONE_VALUES:
        return None
    return settings


def offline_message(hub_id: str) -> str:
    return (f"speech recognition model '{hub_id}' is not a local directory, and the Hugging Face "
            "hub is not reachable (offline mode HF_HUB_OFFLINE=1, or no network). Download it where "
            f"the hub is reachable (huggingface_hub.snapshot_download('{hub_id}', local_dir='whisper')), "
            "copy that directory here and pass --asr DIR (or set asr.model: DIR in the config); "
            "or pass --text / --asr none (arousal only)")


def whisper_directory(reference: str) -> Path:
    """A local Whisper directory (checked for its files) or a hub id fetched into the hub
    cache; offline -> KoemoInputError within seconds."""
    from koemo.text.tokenizer import fetch_hub_files, hub_is_offline, looks_like_hub_id

    path = Path(reference).expanduser()
    what = "speech recognition (Whisper)"
    if path.is_dir():
        missing = [n for n in REQUIRED_FILES + WEIGHT_FILES if not (path / n).is_file()]
        if not any((path / n).is_file() for n in PROCESSOR_FILES):
            missing.append(" or ".join(PROCESSOR_FILES))
        if missing:
            raise KoemoInputError(f"{path}: {what} directory without {', '.join(missing)} "
                                  "(save one with model.save_pretrained and processor.save_pretrained)")
        return path
    if path.exists():
        raise KoemoInputError(f"{path}: expected a {what} model directory, found a file")
    if not looks_like_hub_id(reference):
        raise KoemoInputError(f"{path}: {what} model directory not found "
                              "(give a directory or a hub id such as openai/whisper-small)")
    try:
        return fetch_hub_files(reference, REQUIRED_FILES + PROCESSOR_FILES[:1] + WEIGHT_FILES,
                               OPTIONAL_FILES, what=what)
    except KoemoInputError as err:
        if hub_is_offline() or "not reachable" in str(err):
            raise KoemoInputError(offline_message(reference)) from err
        raise


def _resolve_device(device: str | None, fallback: str) -> str:
    if device in (None, "auto"):
        return str(fallback)
    return str(device)


class SpeechToText(Protocol):
    """What prediction needs of a speech recogniser: `transcribe(waves) -> texts` and the model
    it came from (`source`). Whisper's Transcriber and SenseVoice's both are one."""

    source: str

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]: ...


class Transcriber:
    """Whisper (processor + WhisperForConditionalGeneration) that turns 16 kHz waves into text,
    in batches. Greedy decoding by default: the same audio gives the same text."""

    def __init__(self, model: Any, processor: Any, settings: Asr, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.processor = processor
        self.settings = settings
        self.device = device
        self.source = str(settings.model)

    @classmethod
    def load(cls, settings: Asr, device: str = "cpu") -> SpeechToText:
        from koemo.upstreams.funasr_loader import is_kind

        if is_kind("sensevoice", str(settings.model)):
            from koemo.upstreams.sensevoice import SenseVoiceTranscriber

            return SenseVoiceTranscriber.load(settings, _resolve_device(settings.device, device))
        folder = whisper_directory(str(settings.model))   # before importing transformers: fast errors
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        try:
            processor = WhisperProcessor.from_pretrained(str(folder))
            model = WhisperForConditionalGeneration.from_pretrained(str(folder))
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise KoemoInputError(f"{folder}: could not load a Whisper model ({err})") from err
        model.requires_grad_(False)
        return cls(model, processor, settings, _resolve_device(settings.device, device))

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        """16 kHz mono float32 waves -> their transcripts (stripped), `batch_size` per pass."""
        import torch

        texts: list[str] = []
        size = max(1, int(self.settings.batch_size))
        # Whisper's decoder holds max_target_positions tokens, the 4-token prompt included.
        max_new = min(int(self.settings.max_new_tokens),
                      int(getattr(self.model.config, "max_target_positions", 448)) - 4)
        for start in range(0, len(waves), size):
            batch = [np.asarray(w, dtype=np.float32)[:int(MAX_SECONDS * SAMPLE_RATE)]
                     for w in waves[start:start + size]]
            inputs = self.processor.feature_extractor(batch, sampling_rate=SAMPLE_RATE,
                                                      return_tensors="pt")
            features = inputs.input_features.to(self.device, dtype=self.model.dtype)
            with torch.inference_mode():
                ids = self.model.generate(
                    features, language=self.settings.language, task=self.settings.task,
                    max_new_tokens=max_new,
                    num_beams=int(self.settings.num_beams), do_sample=False)
            texts += [t.strip() for t in
                      self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return texts


def truncation_note(duration_s: float) -> str | None:
    if duration_s <= MAX_SECONDS:
        return None
    return (f"audio is {duration_s:.1f} s: speech recognition read its first {MAX_SECONDS:.0f} s "
            "only (Whisper's window); cut long recordings with --segments")
