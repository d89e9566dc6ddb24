"""The typed, strict schema of a koemo config: one frozen section model (koemo.config.section)
per section, the one place each setting's type, default, legal values and help are written.

Unknown keys are errors, so a typo fails at load time instead of training on the defaults.
Legal values are types: choices are `Literal` (the tuples other modules import are read from
them), numbers strict (`true` is not 1) with their ranges, and what types cannot say a `Rule`
(koemo.config.allowed) or a cross-field rule of the section; all checked when a config loads.
Settings marked `affects_results: False` never change what a run computes; the run-identity
and "unread sections" lists derive from them. `python -m koemo.config.docs` writes
docs/configuration.md from this module.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Sequence, Union, get_args

from annotated_types import Ge, Gt, Le, Len, Lt, MinLen, MultipleOf
from pydantic import StrictFloat, StrictInt, ValidationInfo, model_validator

from koemo.config.allowed import Rule
from koemo.config.section import (AtLeast2, Count, Decay, Dropout, Name, NonNegative, Positive,
                                  Probability, Section, Seed, Share, Whole, distinct, field_marks,
                                  refuse, setting, speed_settings)
from koemo.config.section import section_type as _section_type
from koemo.config.foundation import FoundationStudy
from koemo.config.synthetic import Synthetic

# ----------------------------------------------------------------------------- legal values
# Each setting's choices are written once, here, as a Literal; where a module needs them as
# values, a tuple beside the Literal reads them from it (typing.get_args).

Corpus = Literal["kemdy19", "kemdy20"]
CORPORA = get_args(Corpus)
# Evaluation protocols (koemo.dataset.splits): paper, session and cv5 read the workdir's rows;
# the others need a workdir holding both corpora (koemo.dataset.combine).
CrossProtocol = Literal["kemdy19_to_kemdy20", "kemdy20_to_kemdy19"]
InCorpusProtocol = Literal["kemdy19_cv5", "kemdy20_cv5"]      # one corpus' session folds
Protocol = Literal[Literal["paper", "session", "cv5"], CrossProtocol, InCorpusProtocol]
PROTOCOLS = get_args(Protocol)
CROSS_PROTOCOLS = get_args(CrossProtocol)
IN_CORPUS_PROTOCOLS = get_args(InCorpusProtocol)
FOLDED_PROTOCOLS = ("cv5",) + IN_CORPUS_PROTOCOLS             # N_FOLDS session folds each
N_FOLDS = 5                                  # session folds of cv5 and <corpus>_cv5

# Class ids as the original: neutral 0, sad 1, happy 2, surprise 3, angry 4; both corpora also
# annotate disgust and fear (label_policy seven).
PaperClass = Literal["neutral", "sad", "happy", "surprise", "angry"]
Emotion = Literal[PaperClass, Literal["disgust", "fear"]]
PAPER_CLASSES = get_args(PaperClass)
SEVEN_CLASSES = get_args(Emotion)
LabelPolicy = Literal["paper5", "keep_ties", "seven"]
Kemdy19Labels = Literal["own", "listener"]
# What the corpus readers decode (koemo.dataset.kemdy20.decode_transcript): KEMDy20 writes
# cp949, KEMDy19 UTF-8; the one whose text reads as Korean wins.
TranscriptEncoding = Literal["cp949", "utf-8"]
TRANSCRIPT_ENCODINGS = get_args(TranscriptEncoding)
# keep: recordings without signal train and score as in the original; drop: left out.
SilentAudio = Literal["keep", "drop"]

FeatureBackend = Literal["torch", "librosa"]
# Both corpora are 16 kHz; prepare requires the wavs at this rate, and the speech encoders,
# Whisper and the VAD read 16 kHz.
SampleRate = Literal[16000]
SAMPLE_RATE = get_args(SampleRate)[0]
StoreDtype = Literal["float32", "float16"]
Frontend = Literal["mel", "encoder"]
Pooling = Literal["weighted", "mean"]
TokenizerKind = Literal["kobert", "auto"]

RegressorStage = Literal["audio", "text"]                  # also the two modalities
Stage = Literal[RegressorStage, Literal["multimodal"]]
STAGES = get_args(Stage)
REGRESSOR_STAGES = get_args(RegressorStage)
UnimodalKind = Literal["audio_only", "text_only"]     # one modality: "<regressor stage>_only"
FusionKind = Literal[UnimodalKind, Literal["early", "late", "sum", "tensor", "attention_lstm"]]
FUSION_KINDS = get_args(FusionKind)          # the classifier kinds (koemo.modeling.fusion)
UNIMODAL_KINDS = get_args(UnimodalKind)
Target = Literal["hard", "soft"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
Variant = Literal["faithful", "corrected"]
Biosignal = Literal["EDA", "TEMP", "IBI"]
BIOSIGNALS = get_args(Biosignal)

# Values only some settings take (the kinds of numbers all settings use: koemo.config.section).
Fold = Annotated[StrictInt, Ge(0), Lt(N_FOLDS)]
Device = Annotated[str, Rule("auto, cpu, cuda, cuda:N or mps",
                             lambda v: v in ("auto", "cpu", "cuda", "mps")
                             or (v.startswith("cuda:") and v[5:].isascii() and v[5:].isdigit()))]

Emotions = Annotated[list[Emotion], Rule("a list of distinct emotions among "
                                         f"{', '.join(SEVEN_CLASSES)}", distinct)]
Classes = Annotated[list[Emotion], MinLen(2), Rule("a list of at least 2 distinct emotions among "
                                                   f"{', '.join(SEVEN_CLASSES)}", distinct)]
Mels = Annotated[StrictInt, Ge(4), MultipleOf(4)]
OddWidth = Annotated[StrictInt, Rule("an odd integer >= 3", lambda v: v >= 3 and v % 2 == 1)]
WidthRange = Annotated[list[Count], Len(2, 2), Rule("[low, high]: integers with 0 <= low < high",
                                                    lambda v: v[0] < v[1])]
DbRange = Annotated[list[StrictFloat], Len(2, 2), Rule("[low, high]: numbers with low <= high",
                                                       lambda v: v[0] <= v[1])]
Layers = Union[Annotated[list[StrictInt], MinLen(1), Rule("a list of distinct integers", distinct)],
               StrictInt]
Signals = Annotated[list[Biosignal], MinLen(1), Rule("a list of distinct signals among "
                                                     f"{', '.join(BIOSIGNALS)}", distinct)]
Jobs = Annotated[StrictInt, Rule("an integer other than 0 (-1: every core)", lambda v: v != 0)]
RunName = Annotated[str, Rule("a name without / or \\ (it names run directories)",
                              lambda v: bool(v) and v not in (".", "..") and not set(v) & set("/\\"))]


# ----------------------------------------------------------------------------- sections

class Data(Section):
    label_policy: LabelPolicy = setting(
        "paper5", "which labelled rows are kept: paper5 (single-label rows of the five classes), "
                  "keep_ties (a tie keeps the first of its labels), seven (all seven emotions)")
    classes: Optional[Classes] = setting(
        None, "the five classes, in label-id order (null: the label policy's own list)")
    transcript_encoding: TranscriptEncoding = setting(
        "cp949", "transcript encoding that wins when cp949 and utf-8 both read as Korean (the "
                 "decoding that does is used)")
    corpus: Literal["auto", Corpus] = setting(
        "auto", "which corpus --data holds (auto: recognised from its annotation files)")
    kemdy19_labels: Kemdy19Labels = setting(
        "own", "a KEMDy19 utterance's label from its speaker's rating file (own), or the other "
               "actor's (listener)")
    protocol: Protocol = setting("paper", "how rows are split (the cross-corpus and <corpus>_cv5 "
                                          "protocols in a workdir holding both corpora)")
    fold: Fold = setting(0, "which session fold is the test set (cv5 and <corpus>_cv5)")
    split_seed: Seed = setting(1, "seed of the random train/valid/test split")
    folds_file: Optional[Name] = setting(None, "CSV session,fold (null: session s -> fold (s-1) % 5)")
    silent_audio: SilentAudio = setting("keep", "recordings without signal train and score (keep), or "
                                                "are left out (drop)")


class Features(Section):
    backend: FeatureBackend = setting("torch", "torch (batched, GPU-capable) | librosa (faithful reference)",
                                      stored=True)
    sample_rate: SampleRate = setting(16000, "audio resampled to this rate (Hz; both corpora are 16 kHz)",
                                      stored=True, model_input=True)
    n_mels: Mels = setting(
        128, "mel bins (divisible by 4: two stride-2 convolutions)", stored=True, model_input=True)
    n_fft: Whole = setting(2048, "FFT size (samples)", stored=True, model_input=True)
    hop_length: Whole = setting(512, "hop between frames (samples)", stored=True, model_input=True)
    fmin: NonNegative = setting(100, "lowest mel frequency (Hz; below fmax)", stored=True, model_input=True)
    fmax: Positive = setting(8000, "highest mel frequency (Hz; sample_rate / 2 at most)", stored=True,
                             model_input=True)
    top_db: Positive = setting(80, "dynamic range kept below the peak (dB)", stored=True, model_input=True)
    delta_width: OddWidth = setting(9, "window of the delta features (frames)", stored=True, model_input=True)
    max_frames: Whole = setting(512, "frames per utterance (longer cut, shorter padded)", stored=True,
                                model_input=True)
    store_dtype: StoreDtype = setting("float32", "dtype of the stored feature arrays (paper.yaml: float16)",
                                      stored=True)

    @model_validator(mode="after")
    def _mel_range(self, info: ValidationInfo) -> "Features":
        if self.fmax > self.sample_rate / 2:
            refuse(info, "fmax", self.fmax, f"<= sample_rate / 2 = {self.sample_rate / 2:g}")
        elif self.fmin >= self.fmax:
            refuse(info, "fmin", self.fmin, f"below fmax ({self.fmax:g})")
        return self


class Augment(Section):
    enabled: bool = setting(False, "augment the minority classes of the training set "
                                   "(absent: off, as the training code read it)")
    minority_classes: Emotions = setting(
        ["surprise", "angry", "sad"], "classes that get augmented copies")
    text_ratio: Share = setting(0.3, "share of words swapped or deleted in the text augmentations")
    freq_mask_max_start: Optional[Whole] = setting(None, "highest first bin of the frequency mask (null: n_mels)")
    freq_mask_width: WidthRange = setting([10, 30], "frequency mask width range [low, high) (bins)")
    freq_mask_db_range: DbRange = setting([-80.0, 0.0], "range of the mask's noise (dB)")
    seed: Seed = setting(824, "augmentation seed (reset per call unless fixes.seed_per_sample)")


class Standin(Section):
    vocab_size: Whole = setting(8002, "vocabulary of the locally trained KoBERT stand-in (raised to "
                                      "one piece per character when the texts have more)")
    hidden_size: Whole = setting(768, "width of its states (must equal models.text.input_dim)")
    num_layers: Whole = setting(2, "transformer layers")
    num_heads: Whole = setting(12, "attention heads (dividing hidden_size)")
    intermediate_size: Optional[Whole] = setting(None, "feed-forward width (null: 4 x hidden_size)")
    seed: Seed = setting(0, "seed of its random weights")

    @model_validator(mode="after")
    def _heads_divide(self, info: ValidationInfo) -> "Standin":
        if self.hidden_size % self.num_heads:
            refuse(info, "num_heads", self.num_heads, f"a divisor of hidden_size ({self.hidden_size})")
        return self


class Text(Section):
    tokenizer: Name = setting("skt/kobert-base-v1", "hub id, local directory, or standin")
    encoder: Name = setting("skt/kobert-base-v1", "hub id, local directory, or standin")
    tokenizer_kind: Optional[TokenizerKind] = setting(
        None, "kobert | auto: overrides the tokenizer guess (null: guessed)")
    max_length: AtLeast2 = setting(64, "tokens per utterance ([CLS] and [SEP] included)")
    encode_batch_size: Whole = setting(64, "utterances per text-encoder pass when caching states",
                                       affects_results=False)
    standin: Optional[Standin] = setting(None, "sizes of the KoBERT stand-in (text.encoder: standin)")


class SpeechEncoderSettings(Section):
    name: Optional[Name] = setting(None, "hub id or local directory of a wav2vec2/HuBERT/WavLM model")
    layers: Layers = setting([-1], "hidden_states indices mixed (negative: from the last)")
    pooling: Pooling = setting("weighted", "weighted (learned softmax weights) | mean")
    input_dim: Optional[Whole] = setting(None, "encoder state width (null: models.d_model)")
    max_frames: Optional[Whole] = setting(None, "encoder frames per utterance (null: features.max_frames)")
    batch_size: Whole = setting(8, "utterances per encoder pass when caching states",
                                affects_results=False)


class AudioModel(Section):
    frontend: Optional[Frontend] = setting("mel", "mel (the paper) | encoder (a pretrained speech encoder)")
    encoder: Optional[SpeechEncoderSettings] = setting(None, "the speech encoder (frontend: encoder)")
    conv_channels: Annotated[list[Whole], Len(2, 2)] = setting([8, 24], "channels of the two convolutions")
    n_layers: Whole = setting(7, "attention layers")
    num_heads: Whole = setting(6, "attention heads")
    inner_dim: Whole = setting(1024, "feed-forward width")
    dropout: Dropout = setting(0.1, "dropout")
    rnn_hidden: Whole = setting(64, "GRU width")

    @model_validator(mode="after")
    def _encoder_named(self, info: ValidationInfo) -> "AudioModel":
        if self.frontend == "encoder" and not (self.encoder and self.encoder.name):
            refuse(info, "encoder.name", None, "the hub id or local directory of a "
                   "wav2vec2/HuBERT/WavLM model (frontend: encoder)")
        return self


class TextModel(Section):
    input_dim: Optional[Whole] = setting(None, "encoder state width (null: models.d_model)")
    n_layers: Whole = setting(5, "attention layers")
    num_heads: Whole = setting(6, "attention heads")
    inner_dim: Whole = setting(1024, "feed-forward width")
    dropout: Dropout = setting(0.1, "dropout")
    rnn_hidden: Whole = setting(64, "GRU width")


class MultimodalModel(Section):
    n_layers: Whole = setting(4, "attention layers")
    num_heads: Whole = setting(6, "attention heads")
    inner_dim: Whole = setting(3072, "feed-forward width")
    dropout: Dropout = setting(0.1, "dropout")
    rnn_hidden: Whole = setting(128, "LSTM width")
    reuse_audio_num_heads: Whole = setting(4, "heads of the audio model rebuilt inside the classifier "
                                              "(the original: 4; fixes.consistent_heads: audio's own)")


class FusionModel(Section):
    tensor_dim: Whole = setting(32, "width each side is projected to before tensor fusion")


class Models(Section):
    d_model: Whole = setting(768, "model width (audio: conv_channels[-1] * n_mels / 4)")
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
    epochs: Whole = setting(20, "epoch budget")
    batch_size: Whole = setting(32, "batch size")
    lr: Positive = setting(2.0e-5, "Adam learning rate")
    gamma: Decay = setting(0.8, "exponential learning-rate decay per epoch")
    patience: Optional[Whole] = setting(None, "early stop after this many epochs without improvement (null: none)")


class MultimodalStage(TrainStage):
    class_weights: Union[bool, Literal["balanced"], list[Positive]] = setting(
        False, "false | true or balanced (inverse class frequency) | one weight per class")
    cache_frozen: bool = setting(True, "cache the frozen regressors' outputs once per run", affects_results=False)
    target: Target = setting("hard", "train on the total label (hard, the paper) or on the raters' label "
                                     "distribution (soft); scored on the total label either way")


CompileSetting = Union[bool, CompileMode]


class Train(Section):
    device: Device = setting("auto", "auto | cpu | cuda | cuda:N | mps", affects_results=False)
    precision: Precision = setting("fp32", "fp32 gives the faithful numbers", affects_results=False)
    num_workers: Count = setting(0, "DataLoader worker processes", affects_results=False)
    compile: Union[CompileSetting, dict[Stage, CompileSetting]] = setting(
        False, "torch.compile: false | true | a mode | {stage: one of those}; falls back with a "
               "note where compile is unavailable", affects_results=False)
    tf32: bool = setting(False, "TF32 matmul and cuDNN on CUDA (no effect on a CPU)", affects_results=False)
    trim_padding: Literal["auto", False] = setting(
        "auto", "auto: cut each batch to its longest valid length where that provably changes "
                "nothing (masked padding, no dropout drawn)", affects_results=False)
    tensorboard: bool = setting(False, "TensorBoard scalars in <run dir>/tensorboard/", affects_results=False)
    resident: Union[bool, Literal["auto"]] = setting(
        "auto", "auto | true | false: inputs copied once onto the device", affects_results=False)
    background_writes: bool = setting(True, "checkpoints written by a background thread", affects_results=False)
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
    language: Name = setting("korean", "language Whisper transcribes")
    task: Literal["transcribe", "translate"] = setting("transcribe", "Whisper task")
    device: Device = setting("auto", "auto: the predictor's device", affects_results=False)
    batch_size: Whole = setting(8, "utterances per generate() call", affects_results=False)
    max_new_tokens: Whole = setting(128, "longest transcript (tokens)")
    num_beams: Whole = setting(1, "beam search width (1: greedy)")


class Vad(Section):
    threshold: Probability = setting(0.5, "speech probability that opens an utterance")
    neg_threshold: Optional[Probability] = setting(
        None, "probability that closes it, at most threshold (null: threshold - 0.15)")
    min_speech_s: NonNegative = setting(0.25, "shorter bursts are dropped (s)")
    min_silence_s: NonNegative = setting(0.3, "shorter pauses do not split an utterance (s)")
    speech_pad_s: NonNegative = setting(0.03, "added on both sides of an utterance (s)")
    max_speech_s: Annotated[StrictFloat, Gt(0), Le(30)] = setting(
        25.0, "longer speech is split (s; Whisper reads 30 s at most)")

    @model_validator(mode="after")
    def _closes_below_opening(self, info: ValidationInfo) -> "Vad":
        if self.neg_threshold is not None and self.neg_threshold > self.threshold:
            refuse(info, "neg_threshold", self.neg_threshold, f"<= threshold ({self.threshold:g})")
        return self


class Segments(Section):
    unread_by_training = True
    block_s: Positive = setting(30.0, "seconds read from the file at a time", affects_results=False)
    batch_utterances: Whole = setting(16, "utterances transcribed and scored per pass", affects_results=False)
    vad: Vad = setting({}, "Silero VAD settings")


class Biosignals(Section):
    unread_by_training = True
    signals: Signals = setting(["TEMP", "EDA"], "wrist signals analysed")
    # Sized so the tiny test corpus runs in seconds and full KEMDy20 in minutes: DTW k-means and
    # the DTW silhouette are O(n^2 * L^2); 24 steps = 6 s at 4 Hz, the mean utterance length.
    k: AtLeast2 = setting(5, "clusters of the reported DTW k-means")
    ks: Annotated[list[AtLeast2], MinLen(1)] = setting(list(range(2, 11)), "ks of the silhouette sweep")
    max_series: AtLeast2 = setting(600, "series clustered (stratified sample; DTW is O(n^2))")
    series_length: AtLeast2 = setting(24, "each series resampled to this many steps")
    alpha: Probability = setting(0.05, "significance level")
    n_jobs: Jobs = setting(1, "ks fitted in parallel threads (-1: every core)", affects_results=False)


class Ablation(Section):
    audio_layers: list[Whole] = setting([3, 4, 5, 6, 7], "audio n_layers of the layer ablation")
    text_layers: list[Whole] = setting([3, 4, 5, 6, 7], "text n_layers of the layer ablation")
    combos: list[Annotated[list[Whole], Len(2, 2)]] = setting([[6, 6], [7, 6], [7, 5]], "[audio, text] depths")


class FusionStudy(Section):
    kinds: list[FusionKind] = setting([], "classifier kinds compared")
    protocol: Protocol = setting("cv5", "split protocol of the study")
    variant: Variant = setting("corrected", "faithful | corrected")
    seeds: Optional[list[Seed]] = setting(None, "seeds (null: reproduce.seeds / cv5_seeds)")


class CrossCorpusStudy(Section):
    kinds: Optional[list[FusionKind]] = setting(None, "classifier kinds compared (null: the fusion study's)")
    variant: Variant = setting("corrected", "faithful | corrected")
    seeds: Optional[list[Seed]] = setting(None, "seeds (null: reproduce.cv5_seeds / seeds)")


class Reproduce(Section):
    unread_by_training = True
    parallel_runs: Whole = setting(1, "runs trained at once (worker processes)", affects_results=False)
    runs_per_device: Union[Literal["auto"], Whole] = setting(
        "auto", "runs trained at once per device: auto (as many as fit a GPU's free memory; "
                "on a CPU, parallel_runs) | N", affects_results=False)
    protocols: list[Protocol] = setting(["paper", "cv5"], "protocols of the main runs")
    variants: list[Variant] = setting(["faithful", "corrected"], "faithful | corrected (every fix on)")
    seeds: Annotated[list[Seed], MinLen(1)] = setting([1, 2, 3], "seeds of the main runs")
    cv5_seeds: Optional[Annotated[list[Seed], MinLen(1)]] = setting(None, "seeds of the session folds "
                                                                          "(null: seeds)")
    folds: Optional[list[Fold]] = setting(None, "cv5 folds run (null: all five)")
    ablation: Ablation = setting({}, "layer ablation and depth combinations")
    frontends: list[Name] = setting([], "other configs whose fusion study 5-2 puts beside this one's")
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


class Config(Section):
    """A whole experiment (top level). `base:` is resolved by koemo.config.load."""
    name: RunName = setting("paper", "experiment name (default: the config file's stem); names run "
                                     "directories", affects_results=False)
    seed: Seed = setting(1, "default training seed")
    regressor_runs: Optional[dict[RegressorStage, Name]] = setting(
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



def label_classes(policy: LabelPolicy, configured: Sequence[str] | None = None) -> tuple[str, ...]:
    """The classes of a label policy in label-id order: all seven emotions under `seven`,
    else data.classes (when set) or the paper's five."""
    if policy == "seven":
        return SEVEN_CLASSES
    return tuple(configured) if configured else PAPER_CLASSES


# ----------------------------------------------------------------------------- derived lists

def not_results_sections() -> tuple[str, ...]:
    """Top-level keys that never make two runs different: names and unread sections."""
    return speed_settings(Config) + unread_sections()


def unread_sections() -> tuple[str, ...]:
    """Top-level sections no training stage reads."""
    return tuple(k for k, f in Config.model_fields.items()
                 if (section := _section_type(f.annotation)) is not None
                 and section.unread_by_training)


def feature_keys(*, model_input_only: bool = False) -> tuple[str, ...]:
    """features.* that shape the stored arrays; `model_input_only`: those that change the
    numbers the models see (not the backend, which agrees within tolerance, nor the dtype)."""
    flag = "model_input" if model_input_only else "stored"
    return tuple(k for k in Features.model_fields if field_marks(Features, k).get(flag))
