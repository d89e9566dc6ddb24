"""A synthetic corpus in KEMDy20's exact on-disk format (see docs/kemdy20.md).

    ROOT/annotation/SessNN_eval.csv
    ROOT/wav/SessionNN/SessNN_scriptMM_UserNNNG_KKK.wav + .txt
    ROOT/EDA|TEMP|IBI/SessionNN/SessNN_scriptMM_UserNNNG.csv

Emotion design. Each utterance has a class with an (arousal, valence) target:
neutral (3.0, 3.0), sad (2.2, 2.3), happy (3.9, 4.0), angry (3.9, 2.1), surprise (3.9, 3.0)
(+ rare disgust (3.3, 1.9) and fear (3.6, 2.0)). Audio carries only arousal (speech.py),
text only valence (sentences.py): audio cannot tell happy/angry/surprise apart, text cannot
tell neutral/surprise or sad/angry apart, the two together identify all five classes.

Ratings. Ten raters vote per utterance. A clear utterance gets 6-10 votes for its class, the
rest for a confusable class (neutral for every emotion; happy/sad/angry/surprise for neutral).
About 5% of utterances are ambiguous and get a tied vote (5-5, or 3-3-3-1), so ties such as
`happy;neutral` or `angry;neutral;disqust` arise from the counting rule, never written in
by hand. Each rater's valence/arousal vote = round(target of the label THEY chose + utterance
deviation N(0, 0.3) + rater bias N(0, 0.2) + N(0, 0.45)), clipped to 1-5. Totals follow the spec:
the mean of the ten integer votes (an exact multiple of 0.1, so "rounded to 1 decimal" is
exact), and every most-voted label joined by `;` in the order happy, angry, neutral, sad,
surprise, disqust, fear (the order of the spec's examples), with disgust spelled `disqust` in
the total column only. The audio follows the TOTAL arousal and the text the TOTAL valence, i.e.
the targets the regressors learn.

Class balance. Per session, class counts come from cumulative rounding of probs x utterances
(so corpus totals track the probabilities); the five paper classes with probability >= 0.03 get
at least MIN_PER_SESSION single-label utterances in EVERY session, so every speaker-independent
split sees them. The most probable class absorbs the difference. Ambiguous (tied) utterances are
never taken from those guaranteed ones.

Timing. Within a script the two speakers alternate in turns of 1-3 utterances, separated by
0.3-3 s. start/end are multiples of 0.0005 s (8 samples at 16 kHz), written with at most four
decimals, so the wav has exactly round((end - start) * 16000) samples. Durations are log-normal
with the given mean, clipped to `duration_range`.

Recordings without signal (`silent_recordings` per session, off by default): real KEMDy20 holds
wavs of pure digital silence, mostly under single-class labels. Each session replaces the audio
of that many single-label neutral utterances, cycling through three kinds: digital silence
(every sample 0), near-silence (+-1 LSB of noise: a real, very quiet signal that must stay
usable) and a constant value (DC only). Annotations and transcripts are unchanged.

Quirk: only when session 17 exists, the Segment IDs of its script06 rows in Sess17_eval.csv read
`Sess42_...` (the wav/txt files and bio-signal rows keep `Sess17_...`); the file name gives the
session. Real-file faults (a stray comma, UTF-8 transcripts, an 8-bit wav, ...) are planted on
request afterwards, by koemo.synth.faults. Everything is seeded from (seed, session, ...) so a session's bytes do not depend on
how many sessions are written; the same arguments always give the same bytes.
"""
from __future__ import annotations

import io
import json
import multiprocessing
from multiprocessing.context import BaseContext
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from koemo.config.load import parse_section
from koemo.config.section import Section
from koemo.config.schema import PAPER_CLASSES, SAMPLE_RATE
from koemo.config.synthetic import DURATION_RANGE, Synthetic
from koemo.dataset.labels import SPELLING_FIXES
from koemo.errors import KoemoInputError
from koemo.synth import sentences, speech
from koemo.synth.biosignals import Recording, validate_effects, write_biosignals
from koemo.synth.faults import parse_faults, plant_faults

N_SCRIPTS = 6
N_RATERS = 10
TIME_GRID_S = 0.0005            # 8 samples: start/end exact with 4 decimals
MIN_PER_SESSION = 2
GUARANTEED_SHARE = 0.03
TIE_RATE = 0.05
QUIRK_SESSION, QUIRK_PREFIX, QUIRK_SCRIPT = 17, "Sess42", 6
# Bump whenever the same arguments start giving other bytes: a corpus written by an older
# generator is then rewritten instead of reused (koemo.reporting.notebook.ensure_synthetic_corpus).
GENERATOR_VERSION = 3

CLASS_TARGETS = {  # (arousal, valence)
    "neutral": (3.0, 3.0), "sad": (2.2, 2.3), "happy": (3.9, 4.0), "angry": (3.9, 2.1),
    "surprise": (3.9, 3.0), "disgust": (3.3, 1.9), "fear": (3.6, 2.0),
}
DEFAULT_CLASS_PROBS = {"neutral": 0.64, "happy": 0.14, "surprise": 0.07, "angry": 0.07, "sad": 0.06,
                       "disgust": 0.012, "fear": 0.008}
TOTAL_ORDER = ("happy", "angry", "neutral", "sad", "surprise", "disgust", "fear")
TOTAL_SPELLING = {right: wrong for wrong, right in SPELLING_FIXES.items()}   # disgust -> disqust
# Whom raters confuse a class with; equal for happy/angry/surprise so audio cannot separate them.
CONFUSION = {
    "neutral": {"happy": 0.4, "surprise": 0.25, "sad": 0.2, "angry": 0.15},
    "sad": {"neutral": 1.0}, "happy": {"neutral": 1.0}, "angry": {"neutral": 1.0},
    "surprise": {"neutral": 1.0}, "disgust": {"angry": 0.5, "neutral": 0.5},
    "fear": {"sad": 0.5, "neutral": 0.5},
}
# Tie partners: which labels an ambiguous utterance is split between.
TIE_PARTNERS = {
    "neutral": {"happy": 0.5, "surprise": 0.2, "sad": 0.15, "angry": 0.15},
    "happy": {"neutral": 0.75, "surprise": 0.25}, "sad": {"neutral": 1.0},
    "angry": {"neutral": 1.0}, "surprise": {"neutral": 0.6, "happy": 0.4},
    "disgust": {"angry": 0.5, "neutral": 0.5}, "fear": {"sad": 0.5, "neutral": 0.5},
}
THIRD_IN_THREE_WAY_TIE = ("disgust", "fear", "surprise", "sad")
SESSION_DAY0 = datetime(2020, 7, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))


@dataclass
class Utterance:
    session: int
    script: int
    speaker: str
    utt_index: int
    start_units: int             # multiples of TIME_GRID_S on the script clock
    n_units: int
    emotion: str                 # the generating class
    rater_labels: list[str]
    rater_valence: list[int]
    rater_arousal: list[int]
    text: str = ""
    eol: str = "\n"

    @property
    def segment_id(self) -> str:
        return f"Sess{self.session:02d}_script{self.script:02d}_{self.speaker}_{self.utt_index:03d}"

    @property
    def csv_segment_id(self) -> str:
        if self.session == QUIRK_SESSION and self.script == QUIRK_SCRIPT:
            return QUIRK_PREFIX + self.segment_id[len("SessNN"):]
        return self.segment_id

    @property
    def start(self) -> float:
        return self.start_units * TIME_GRID_S

    @property
    def end(self) -> float:
        return (self.start_units + self.n_units) * TIME_GRID_S

    @property
    def n_samples(self) -> int:
        return int(round(self.n_units * TIME_GRID_S * SAMPLE_RATE))

    @property
    def total_valence(self) -> float:
        return sum(self.rater_valence) / N_RATERS

    @property
    def total_arousal(self) -> float:
        return sum(self.rater_arousal) / N_RATERS

    @property
    def total_emotion(self) -> str:
        return total_emotion(self.rater_labels)


@dataclass
class SessionPlan:
    session: int
    speakers: tuple[str, str]
    rater_ids: list[str]
    utterances: list[Utterance]
    script_durations: dict[int, float]
    script_unix_zero: dict[int, float]
    voices: dict[str, speech.Voice] = field(default_factory=dict)


def total_emotion(labels: list[str]) -> str:
    """Every label tied for most votes, in TOTAL_ORDER, joined by ';' (disgust -> disqust)."""
    counts = {label: labels.count(label) for label in set(labels)}
    top = max(counts.values())
    winners = [label for label in TOTAL_ORDER if counts.get(label, 0) == top]
    return ";".join(TOTAL_SPELLING.get(label, label) for label in winners)


def format_seconds(value: float) -> str:
    """At most four decimals, no trailing zeros (KEMDy20 writes e.g. 3.5783901, 42.97039)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def format_total(value: float) -> str:
    """One decimal, integers without it (KEMDy20 writes 3.4 and 3)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def normalise_class_probs(class_probs: dict | None) -> dict[str, float]:
    probs = dict(DEFAULT_CLASS_PROBS if class_probs is None else class_probs)
    unknown = sorted(set(probs) - set(CLASS_TARGETS))
    if unknown:
        raise KoemoInputError(f"class_probs: unknown classes {unknown} (known: {sorted(CLASS_TARGETS)})")
    if any(p < 0 for p in probs.values()) or sum(probs.values()) <= 0:
        raise KoemoInputError(f"class_probs: need non-negative probabilities with a positive sum, got {probs}")
    total = sum(probs.values())
    return {name: p / total for name, p in probs.items() if p > 0}


def class_counts(probs: dict[str, float], per_session: int, session: int) -> dict[str, int]:
    """How many utterances of each class session `session` gets (see module docstring)."""
    counts = {}
    for name, p in probs.items():
        before = int(np.floor(p * per_session * (session - 1) + 0.5))
        after = int(np.floor(p * per_session * session + 0.5))
        counts[name] = after - before
        if name in PAPER_CLASSES and p >= GUARANTEED_SHARE:
            counts[name] = max(counts[name], MIN_PER_SESSION)
    largest = max(probs, key=probs.get)  # type: ignore[arg-type]  # typeshed: dict.get overloads
    counts[largest] += per_session - sum(counts.values())
    if counts[largest] < 1:
        raise KoemoInputError(
            f"utterances_per_session={per_session} is too small for the class minimums {counts}")
    return counts


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def rater_labels(emotion: str, ambiguous: bool, rng: np.random.Generator) -> list[str]:
    """Ten emotion votes: a clear majority, or a deliberate tie for ambiguous utterances."""
    if not ambiguous:
        n_true = N_RATERS - min(int(rng.binomial(N_RATERS, 0.12)), 4)
        labels = [emotion] * n_true + [_pick(rng, CONFUSION[emotion]) for _ in range(N_RATERS - n_true)]
    else:
        partner = _pick(rng, TIE_PARTNERS[emotion])
        if rng.random() < 0.85:
            labels = [emotion] * 5 + [partner] * 5
        else:
            third = next(c for c in rng.permutation(THIRD_IN_THREE_WAY_TIE) if c not in (emotion, partner))
            rest = [c for c in CLASS_TARGETS if c not in (emotion, partner, third)]
            labels = [emotion] * 3 + [partner] * 3 + [str(third)] * 3 + [rest[int(rng.integers(len(rest)))]]
    return [labels[i] for i in rng.permutation(N_RATERS)]


def rater_scores(labels: list[str], biases: np.ndarray, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Integer 1-5 valence and arousal votes around the target of each rater's chosen label."""
    deviation = rng.normal(0.0, 0.3, 2)
    targets = np.array([[CLASS_TARGETS[c][1], CLASS_TARGETS[c][0]] for c in labels])  # (valence, arousal)
    latent = targets + deviation + biases + rng.normal(0.0, 0.45, (N_RATERS, 2))
    votes = np.clip(np.rint(latent), 1, 5).astype(int)
    return votes[:, 0].tolist(), votes[:, 1].tolist()


def _durations_units(n: int, mean_s: float, bounds: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    sigma = 0.45
    seconds = np.clip(rng.lognormal(np.log(mean_s) - sigma ** 2 / 2, sigma, n), *bounds)
    return np.maximum(np.round(seconds / TIME_GRID_S), 1).astype(np.int64)


def _script_sizes(total: int, rng: np.random.Generator, n_scripts: int = N_SCRIPTS) -> list[int]:
    """Split a session's utterances over its scripts (each >= 2: both speakers speak)."""
    weights = rng.uniform(0.8, 1.2, n_scripts)
    sizes = np.maximum(np.floor(weights / weights.sum() * total).astype(int), 2)
    while sizes.sum() > total:
        sizes[int(np.argmax(sizes))] -= 1
    for k in rng.permutation(n_scripts)[: total - sizes.sum()]:
        sizes[k] += 1
    while sizes.sum() < total:  # only when total - sum exceeded 6
        sizes[int(np.argmin(sizes))] += 1
    return sizes.tolist()


def _turns(n: int, rng: np.random.Generator) -> list[int]:
    """Who speaks each utterance of a script: alternating turns of 1-3 utterances, both speak."""
    who = int(rng.integers(2))
    order: list[int] = []
    while len(order) < n:
        order += [who] * int(rng.integers(1, 4))
        who = 1 - who
    order = order[:n]
    if len(set(order)) == 1:
        order[-1] = 1 - order[-1]
    return order


def plan_session(session: int, seed: int, per_session: int, probs: dict[str, float],
                 mean_duration: float, duration_range: tuple[float, float]) -> SessionPlan:
    """Everything about one session except the waveforms and bio-signals (cheap, pure)."""
    rng = np.random.default_rng([seed, session, 0])
    genders = rng.choice(["F", "M"], 2)
    speakers = (f"User{2 * session - 1:03d}{genders[0]}", f"User{2 * session:03d}{genders[1]}")
    rater_ids = [f"Eval{r + 1:02d}{g}" for r, g in enumerate(rng.choice(["F", "M"], N_RATERS))]
    rater_bias = rng.normal(0.0, 0.2, (N_RATERS, 2))
    voices = {spk: speech.make_voice(spk[-1], rng) for spk in speakers}

    counts = class_counts(probs, per_session, session)
    classes = rng.permutation([name for name, k in counts.items() for _ in range(k)]).tolist()
    seen: dict[str, int] = {}
    ambiguous = []
    for name in classes:  # the first MIN_PER_SESSION of each guaranteed class stay single-label
        seen[name] = seen.get(name, 0) + 1
        guaranteed = name in PAPER_CLASSES and probs[name] >= GUARANTEED_SHARE and seen[name] <= MIN_PER_SESSION
        ambiguous.append(not guaranteed and rng.random() < TIE_RATE)

    utterances, durations, unix_zero = [], {}, {}
    clock = SESSION_DAY0.timestamp() + (session - 1) * 86400
    slot = 0
    for script, size in enumerate(_script_sizes(per_session, rng), start=1):
        lengths = _durations_units(size, mean_duration, duration_range, rng)
        cursor = int(round(rng.uniform(1.0, 12.0) / TIME_GRID_S))
        next_index = [1, 1]
        for who, n_units in zip(_turns(size, rng), lengths):
            labels = rater_labels(classes[slot], ambiguous[slot], rng)
            valence, arousal = rater_scores(labels, rater_bias, rng)
            utt = Utterance(session, script, speakers[who], next_index[who], cursor, int(n_units),
                            classes[slot], labels, valence, arousal)
            # Own stream: retuning the sentence generator leaves labels, timing and audio alone.
            text_rng = np.random.default_rng([seed, session, 2, slot])
            utt.text = sentences.with_long_tail(
                sentences.transcript(utt.total_valence, text_rng), text_rng)
            utt.eol = "\r\n" if rng.random() < 0.3 else "\n"
            utterances.append(utt)
            next_index[who] += 1
            slot += 1
            cursor += int(n_units) + int(round(rng.uniform(0.3, 3.0) / TIME_GRID_S))
        durations[script] = cursor * TIME_GRID_S
        unix_zero[script] = clock
        clock += durations[script] + 120.0
    return SessionPlan(session, speakers, rater_ids, utterances, durations, unix_zero, voices)


def annotation_csv(plan: SessionPlan) -> str:
    """SessNN_eval.csv: the two header rows and one row per utterance (script, then time order)."""
    head1 = ["Numb", "WAV", " ", "Segment ID", "Total Evaluation", " ", " "]
    for rater in plan.rater_ids:
        head1 += [rater, " ", " "]
    head2 = [" ", "start", "end", " ", "Emotion", "Valence", "Arousal"] + ["Emotion", "Valence", "Arousal"] * N_RATERS
    lines = [",".join(head1), ",".join(head2)]
    for numb, utt in enumerate(plan.utterances, start=1):
        row = [str(numb), format_seconds(utt.start), format_seconds(utt.end), utt.csv_segment_id,
               utt.total_emotion, format_total(utt.total_valence), format_total(utt.total_arousal)]
        for label, val, aro in zip(utt.rater_labels, utt.rater_valence, utt.rater_arousal):
            row += [label, str(val), str(aro)]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def _recordings(plan: SessionPlan) -> list[Recording]:
    recs = []
    for script in sorted(plan.script_durations):
        for spk in plan.speakers:
            segments = [(u.segment_id, u.start, u.end, u.total_arousal)
                        for u in plan.utterances if u.script == script and u.speaker == spk]
            recs.append(Recording(plan.session, script, spk, plan.script_unix_zero[script],
                                  plan.script_durations[script], segments))
    return recs


def wav_bytes(wave: np.ndarray) -> bytes:
    """16 kHz mono PCM16 WAV (plain 44-byte header) as bytes. Encoding in memory and writing
    once is ~7x faster than letting libsndfile write to the file on a busy disk."""
    buffer = io.BytesIO()
    sf.write(buffer, speech.to_pcm16(wave), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


NO_SIGNAL_KINDS = ("silent", "near_silent", "constant")
CONSTANT_LEVEL = 0.01          # the DC value of a "constant" recording (328 in 16-bit PCM)


def no_signal_plan(plan: SessionPlan, seed: int, count: int) -> dict[int, str]:
    """Utterance index -> kind of planted recording without signal (see module docstring)."""
    candidates = [k for k, u in enumerate(plan.utterances) if u.total_emotion == "neutral"]
    rng = np.random.default_rng([seed, plan.session, 3])
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    return {int(k): NO_SIGNAL_KINDS[(plan.session - 1 + i) % len(NO_SIGNAL_KINDS)]
            for i, k in enumerate(sorted(chosen))}


def no_signal_wave(kind: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "silent":
        return np.zeros(n_samples)
    if kind == "near_silent":
        return rng.integers(-1, 2, n_samples) / 32768.0
    return np.full(n_samples, CONSTANT_LEVEL)


def write_session(root: Path, plan: SessionPlan, seed: int, biosignal_effects: dict | None,
                  silent_recordings: int = 0) -> None:
    """Write one session's annotation CSV, wav + txt files and bio-signal files."""
    (root / "annotation").mkdir(parents=True, exist_ok=True)
    (root / "annotation" / f"Sess{plan.session:02d}_eval.csv").write_bytes(annotation_csv(plan).encode("utf-8"))
    wav_dir = root / "wav" / f"Session{plan.session:02d}"
    wav_dir.mkdir(parents=True, exist_ok=True)
    planted = no_signal_plan(plan, seed, silent_recordings) if silent_recordings else {}
    for k, utt in enumerate(plan.utterances):
        rng = np.random.default_rng([seed, plan.session, 1, k])
        if k in planted:
            wave = no_signal_wave(planted[k], utt.n_samples, rng)
        else:
            wave = speech.synthesize(utt.n_samples, utt.total_arousal, plan.voices[utt.speaker], rng)
        (wav_dir / f"{utt.segment_id}.wav").write_bytes(wav_bytes(wave))
        (wav_dir / f"{utt.segment_id}.txt").write_bytes((utt.text + utt.eol).encode("cp949"))
    speaker_index = {spk: i for i, spk in enumerate(plan.speakers)}
    write_biosignals(root, _recordings(plan), speaker_index, seed, biosignal_effects)


def _build_session(args: tuple) -> int:
    root, session, seed, per_session, probs, mean_duration, duration_range, effects, silent = args
    plan = plan_session(session, seed, per_session, probs, mean_duration, duration_range)
    write_session(root, plan, seed, effects, silent)
    return len(plan.utterances)


def _worker_context() -> BaseContext:
    """fork on Linux: spawn would re-run a caller's unguarded script (`python my_script.py`
    without `if __name__ == "__main__"`) in every worker. The workers only use numpy/scipy,
    never threads inherited from the parent (torch, BLAS), so forking is safe here."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _check_args(out: Path, recipe: type[Section], path: str, counts: dict, mean_duration: float,
                duration_range: tuple[float, ...], overwrite: bool) -> None:
    """The recipe's counts (sessions, utterances per session, ...) against the schema's section
    for it (`recipe` at config path `path`: its bounds are written there once), the durations
    against `duration_range`, and the output folder; all before anything is written."""
    parse_section(recipe, counts, path)
    low, high = duration_range
    if not 0.2 <= low <= mean_duration <= high:
        raise KoemoInputError(f"durations: need 0.2 <= min <= mean <= max, got mean {mean_duration}, "
                              f"range {duration_range}")
    if out.exists() and not out.is_dir():
        raise KoemoInputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise KoemoInputError(f"{out}: directory is not empty (pass overwrite=True / --overwrite to replace it)")


def write_corpus(out: Path, sessions: int = 4, seed: int = 0, utterances_per_session: int = 80,
                 class_probs: dict | None = None, biosignal_effects: dict | None = None, *,
                 mean_duration: float = 3.5, duration_range: tuple[float, float] = DURATION_RANGE,
                 silent_recordings: int = 0, workers: int = 1, overwrite: bool = False,
                 faults: str | list[str] | tuple[str, ...] = ()) -> Path:
    """Write a synthetic KEMDy20-format corpus with `sessions` sessions under `out`; returns `out`.

    class_probs: class -> share of utterances (any of CLASS_TARGETS; normalised; default
        DEFAULT_CLASS_PROBS). biosignal_effects: how strongly EDA/TEMP/IBI follow arousal
        (default {"EDA": 1.0, "TEMP": 0.0, "IBI": 0.0}; see biosignals.py for the rule).
    mean_duration, duration_range: utterance length in seconds (log-normal, clipped).
    silent_recordings: per session, how many neutral utterances get a recording without signal
        (digital silence, near-silence, a constant; see the module docstring). 0 = none.
    faults: real-file faults planted afterwards into session 1 (koemo.synth.faults: names,
        comma-separated or a list, or "all"); none by default.
    workers > 1 writes sessions in parallel processes. overwrite replaces an existing corpus;
    otherwise a non-empty `out` is refused. Deterministic: the same arguments give the same
    bytes, whatever `workers` is. Bad arguments raise KoemoInputError.
    """
    out = Path(out)
    counts = {"sessions": sessions, "seed": seed, "utterances_per_session": utterances_per_session,
              "silent_recordings": silent_recordings}
    _check_args(out, Synthetic, "synthetic", counts, mean_duration, tuple(duration_range), overwrite)
    probs = normalise_class_probs(class_probs)
    fault_names = parse_faults(faults)
    try:
        effects = validate_effects(biosignal_effects)
    except ValueError as err:
        raise KoemoInputError(str(err)) from err
    if overwrite:
        for sub in ("annotation", "wav", "EDA", "TEMP", "IBI"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out, s, seed, utterances_per_session, probs, mean_duration, tuple(duration_range),
             effects, int(silent_recordings)) for s in range(1, sessions + 1)]
    workers = max(1, min(int(workers), len(jobs), os.cpu_count() or 1))
    if workers == 1:
        for job in jobs:
            _build_session(job)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context()) as pool:
            list(pool.map(_build_session, jobs))
    _mark_synthetic(out, sessions=sessions, seed=seed, utterances_per_session=utterances_per_session)
    plant_faults(out, fault_names)
    return out


SYNTHETIC_MARK = "koemo-synthetic.json"


def _mark_synthetic(out: Path, **arguments: object) -> None:
    """A mark at the corpus root: predictors trained on it say they are (koemo.inference.provenance).
    Outside annotation/ and wav/, so the prepare fingerprint does not see it."""
    mark = {"format": "koemo-synthetic/1", "generator_version": GENERATOR_VERSION, **arguments}
    (out / SYNTHETIC_MARK).write_text(json.dumps(mark, sort_keys=True) + "\n", encoding="utf-8")
