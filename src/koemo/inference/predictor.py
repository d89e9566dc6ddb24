"""Emotion, arousal and valence from a raw recording plus its transcript, end to end.

    from koemo import Predictor
    predictor = Predictor.from_checkpoint("checkpoints/paper")
    result = predictor.predict("my.wav", "오늘 정말 기분이 좋아요")
    result.label, result.probabilities, result.arousal, result.valence, result.notes

What runs, per utterance (the same steps and settings as training, read from the checkpoint):
audio -> 16 kHz mono (as `koemo.audio.io.load_audio` converts it) -> mel+delta features
(`koemo.audio.features`, the config's backend, rounded to the feature store's dtype as training
read them) -> audio regressor -> arousal. Transcript -> markers removed (`clean_transcript`, as
training) -> KoBERT tokenizer -> frozen KoBERT (states rounded to float16, as the training
cache stored them) -> text regressor -> valence. Both -> the classifier's own frozen regressors -> fusion
classifier -> probabilities of the classes. Arousal/valence are on the annotation scale (1-5);
values the regressors put outside it are clipped, and a note says so.

Long audio. The model sees `max_frames` frames (paper: 512 frames = 16.4 s at hop 512 / 16 kHz).
The features are those of the whole recording (dB reference and delta over all frames, as
training computed them before cutting), read and computed block by block in two passes over
the file, so memory does not grow with its length (`koemo.inference.recording`), then:
- "windows" (default): windows of `max_frames` frames, evenly spaced with >= 50% overlap, the
  last one ending at the last frame; every window is scored with the whole transcript, and
  arousal and class probabilities are averaged over windows (valence reads the text alone).
- "cut": only the first `max_frames` frames, exactly as training cut long utterances.
Shorter audio is zero padded as in training (dB-floor padding under fixes.db_floor_padding).

Without a transcript (text=None) a Whisper model transcribes the audio (`koemo.inference.asr`; the
config's `asr:` section, or `asr=` of `from_checkpoint`), and the full path runs on its text:
`text_source` says "asr" (a given transcript: "given"). With asr="none", or when recognition
heard no Korean, only the audio path runs: arousal is returned, valence, label and
probabilities are None, and the notes say the text path was skipped and the emotion was not
predicted (the classifier needs both modalities; there is no audio-only fallback).
An empty transcript (after marker removal) or one without any Hangul is an input error
(KoBERT reads Korean); pieces KoBERT does not know ([UNK]) and truncation are noted.

Randomness. A checkpoint trained with the faithful config keeps attention dropout on in eval
(the original's defect, fixes.eval_attention_dropout_off=false): its outputs are a random
draw. Each call is seeded (`seed`, default 0) inside a forked RNG, so the same inputs in the
same batch give the same outputs and the caller's RNG state is untouched; a note says so.

The checkpoint DIR for prediction (`koemo.inference.export.export_predictor` assembles it):
    DIR/predictor.json           manifest: stages, tokenizer/encoder source, classes, origin
    DIR/audio/                   model.safetensors + meta.json (audio regressor -> arousal)
    DIR/text/                    model.safetensors + meta.json (text regressor -> valence)
    DIR/multimodal/              model.safetensors + meta.json (classifier with its frozen regressors)
    DIR/kobert/                  tokenizer + encoder files when they came from a local directory
                                 (a hub id such as skt/kobert-base-v1 is only referenced)
"""
from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Iterator, Sequence, Sized

import numpy as np

from koemo.audio.io import AudioInfo, AudioSource
from koemo.config.load import parse_saved_config
from koemo.config.schema import Asr, Config
from koemo.errors import CheckpointError, KoemoInputError
from koemo.inference.recording import recording_windows, whole_windows
from koemo.inference.windows import (LONG_AUDIO_MODES, LongAudio, WindowInfo, WindowSource,
                                     floor_padding)
from koemo.inference.manifest import (MANIFEST_FILE, STAGE_DIRS, read_manifest,  # noqa: F401
                                 resolve_text_model, stage_dirs as manifest_stage_dirs)
from koemo.inference.provenance import provenance_notes
from koemo.inference.checks import (check_encoder_config, check_meta_sizes, check_stage_metas,
                                    check_text_model, mismatched_regressors, same_regressor)

if TYPE_CHECKING:
    import torch

    from koemo.audio.speech_encoder import SpeechEncoder
    from koemo.inference.asr import SpeechToText
    from koemo.inference.passes import WindowScores
    from koemo.modeling.models import AudioRegressor, FrozenRegressors, TextRegressor
    from koemo.text.encoder import TextTokenizer
    from koemo.modeling.layers import AttentionImpl

SCALE = (1.0, 5.0)
HANGUL_RE = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
UNK_NOTE_SHARE = 0.3


@dataclass
class Prediction:
    label: str | None                        # None when the text path was skipped
    probabilities: dict[str, float] | None   # class -> probability (averaged over windows)
    arousal: float                           # 1-5
    valence: float | None                    # 1-5; None without a transcript
    notes: list[str]
    windows: WindowInfo
    audio: AudioInfo
    text: str | None = None                  # the transcript as the model read it (cleaned)
    text_source: str | None = None           # "given", "asr" (speech recognition) or None
    # Per window (koemo.inference.passes.WindowScores): what the averages above were made of.
    per_window: WindowScores | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "per_window"}


@dataclass
class _Item:
    """One utterance ready for the models."""
    frames: WindowSource       # the windows, cut a batch at a time when the models run
    token_ids: np.ndarray | None
    token_mask: np.ndarray | None
    text: str | None
    audio: AudioInfo
    windows: WindowInfo
    notes: list[str] = field(default_factory=list)
    wave: np.ndarray | None = None   # kept until speech recognition fills in the transcript
    text_source: str | None = None


# ----------------------------------------------------------------------------- the predictor

class Predictor:
    """Holds the three stages, tokenizer and frozen encoder; `predict` per utterance,
    `predict_many` in batches. Build with `Predictor.from_checkpoint(DIR)`."""

    speech_encoder: SpeechEncoder | None = None    # with models.audio.frontend: encoder
    provenance = None         # what it was trained on (koemo.inference.provenance); None: unknown
    # False: load the whole recording and compute its features at once, as koemo did before
    # reading in blocks; the reference the block-wise path equals (tests/test_block_features.py,
    # benchmarks/bench_predict_memory.py); a speech encoder then encodes it in one pass.
    read_in_blocks = True

    def __init__(self, audio_model: AudioRegressor, text_model: TextRegressor,
                 classifier: FrozenRegressors, tokenizer: TextTokenizer, encoder: Any, cfg: Config,
                 classes: Sequence[str], device: str = "cpu", long_audio: LongAudio = "windows",
                 batch_size: int = 8, seed: int = 0, source: str | None = None,
                 mismatched: Sequence[str] = (), asr: Asr | None = None):
        import torch

        if long_audio not in LONG_AUDIO_MODES:
            raise KoemoInputError(f"long_audio must be one of {LONG_AUDIO_MODES}, not {long_audio!r}")
        self.device = torch.device(device)
        self.audio_model = audio_model.to(self.device).eval()
        self.text_model = text_model.to(self.device).eval()
        self.classifier = classifier.to(self.device).eval()
        self.encoder = encoder.to(self.device).eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.classes = list(classes)
        self.long_audio = long_audio
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.source = source
        # When the classifier runs exactly the regressors we already ran (same weights, heads
        # and switches), their hidden states are reused instead of computed twice.
        self.shared_audio = same_regressor(audio_model, classifier.AudioModel)
        self.shared_text = same_regressor(text_model, classifier.TextModel)
        self.random_in_eval = not cfg.fixes.eval_attention_dropout_off
        self.mismatched = list(mismatched)  # stages whose weights differ from the classifier's copy
        self.asr = asr                      # speech recognition settings (koemo.inference.asr); None: off
        self._transcriber: SpeechToText | None = None     # loaded on first use
        self.config_notes: list[str] = []   # keys of the saved config this koemo did not know

    # -- construction

    @classmethod
    def from_checkpoint(cls, directory: str | Path, device: str = "cpu",
                        long_audio: LongAudio = "windows", batch_size: int = 8, seed: int = 0,
                        attention_impl: AttentionImpl = "sdpa",
                        asr: str | dict | None = "config") -> "Predictor":
        """Load a predictor directory (see the module docstring). Problems with it raise
        CheckpointError naming the file. `asr`: speech recognition for utterances without a
        transcript: "config" (the checkpoint config's `asr:` section, else koemo.inference.asr.DEFAULTS),
        a Whisper hub id or directory, a settings dict, or None/"none" (arousal only). The
        Whisper model is loaded when first needed."""
        from koemo.inference.asr import asr_settings

        from koemo.modeling.checkpoint import build_from_checkpoint, read_meta
        from koemo.modeling.models import AudioRegressor, FrozenRegressors, TextRegressor
        from koemo.text.encoder import load_text_encoder, load_text_tokenizer

        directory = Path(directory)
        manifest = read_manifest(directory)
        stage_dirs = manifest_stage_dirs(directory, manifest)
        metas = {stage: read_meta(path) for stage, path in stage_dirs.items()}
        for stage, meta in metas.items():
            check_meta_sizes(meta, stage_dirs[stage])
        check_stage_metas(metas, stage_dirs)
        models = {stage: build_from_checkpoint(path, expect_stage=stage, attention_impl=attention_impl)
                  for stage, path in stage_dirs.items()}
        mismatched = mismatched_regressors(models)
        if mismatched and not manifest.get("allow_mismatched_regressors"):
            raise CheckpointError(
                f"{stage_dirs['multimodal']}: the classifier was trained on other "
                f"{' and '.join(mismatched)} regressor weights than "
                f"{', '.join(str(stage_dirs[s]) for s in mismatched)}; use the regressors of the same "
                "training run (same config, split and seed), or export with "
                "allow_mismatched_regressors=True (--allow-mismatched-regressors)")
        # Keys another koemo version wrote are a note, not an error (koemo.config.load).
        cfg, config_notes = parse_saved_config(metas["multimodal"]["config"],
                                               str(stage_dirs["multimodal"] / "meta.json"))
        tokenizer_source = resolve_text_model(directory, manifest, "tokenizer")
        encoder_source = resolve_text_model(directory, manifest, "encoder")
        check_encoder_config(encoder_source)       # bounded before transformers builds it
        try:
            tokenizer = load_text_tokenizer(tokenizer_source, cfg.text.tokenizer_kind)
            encoder = load_text_encoder(encoder_source, cfg.text.tokenizer_kind, device=device)
        except KoemoInputError as err:
            raise CheckpointError(f"{directory / MANIFEST_FILE}: text model not usable: {err}") from err
        check_text_model(tokenizer, encoder, cfg, directory)
        if isinstance(asr, dict):
            recognition = asr_settings(asr)
        else:
            recognition = asr_settings(cfg, model=None if asr == "config" else (asr or "none"))
        audio, text, classifier = models["audio"], models["text"], models["multimodal"]
        # build_from_checkpoint checked each stage (expect_stage): these are its model classes
        assert isinstance(audio, AudioRegressor) and isinstance(text, TextRegressor) \
            and isinstance(classifier, FrozenRegressors)
        predictor = cls(audio, text, classifier, tokenizer, encoder,
                        cfg, metas["multimodal"]["classes"], device=device, long_audio=long_audio,
                        batch_size=batch_size, seed=seed, source=str(directory),
                        mismatched=mismatched, asr=recognition)
        predictor.config_notes = config_notes
        for note in config_notes:
            warnings.warn(note, stacklevel=2)
        predictor.provenance = manifest.get("provenance")
        from koemo.inference.frontend import attach_speech_encoder
        return attach_speech_encoder(predictor, directory, manifest, device)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, revision: str | None = None,
                        cache_dir: str | Path | None = None, token: str | bool | None = None,
                        **kwargs: Any) -> "Predictor":
        """A predictor directory or a hub id "org/name" (downloaded once through koemo.inference.hub,
        then read from the hub cache); other keyword arguments go to `from_checkpoint`."""
        from koemo.inference.hub import predictor_dir

        return cls.from_checkpoint(predictor_dir(name_or_dir, revision=revision,
                                                 cache_dir=cache_dir, token=token), **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this predictor's directory with a generated model card (koemo.inference.hub.push_to_hub)."""
        from koemo.inference.hub import push_to_hub

        if self.source is None:
            raise KoemoInputError("this predictor was not loaded from a directory: nothing to push")
        return push_to_hub(self.source, repo_id, **kwargs)

    @property
    def window_seconds(self) -> float:
        fc = self.cfg.features
        if self.speech_encoder is not None:
            from koemo.audio.speech_encoder import encoder_settings
            return encoder_settings(self.cfg).max_frames * self.speech_encoder.hop_seconds
        return fc.max_frames * fc.hop_length / fc.sample_rate

    # -- public API

    def predict(self, audio: AudioSource, text: str | None = None,
                sample_rate: int | None = None) -> Prediction:
        """One utterance: a file path or an array (with `sample_rate`; default 16 kHz) and its
        transcript (None: speech recognition, or arousal only when asr is off)."""
        return self.predict_prepared([self._prepare(audio, text, sample_rate)])[0]

    def prepare(self, audio: AudioSource, text: str | None = None,
                sample_rate: int | None = None) -> _Item:
        """Load and check one utterance for `predict_prepared` (raises KoemoInputError)."""
        return self._prepare(audio, text, sample_rate)

    def predict_prepared(self, items: list[_Item]) -> list[Prediction]:
        """Transcribe the items that need it (one batched recognition pass), then one model pass."""
        self._transcribe(items)
        return self._infer(items)

    def predict_many(self, items: Iterable[tuple], progress: bool = False
                     ) -> Iterator[Prediction | KoemoInputError]:
        """Many utterances in batches of `batch_size`: items are (audio, text),
        (audio, text, sample_rate) or a bare audio path/array (no transcript). Yields, in order, a Prediction or the KoemoInputError that
        item raised (bad inputs are reported, never dropped)."""
        pending: list[tuple[int, _Item]] = []
        results: dict[int, Prediction | KoemoInputError] = {}
        next_out = 0
        for index, item in enumerate(_progress(items, progress)):
            try:
                pending.append((index, self._prepare(*_as_args(item))))
            except KoemoInputError as err:
                results[index] = err
            if len(pending) >= self.batch_size:
                results.update(zip([i for i, _ in pending], self.predict_prepared([p for _, p in pending])))
                pending = []
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
        if pending:
            results.update(zip([i for i, _ in pending], self.predict_prepared([p for _, p in pending])))
        while next_out in results:
            yield results.pop(next_out)
            next_out += 1

    # -- input preparation

    def _prepare(self, audio: AudioSource, text: str | None = None,
                 sample_rate: int | None = None) -> _Item:
        """Load and check one utterance: audio -> windows of features, text -> token ids."""
        frames, windows, info, head = recording_windows(self, audio, sample_rate)
        notes = list(info.notes)
        if windows.mode == "cut":
            notes.append(f"audio is {windows.audio_s:.1f} s, longer than the model's window "
                         f"({windows.window_s:.1f} s): only the first {windows.used_s:.1f} s were used "
                         "(long_audio='cut')")
        elif windows.mode == "windows":
            notes.append(f"audio is {windows.audio_s:.1f} s, longer than the model's window "
                         f"({windows.window_s:.1f} s): {windows.n_windows} overlapping windows, "
                         "predictions averaged")
        notes += provenance_notes(self.provenance)
        ids = mask = None
        cleaned = None
        if text is None and self.asr is None:
            notes.append("no transcript: text path skipped; valence and emotion not predicted "
                         "(the classifier needs audio and text)")
        elif text is not None:
            cleaned, ids, mask, text_notes = self.encode_text(text, info.source)
            notes += text_notes
        for stage in self.mismatched:
            notes.append(f"{'arousal' if stage == 'audio' else 'valence'} comes from the {stage} "
                         "regressor whose weights differ from the one inside the classifier")
        if self.random_in_eval:
            notes.append("checkpoint keeps attention dropout on in eval (faithful config, "
                         f"fixes.eval_attention_dropout_off=false): outputs are one draw, seeded with {self.seed}")
        item = _Item(frames, ids, mask, cleaned, info, windows, notes,
                     text_source=None if text is None else "given")
        if text is None and self.asr is not None:
            from koemo.config.schema import SAMPLE_RATE
            from koemo.inference.asr import MAX_SECONDS
            item.wave = head(int(MAX_SECONDS * SAMPLE_RATE))    # all that Whisper reads
        return item

    @property
    def transcriber(self) -> SpeechToText:
        """The `asr:` section's speech recogniser (Whisper or SenseVoice), loaded on first use."""
        if self._transcriber is None:
            from koemo.inference.asr import Transcriber

            if self.asr is None:
                raise KoemoInputError("speech recognition is off (asr none): pass a transcript")
            self._transcriber = Transcriber.load(self.asr, device=str(self.device))
        return self._transcriber

    def _transcribe(self, items: list[_Item]) -> None:
        """Fill in the transcript of items without one by speech recognition (batched)."""
        from koemo.inference.asr import truncation_note

        todo = [(item, item.wave) for item in items if item.wave is not None]
        if not todo:
            return
        texts = self.transcriber.transcribe([wave for _, wave in todo])
        for (item, _), heard in zip(todo, texts):
            item.wave = None
            note = truncation_note(item.audio.duration_s)
            item.notes += [note] if note else []
            try:
                item.text, item.token_ids, item.token_mask, text_notes = \
                    self.encode_text(heard, item.audio.source)
            except KoemoInputError:
                item.notes.append(f"speech recognition heard no Korean text ({_preview(heard)}): "
                                  "text path skipped; valence and emotion not predicted")
                continue
            item.text_source = "asr"
            item.notes += [f"transcript from speech recognition ({self.transcriber.source})"] + text_notes

    def audio_windows(self, wave: np.ndarray, info: AudioInfo) -> tuple[WindowSource, WindowInfo]:
        """The windows of a whole recording held in memory (koemo.inference.recording)."""
        return whole_windows(self, wave, info)

    def _as_trained(self, feats: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Mel windows as training read them: rounded to the feature store's dtype (float16),
        padding at the dB floor under fixes.db_floor_padding."""
        fc = self.cfg.features
        feats = feats.astype(fc.store_dtype).astype(np.float32)
        if self.cfg.fixes.db_floor_padding:
            feats = floor_padding(feats, lengths, float(fc.top_db))
        return feats

    def encode_text(self, text: str, source: str = "text") -> tuple[str, np.ndarray, np.ndarray, list[str]]:
        """Transcript -> (cleaned text, input_ids[L], attention_mask[L], notes)."""
        from koemo.dataset.kemdy20 import clean_transcript

        if not isinstance(text, str):
            raise KoemoInputError(f"transcript for {source} must be a str, not {type(text).__name__}")
        cleaned = clean_transcript(text)
        if not cleaned.strip():
            raise KoemoInputError(
                f"transcript for {source} is empty{' after removing markers' if text.strip() else ''}; "
                "pass the Korean transcript, or no text (None) to predict arousal only")
        if not HANGUL_RE.search(cleaned):
            raise KoemoInputError(
                f"transcript for {source} has no Korean (Hangul) characters ({_preview(cleaned)}): "
                "the text model is KoBERT, trained on Korean; pass the Korean transcript, or no "
                "text (None) to predict arousal only")
        notes = []
        if cleaned != " ".join(text.split()):
            notes.append("transcript markers (b/ l/ n/ u/ c/ N/ * +) removed, as in training")
        max_length = int(self.cfg.text.max_length)
        pieces = self.tokenizer.tokenize(cleaned)
        ids = self.tokenizer.convert_tokens_to_ids(pieces)
        unknown = sum(1 for i in ids if i == self.tokenizer.unk_token_id)
        if pieces and unknown / len(pieces) >= UNK_NOTE_SHARE:
            notes.append(f"{unknown} of {len(pieces)} transcript pieces are unknown to the "
                         "tokenizer ([UNK]): valence and emotion are less reliable")
        if len(pieces) > max_length - 2:
            notes.append(f"transcript truncated to its first {max_length - 2} of {len(pieces)} pieces "
                         f"(text.max_length={max_length})")
        encoded = self.tokenizer.encode(pieces, max_length)
        return cleaned, encoded["input_ids"], encoded["attention_mask"], notes

    # -- model passes

    def _infer(self, items: list[_Item]) -> list[Prediction]:
        """The text pass once, then the windows through the audio and fusion models a batch
        at a time (koemo.inference.passes), each pass seeded on its own."""
        import torch

        from koemo.inference.passes import score_windows

        with torch.inference_mode():
            with _seeded(self.seed + 1, self.device):
                text_out = self._text_pass(items)
            scores = score_windows(self, items, text_out)
        return [self._result(item, score, text_out, i) for i, (item, score) in enumerate(zip(items, scores))]

    def _text_pass(self, items: list[_Item]) -> dict:
        """Text regressor (and the classifier's text model) for the items with a transcript:
        `rows` maps item index -> row of valence/hidden/mask."""
        import torch

        from koemo.text.encoder import last_hidden_states

        tokens = [(i, item.token_ids, item.token_mask) for i, item in enumerate(items)
                  if item.token_ids is not None and item.token_mask is not None]
        if not tokens:
            return {"rows": {}}
        texted = [i for i, _, _ in tokens]
        ids = torch.as_tensor(np.stack([ids for _, ids, _ in tokens]), device=self.device)
        mask = torch.as_tensor(np.stack([mask for _, _, mask in tokens]), device=self.device)
        states = last_hidden_states(self.encoder(input_ids=ids, attention_mask=mask,
                                                 token_type_ids=torch.zeros_like(ids)))
        # The training cache stored KoBERT states as float16: the regressors saw rounded states.
        states = states.half().float()
        out = self.text_model(states, mask)
        inner = out if self.shared_text else self.classifier.TextModel(states, mask)
        return {"rows": {item: row for row, item in enumerate(texted)}, "valence": out["pred"].cpu(),
                "hidden": inner["hidden"], "mask": inner["mask"]}

    def _result(self, item: _Item, scores: WindowScores, text_out: dict, index: int) -> Prediction:
        notes = list(item.notes)
        arousal = _on_scale(float(scores.arousal.mean()), "arousal", notes)
        valence = label = probabilities = None
        if scores.probabilities is not None:
            probs = scores.probabilities.mean(axis=0)
            valence = _on_scale(float(text_out["valence"][text_out["rows"][index]]), "valence", notes)
            probabilities = {c: float(p) for c, p in zip(self.classes, probs)}
            label = self.classes[int(np.argmax(probs))]
        return Prediction(label, probabilities, arousal, valence, notes, item.windows, item.audio,
                          item.text, item.text_source, per_window=scores)


# ----------------------------------------------------------------------------- helpers

def _as_args(item: Any) -> tuple:
    """A predict_many item: (audio, text[, sample_rate]), or a bare path/array (no transcript)."""
    if isinstance(item, (str, Path, np.ndarray)):
        return (item,)
    return tuple(item)


def _on_scale(value: float, name: str, notes: list[str]) -> float:
    low, high = SCALE
    if low <= value <= high:
        return value
    notes.append(f"{name} {value:.2f} outside the annotation scale {low:g}-{high:g}: clipped")
    return float(min(max(value, low), high))


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _progress(items: Iterable, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm.auto import tqdm
    total = len(items) if isinstance(items, Sized) else None
    return tqdm(items, total=total, desc="predict", unit="utt")


def _seeded(seed: int, device: torch.device | str) -> ContextManager[None]:
    """Seed torch inside a forked RNG: reproducible draws, the caller's RNG state untouched
    (koemo.modeling.stage.seeded, as test scoring and `koemo evaluate` draw)."""
    from koemo.modeling.stage import seeded

    return seeded(seed, device)
