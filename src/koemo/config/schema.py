"""The typed, strict schema of a koemo config: one frozen pydantic model per section.

Every setting has a type, a default (what the code used when the key was absent; mostly
configs/paper.yaml's value) and one line of help. Unknown keys are errors (`extra="forbid"`),
so a typo fails at load time instead of training on the defaults.

Each parsed section keeps the mapping it was built from (`as_dict()`): fingerprints, run.json
and config.yaml are computed from the config AS WRITTEN (after `base:` and `--set`), never
from the defaults the schema fills in, so no cache or run key changes when a default is added.

Settings marked `affects_results: False` never change what a run computes; the run-identity
and "unread sections" lists (koemo.modeling.runs, koemo.experiments.plan) derive from them.
`python -m koemo.config.docs` writes docs/configuration.md from this module.
"""
from __future__ import annotations

import copy
import json
from typing import Annotated, Any, ClassVar, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, model_validator


# Evaluation protocols (koemo.dataset.splits): paper, session and cv5 read the workdir's rows;
# the others need a workdir holding both corpora (koemo.dataset.combine).
CORPORA = ("kemdy19", "kemdy20")
CROSS_PROTOCOLS = ("kemdy19_to_kemdy20", "kemdy20_to_kemdy19")
IN_CORPUS_PROTOCOLS = tuple(f"{corpus}_cv5" for corpus in CORPORA)   # one corpus' session folds
PROTOCOLS = ("paper", "session", "cv5") + CROSS_PROTOCOLS + IN_CORPUS_PROTOCOLS


def setting(default: Any, help: str, *, affects_results: bool = True, **marks: bool) -> Any:
    """A field with its one line of help. `affects_results=False` marks a setting that never
    changes what is computed (devices, speed knobs, names); `marks` (stored, model_input) tag
    the feature settings the feature store and the predictor checks key on."""
    extra = dict(marks, **({} if affects_results else {"affects_results": False})) or None
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: copy.deepcopy(d), description=help,
                     json_schema_extra=extra)
    return Field(default, description=help, json_schema_extra=extra)


class Section(BaseModel):
    """A config section: strict (unknown keys fail), frozen, remembering what was written."""
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    # Sections no training stage reads (a class attribute, not a setting).
    unread_by_training: ClassVar[bool] = False
    _written: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_written(cls, data: Any, handler):
        model = handler(data)
        if isinstance(data, Section):
            model._written = copy.deepcopy(data._written)
        elif isinstance(data, Mapping):
            model._written = copy.deepcopy(dict(data))
        return model

    def as_dict(self) -> dict:
        """The section as written (no schema defaults): what fingerprints and run files see."""
        return copy.deepcopy(self._written)

    # Equal settings are equal sections, however they were written.
    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(json.dumps(self.model_dump(), sort_keys=True, default=str))

    def __contains__(self, key: str) -> bool:
        """Whether `key` was written (not whether the schema has a default for it)."""
        return key in self._written


# ----------------------------------------------------------------------------- sections

class Data(Section):
    label_policy: str = setting("paper5", "paper5 | keep_ties | seven: which labelled rows are kept")
    classes: Optional[list[str]] = setting(
        None, "the five classes, in label-id order (null: the label policy's own list)")
    transcript_encoding: str = setting("cp949", "transcript encoding that wins when cp949 and utf-8 "
                                                "both read as Korean (the decoding that does is used)")
    corpus: str = setting("auto", "auto | kemdy19 | kemdy20: which corpus --data holds (auto: "
                                  "recognised from its annotation files)")
    kemdy19_labels: str = setting("own", "own | listener: a KEMDy19 utterance's label from its "
                                         "speaker's rating file, or the other actor's")
    protocol: str = setting("paper", "paper | session | cv5 | kemdy19_to_kemdy20 | kemdy20_to_kemdy19"
                                     " | kemdy19_cv5 | kemdy20_cv5: how rows are split (the last "
                                     "four in a workdir holding both corpora)")
    fold: int = setting(0, "which session fold is the test set (0-4; cv5 and <corpus>_cv5)")
    split_seed: int = setting(1, "seed of the random train/valid/test split")
    folds_file: Optional[str] = setting(
        None, "CSV session,fold (null: session s -> fold (s-1) % 5)")
    silent_audio: str = setting("keep", "keep | drop: recordings without signal train and score, or are left out")


class Features(Section):
    backend: str = setting("torch", "torch (batched, GPU-capable) | librosa (faithful reference)",
                           stored=True)
    sample_rate: int = setting(16000, "audio resampled to this rate (Hz)", stored=True, model_input=True)
    n_mels: int = setting(128, "mel bins (divisible by 4: two stride-2 convolutions)",
                          stored=True, model_input=True)
    n_fft: int = setting(2048, "FFT size (samples)", stored=True, model_input=True)
    hop_length: int = setting(512, "hop between frames (samples)", stored=True, model_input=True)
    fmin: float = setting(100, "lowest mel frequency (Hz)", stored=True, model_input=True)
    fmax: float = setting(8000, "highest mel frequency (Hz)", stored=True, model_input=True)
    top_db: float = setting(80, "dynamic range kept below the peak (dB)", stored=True, model_input=True)
    delta_width: int = setting(9, "window of the delta features (frames)", stored=True, model_input=True)
    max_frames: int = setting(512, "frames per utterance (longer cut, shorter padded)",
                              stored=True, model_input=True)
    store_dtype: str = setting("float32", "dtype of the stored feature arrays (paper.yaml: float16)",
                               stored=True)


class Augment(Section):
    enabled: bool = setting(False, "augment the minority classes of the training set "
                                   "(absent: off, as the training code read it)")
    minority_classes: list[str] = setting(["surprise", "angry", "sad"], "classes that get augmented copies")
    text_ratio: float = setting(0.3, "share of words swapped or deleted in the text augmentations")
    freq_mask_max_start: Optional[int] = setting(None, "highest first bin of the frequency mask (null: n_mels)")
    freq_mask_width: list[int] = setting([10, 30], "frequency mask width range [low, high] (bins)")
    freq_mask_db_range: list[float] = setting([-80.0, 0.0], "range of the mask's noise (dB)")
    seed: int = setting(824, "augmentation seed (reset per call unless fixes.seed_per_sample)")


class Standin(Section):
    vocab_size: int = setting(8002, "vocabulary of the locally trained KoBERT stand-in")
    hidden_size: int = setting(768, "width of its states (must equal models.text.input_dim)")
    num_layers: int = setting(2, "transformer layers")
    num_heads: int = setting(12, "attention heads")
    intermediate_size: Optional[int] = setting(None, "feed-forward width (null: 4 x hidden_size)")
    seed: int = setting(0, "seed of its random weights")


class Text(Section):
    tokenizer: str = setting("skt/kobert-base-v1", "hub id, local directory, or standin")
    encoder: str = setting("skt/kobert-base-v1", "hub id, local directory, or standin")
    tokenizer_kind: Optional[str] = setting(None, "kobert | auto: overrides the tokenizer guess (null: guessed)")
    max_length: int = setting(64, "tokens per utterance")
    encode_batch_size: int = setting(64, "utterances per text-encoder pass when caching states",
                                     affects_results=False)
    standin: Optional[Standin] = setting(None, "sizes of the KoBERT stand-in (text.encoder: standin)")


class SpeechEncoderSettings(Section):
    name: Optional[str] = setting(None, "hub id or local directory of a wav2vec2/HuBERT/WavLM model")
    layers: Union[list[int], int] = setting([-1], "hidden_states indices mixed (negative: from the last)")
    pooling: str = setting("weighted", "weighted (learned softmax weights) | mean")
    input_dim: Optional[int] = setting(None, "encoder state width (null: models.d_model)")
    max_frames: Optional[int] = setting(None, "encoder frames per utterance (null: features.max_frames)")
    batch_size: int = setting(8, "utterances per encoder pass when caching states",
                              affects_results=False)


class AudioModel(Section):
    frontend: Optional[str] = setting("mel", "mel (the paper) | encoder (a pretrained speech encoder)")
    encoder: Optional[SpeechEncoderSettings] = setting(None, "the speech encoder (frontend: encoder)")
    conv_channels: list[int] = setting([8, 24], "channels of the two convolutions")
    n_layers: int = setting(7, "attention layers")
    num_heads: int = setting(6, "attention heads")
    inner_dim: int = setting(1024, "feed-forward width")
    dropout: float = setting(0.1, "dropout")
    rnn_hidden: int = setting(64, "GRU width")


class TextModel(Section):
    input_dim: Optional[int] = setting(None, "encoder state width (null: models.d_model)")
    n_layers: int = setting(5, "attention layers")
    num_heads: int = setting(6, "attention heads")
    inner_dim: int = setting(1024, "feed-forward width")
    dropout: float = setting(0.1, "dropout")
    rnn_hidden: int = setting(64, "GRU width")


class MultimodalModel(Section):
    n_layers: int = setting(4, "attention layers")
    num_heads: int = setting(6, "attention heads")
    inner_dim: int = setting(3072, "feed-forward width")
    dropout: float = setting(0.1, "dropout")
    rnn_hidden: int = setting(128, "LSTM width")
    reuse_audio_num_heads: int = setting(4, "heads of the audio model rebuilt inside the classifier "
                                            "(the original: 4; fixes.consistent_heads: audio's own)")


class FusionModel(Section):
    tensor_dim: int = setting(32, "width each side is projected to before tensor fusion")


class Models(Section):
    d_model: int = setting(768, "model width (audio: conv_channels[-1] * n_mels / 4)")
    audio: AudioModel = setting({}, "the audio (arousal) regressor")
    text: TextModel = setting({}, "the text (valence) regressor")
    multimodal: MultimodalModel = setting({}, "the attention + LSTM classifier")
    fusion: FusionModel = setting({}, "the other fusion classifiers (fusion study)")

    def stage(self, name: str) -> AudioModel | TextModel | MultimodalModel:
        """The model section of a training stage (audio, text or multimodal)."""
        return getattr(self, name)


class Fixes(Section):
    eval_attention_dropout_off: bool = setting(False, "attention dropout off in eval (original: on)")
    text_padding_mask: bool = setting(False, "mask text padding (original: the mask never masks)")
    length_padding_mask: bool = setting(False, "audio mask from lengths (original: all-non-zero frames)")
    last_valid_step: bool = setting(False, "GRU/LSTM read the last valid step (original: the last, padding)")
    consistent_heads: bool = setting(False, "classifier rebuilds the audio model with its own heads (original: 4)")
    db_floor_padding: bool = setting(False, "pad at the dB floor (original: zero = 0 dB, the loudest)")
    mask_spectrogram_only: bool = setting(False, "frequency-mask noise only in the spectrogram (original: also delta)")
    seed_per_sample: bool = setting(False, "one augmentation seed per sample (original: reset every call)")
    test_best_checkpoint: bool = setting(False, "test scored with the best epoch (original: the last)")


class TrainStage(Section):
    epochs: int = setting(20, "epoch budget")
    batch_size: int = setting(32, "batch size")
    lr: float = setting(2.0e-5, "Adam learning rate")
    gamma: float = setting(0.8, "exponential learning-rate decay per epoch")
    patience: Optional[int] = setting(None, "early stopping after this many epochs without "
                                            "improvement (null: epochs, i.e. none)")


class MultimodalStage(TrainStage):
    class_weights: Union[bool, str, list[float]] = setting(
        False, "false | true or balanced (inverse class frequency) | one weight per class")
    cache_frozen: bool = setting(True, "cache the frozen regressors' outputs once per run",
                                 affects_results=False)
    target: str = setting("hard", "hard | soft: train on the total label (the paper) or on the "
                                  "raters' label distribution; scored on the total label either way")


class Train(Section):
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", affects_results=False)
    precision: str = setting("fp32", "fp32 | bf16 | fp16 | auto (fp32 gives the faithful numbers)",
                             affects_results=False)
    num_workers: int = setting(0, "DataLoader worker processes", affects_results=False)
    compile: Union[bool, str, dict] = setting(
        False, "torch.compile: false | true | a mode (default, reduce-overhead, max-autotune, "
               "max-autotune-no-cudagraphs) | {stage: one of those}; falls back with a note "
               "where compile is unavailable", affects_results=False)
    tf32: bool = setting(False, "TF32 matmul and cuDNN on CUDA (no effect on a CPU)",
                         affects_results=False)
    trim_padding: Union[bool, str] = setting(
        "auto", "auto | false: cut each batch to its longest valid length where that provably "
                "changes nothing (masked padding, no dropout drawn)", affects_results=False)
    tensorboard: bool = setting(False, "TensorBoard scalars in <run dir>/tensorboard/",
                                affects_results=False)
    resident: Union[bool, str] = setting("auto", "auto | true | false: inputs copied once onto the device",
                                         affects_results=False)
    background_writes: bool = setting(True, "checkpoints written by a background thread",
                                      affects_results=False)
    audio: TrainStage = setting({}, "the audio regressor's training")
    text: TrainStage = setting({}, "the text regressor's training")
    multimodal: MultimodalStage = setting({}, "the classifier's training")

    def stage(self, name: str) -> TrainStage:
        """The training settings of a stage (audio, text or multimodal)."""
        return getattr(self, name)


class Asr(Section):
    unread_by_training = True
    model: Optional[str] = setting("openai/whisper-small",
                                   "Whisper hub id or local directory; none = no speech recognition")
    language: str = setting("korean", "language Whisper transcribes")
    task: str = setting("transcribe", "Whisper task")
    device: str = setting("auto", "auto (the predictor's device) | cpu | cuda | cuda:N",
                          affects_results=False)
    batch_size: int = setting(8, "utterances per generate() call", affects_results=False)
    max_new_tokens: int = setting(128, "longest transcript (tokens)")
    num_beams: int = setting(1, "beam search width (1: greedy)")


class Vad(Section):
    threshold: float = setting(0.5, "speech probability that opens an utterance")
    neg_threshold: Optional[float] = setting(None, "probability that closes it (null: threshold - 0.15)")
    min_speech_s: float = setting(0.25, "shorter bursts are dropped (s)")
    min_silence_s: float = setting(0.3, "shorter pauses do not split an utterance (s)")
    speech_pad_s: float = setting(0.03, "added on both sides of an utterance (s)")
    max_speech_s: float = setting(25.0, "longer speech is split (s; Whisper reads 30 s at most)")


class Segments(Section):
    unread_by_training = True
    block_s: float = setting(30.0, "seconds read from the file at a time", affects_results=False)
    batch_utterances: int = setting(16, "utterances transcribed and scored per pass",
                                    affects_results=False)
    vad: Vad = setting({}, "Silero VAD settings")


class Biosignals(Section):
    unread_by_training = True
    signals: list[str] = setting(["TEMP", "EDA"], "wrist signals analysed")
    k: int = setting(5, "clusters of the reported DTW k-means")
    ks: list[int] = setting(list(range(2, 11)), "ks of the silhouette sweep")
    max_series: int = setting(600, "series clustered (stratified sample; DTW is O(n^2))")
    series_length: int = setting(24, "each series resampled to this many steps")
    alpha: float = setting(0.05, "significance level")
    n_jobs: int = setting(1, "ks fitted in parallel threads (-1: every core)", affects_results=False)


class Ablation(Section):
    audio_layers: list[int] = setting([3, 4, 5, 6, 7], "audio n_layers of the layer ablation")
    text_layers: list[int] = setting([3, 4, 5, 6, 7], "text n_layers of the layer ablation")
    combos: list[list[int]] = setting([[6, 6], [7, 6], [7, 5]], "[audio, text] depth combinations")


class FusionStudy(Section):
    kinds: list[str] = setting([], "classifier kinds compared")
    protocol: str = setting("cv5", "split protocol of the study")
    variant: str = setting("corrected", "faithful | corrected")
    seeds: Optional[list[int]] = setting(None, "seeds (null: reproduce.seeds / cv5_seeds)")


class CrossCorpusStudy(Section):
    kinds: Optional[list[str]] = setting(None, "classifier kinds compared (null: the fusion study's)")
    variant: str = setting("corrected", "faithful | corrected")
    seeds: Optional[list[int]] = setting(None, "seeds (null: reproduce.cv5_seeds / seeds)")


# ---- the foundation-model study of notebook 5-4 (koemo.experiments.foundation)
class FoundationProbe(Section):
    layer: Union[Literal["weighted"], StrictInt] = setting(
        "weighted", "weighted (a learned softmax weighting over every hidden state) | N: hidden "
                    "state N alone (0: the embeddings; negative counts from the last; EmoBox: -1)")
    hidden: Annotated[int, Field(gt=0)] = setting(256, "width of the probe's hidden layer (EmoBox: 256)")
    epochs: Annotated[int, Field(gt=0)] = setting(20, "epoch budget (EmoBox: 20)")
    batch_size: Annotated[int, Field(gt=0)] = setting(32, "batch size (EmoBox: 32)")
    lr: Annotated[float, Field(gt=0)] = setting(1.0e-4, "Adam learning rate (EmoBox: 1e-4)")
    warmup_epochs: Annotated[int, Field(ge=0)] = setting(
        10, "linear warm-up over this many epochs, then linear decay to 0 at `epochs` (EmoBox: "
            "10 of 20); 0: a constant learning rate")
    patience: Optional[Annotated[int, Field(gt=0)]] = setting(
        5, "early stopping after this many epochs without a lower validation loss; the test is "
           "scored with the best epoch (null: every epoch, as EmoBox)")


class FusedUpstreams(Section):
    audio: str = setting("microsoft/wavlm-large", "the audio upstream of a fused probe")
    text: str = setting("klue/roberta-large", "the text upstream of a fused probe")


class ZeroShotModel(Section):
    kind: Literal["emotion2vec", "sensevoice"] = setting(
        "emotion2vec", "emotion2vec (its 9-class head) | sensevoice (its emotion tag)")
    model: str = setting("emotion2vec/emotion2vec_plus_large", "hub id, local directory or tiny:<kind>")


class FoundationStudy(Section):
    audio: list[str] = setting(
        ["microsoft/wavlm-large", "facebook/hubert-large-ll60k", "openai/whisper-large-v3",
         "facebook/wav2vec2-xls-r-300m", "emotion2vec/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_large"],
        "frozen audio upstreams, one probe each: hub ids or local directories (tiny:<family> "
        "builds a tiny random one in the workdir: demo and tests)")
    text: list[str] = setting(
        ["klue/roberta-large", "monologg/koelectra-base-v3-discriminator", "skt/kobert-base-v1"],
        "frozen text upstreams, one probe each (standin: the workdir's KoBERT stand-in)")
    fused: list[FusedUpstreams] = setting(
        [{"audio": "microsoft/wavlm-large", "text": "klue/roberta-large"}],
        "audio + text pairs, one fused probe each (the two pooled vectors concatenated)")
    zero_shot: list[ZeroShotModel] = setting(
        [{"kind": "emotion2vec", "model": "emotion2vec/emotion2vec_plus_base"},
         {"kind": "emotion2vec", "model": "emotion2vec/emotion2vec_plus_large"},
         {"kind": "sensevoice", "model": "FunAudioLLM/SenseVoiceSmall"}],
        "models scored zero-shot on the same test rows, through their own emotion labels")
    probe: FoundationProbe = setting({}, "the probe trained on each fold (EmoBox's downstream model)")
    variant: Literal["faithful", "corrected"] = setting(
        "corrected", "which rows train and score (corrected: recordings without signal left "
                     "out), as the fusion and cross-corpus runs the table compares with")
    seeds: Optional[list[int]] = setting(
        None, "probe seeds (null: the cross-corpus study's, so each probe pairs with the "
              "paper's run of its seed)")
    text_max_length: Annotated[int, Field(gt=2)] = setting(128, "tokens per transcript read by the text upstreams")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N: where the upstreams run",
                          affects_results=False)
    batch_size: Annotated[int, Field(gt=0)] = setting(
        16, "transcripts per text-upstream pass (and utterances per zero-shot batch)",
        affects_results=False)


class Reproduce(Section):
    unread_by_training = True
    parallel_runs: int = setting(1, "runs trained at once (worker processes)", affects_results=False)
    runs_per_device: Union[Literal["auto"], StrictInt] = setting(
        "auto", "runs trained at once per device: auto (as many as fit a GPU's free memory; "
                "on a CPU, parallel_runs) | N", affects_results=False)
    protocols: list[str] = setting(["paper", "cv5"], "protocols of the main runs")
    variants: list[str] = setting(["faithful", "corrected"], "faithful | corrected (every fix on)")
    seeds: list[int] = setting([1, 2, 3], "seeds of the main runs")
    cv5_seeds: Optional[list[int]] = setting(None, "seeds of the session folds (null: seeds)")
    folds: Optional[list[int]] = setting(None, "cv5 folds run (null: all five)")
    ablation: Ablation = setting({}, "layer ablation and depth combinations")
    frontends: list[str] = setting([], "other configs whose fusion study 5-2 puts beside this one's")
    fusion: Optional[FusionStudy] = setting(None, "the fusion study (null: none)")
    cross_corpus: Optional[CrossCorpusStudy] = setting(
        {}, "the cross-corpus study of notebook 5-3, run when a KEMDy19 copy is given "
            "(--kemdy19, or synthetic.kemdy19); null: none")
    leakage_free: bool = setting(
        True, "also score each classifier without the test utterances whose text occurs in "
              "its training or validation rows (the fusion and cross-corpus tables)")
    foundation: Optional[FoundationStudy] = setting(
        None, "the foundation-model study of notebook 5-4: frozen upstreams + probes and "
              "zero-shot models on the same folds (null: none)")


class SyntheticKemdy19(Section):
    sessions: int = setting(10, "sessions of the synthetic KEMDy19 corpus")
    utterances_per_session: int = setting(24, "utterances per session (at least 20)")
    mean_duration: float = setting(2.5, "mean utterance length (s)")
    seed: int = setting(0, "generator seed")


class Synthetic(Section):
    unread_by_training = True
    sessions: int = setting(4, "sessions of the synthetic corpus")
    utterances_per_session: int = setting(80, "utterances per session")
    mean_duration: float = setting(3.5, "mean utterance length (s)")
    seed: int = setting(0, "generator seed")
    silent_recordings: int = setting(0, "recordings without signal per session")
    faults: list[str] = setting([], "real-file faults planted into session 1 (names of "
                                    "`koemo synth --faults`, or [all])")
    kemdy19: Optional[SyntheticKemdy19] = setting(
        None, "a synthetic KEMDy19 for the cross-corpus study (notebook 5-3; null: none)")


class Config(Section):
    """A whole experiment (top level). `base:` is resolved by koemo.config.load."""
    name: str = setting("paper", "experiment name (default: the config file's stem); names run "
                                 "directories", affects_results=False)
    seed: int = setting(1, "default training seed")
    regressor_runs: Optional[dict[str, str]] = setting(
        None, "run names of shared regressors {audio: NAME, text: NAME} (set by the plan)",
        affects_results=False)
    data: Data = setting({}, "the corpus rows and their split")
    features: Features = setting({}, "log-mel + delta features")
    augment: Augment = setting({}, "minority-class augmentation")
    text: Text = setting({}, "the text encoder (KoBERT or another)")
    models: Models = setting({}, "model shapes")
    fixes: Fixes = setting({}, "known defects of the original (false = as the original)")
    train: Train = setting({}, "training")
    reproduce: Reproduce = setting({}, "what `koemo reproduce` runs")
    biosignals: Biosignals = setting({}, "bio-signal analysis (notebook 1-3)")
    asr: Asr = setting({}, "speech recognition for `koemo predict` without a transcript")
    segments: Segments = setting({}, "long recordings cut by VAD (`koemo predict --segments`)")
    synthetic: Optional[Synthetic] = setting(None, "the synthetic corpus recipe (demo, tests)")

    def as_dict(self) -> dict:
        """The whole config as written (after `base:` and overrides, without defaults)."""
        return super().as_dict()


# ----------------------------------------------------------------------------- derived lists

def _extra(section: type[Section], key: str) -> dict:
    return section.model_fields[key].json_schema_extra or {}


def speed_settings(section: type[Section]) -> tuple[str, ...]:
    """The settings of `section` marked as not changing results (in schema order)."""
    return tuple(k for k in section.model_fields
                 if _extra(section, k).get("affects_results") is False)


def not_results_sections() -> tuple[str, ...]:
    """Top-level keys that never make two runs different: names and unread sections."""
    return speed_settings(Config) + unread_sections()


def unread_sections() -> tuple[str, ...]:
    """Top-level sections no training stage reads."""
    return tuple(k for k, f in Config.model_fields.items()
                 if _section_type(f.annotation) is not None
                 and _section_type(f.annotation).unread_by_training)


def feature_keys(*, model_input_only: bool = False) -> tuple[str, ...]:
    """features.* that shape the stored arrays; `model_input_only`: those that change the
    numbers the models see (not the backend, which agrees within tolerance, nor the dtype)."""
    flag = "model_input" if model_input_only else "stored"
    return tuple(k for k in Features.model_fields if _extra(Features, k).get(flag))


def _section_type(annotation) -> type[Section] | None:
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, Section):
            return arg
    return None
