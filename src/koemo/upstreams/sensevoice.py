"""SenseVoice-Small through FunASR: zero-shot emotion tags, and Korean speech recognition.

One non-autoregressive pass (a SAN-M encoder + CTC, greedy) gives rich text such as
`<|ko|><|NEUTRAL|><|Speech|><|withitn|>오늘 정말 좋아요`: the language, the emotion tag, the
audio event, the text-normalisation mode, then the transcript. The language is given, not
detected (`ko`, SenseVoice's Korean language id). Transcripts are written with inverse text
normalisation (`use_itn=True`, punctuation and digits, as SenseVoice's README runs it).

- Emotion tags (SenseVoice's README and FunASR's post-processing table): HAPPY, SAD, ANGRY,
  NEUTRAL, FEARFUL, DISGUSTED, SURPRISED and EMO_UNKNOWN. The native label is the first of
  these in the output, or NO_TAG when the output holds none. EMO_UNKNOWN is not suppressed
  (SenseVoice's `ban_emo_unk` stays off, its default): it is counted as outside the classes.
- Speech recognition (`SenseVoiceTranscriber`): the rich text with every `<|...|>` tag removed.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from koemo.errors import KoemoInputError
from koemo.upstreams.funasr_loader import load_funasr

if TYPE_CHECKING:
    from koemo.config.schema import Asr

KIND = "sensevoice"
EMOTION_TAGS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED",
                "EMO_UNKNOWN")
NO_TAG = "NO_TAG"
TAG = re.compile(r"<\|([^|]*)\|>")
# asr.language (Whisper's spelling, koemo's default "korean") -> SenseVoice's language id
LANGUAGES = {"korean": "ko", "english": "en", "chinese": "zh", "mandarin": "zh",
             "cantonese": "yue", "japanese": "ja", "auto": "auto"}
MIN_SAMPLES = 400          # one 25 ms fbank frame


def language_id(language: str) -> str:
    """Whisper's language name or SenseVoice's own id -> SenseVoice's id (ko, en, ...)."""
    key = str(language).strip().lower()
    if key in LANGUAGES.values():
        return key
    if key not in LANGUAGES:
        raise KoemoInputError(f"SenseVoice-Small knows the languages {', '.join(LANGUAGES)}, "
                              f"not {language!r}")
    return LANGUAGES[key]


def emotion_tag(rich_text: str) -> str:
    """The first emotion tag of SenseVoice's rich text, or NO_TAG."""
    return next((t for t in TAG.findall(rich_text) if t in EMOTION_TAGS), NO_TAG)


def plain_text(rich_text: str) -> str:
    """The transcript: rich text without its tags, spaces collapsed."""
    return " ".join(TAG.sub(" ", rich_text).split())


class SenseVoice:
    """A SenseVoice-Small checkpoint loaded by FunASR, frozen."""

    def __init__(self, automodel: Any, name: str, language: str = "ko"):
        self.automodel, self.name, self.language = automodel, str(name), language_id(language)

    @classmethod
    def load(cls, name_or_dir: str, device: str = "cpu", language: str = "ko") -> "SenseVoice":
        automodel, _ = load_funasr(KIND, name_or_dir, device)
        return cls(automodel, name_or_dir, language)

    def rich_texts(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> list[str]:
        """SenseVoice's rich text of each 16 kHz mono wave, `batch_size` waves per pass."""
        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        short = [i for i, w in enumerate(waves) if w.ndim != 1 or w.shape[0] < MIN_SAMPLES]
        if short:
            raise KoemoInputError(f"{self.name}: waves {short[:5]} are shorter than "
                                  f"{MIN_SAMPLES} samples (or not 1-D)")
        texts: list[str] = []
        size = max(1, int(batch_size))
        for start in range(0, len(waves), size):
            batch = waves[start:start + size]
            results = self.automodel.generate(input=batch, language=self.language, use_itn=True,
                                              batch_size=len(batch), disable_pbar=True)
            texts += [str(r.get("text", "")) for r in results]
        return texts

    def emotions(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> list[str]:
        """The native emotion label (an EMOTION_TAGS entry or NO_TAG) of each wave."""
        return [emotion_tag(t) for t in self.rich_texts(waves, batch_size)]


class SenseVoiceTranscriber:
    """SenseVoice-Small as `koemo.inference.asr`'s speech recognition: the same interface as
    its Whisper Transcriber (`transcribe(waves) -> texts`, `source`)."""

    def __init__(self, model: SenseVoice, batch_size: int = 8):
        self.model, self.batch_size = model, batch_size
        self.source = model.name

    @classmethod
    def load(cls, settings: Asr, device: str = "cpu") -> "SenseVoiceTranscriber":
        """From the `asr:` section (koemo.config.schema.Asr): model, language, batch_size; its
        Whisper-only settings (task, max_new_tokens, num_beams) do not apply."""
        model = SenseVoice.load(str(settings.model), device, settings.language)
        return cls(model, int(settings.batch_size))

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        return [plain_text(t) for t in self.model.rich_texts(waves, self.batch_size)]
