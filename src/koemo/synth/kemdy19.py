"""A synthetic corpus in KEMDy19's exact on-disk format (see docs/kemdy19.md).

    ROOT/annotation/SessionNN_F_res.csv, SessionNN_M_res.csv   (two rating files per session)
    ROOT/wav/SessionNN/SessNN_<dialogue>/SessNN_<dialogue>_<F|M>KKK.wav + .txt

Each session has one female (F) and one male (M) actor and ten dialogues, impro01-04 and
script01-06. Every utterance carries two emotions: its speaker's own (what the audio and text
follow, as in corpus.py) and the listener's at that moment (the speaker's with probability
LISTENER_SAME, else drawn from the class shares). Ten raters vote on each, with corpus.py's
rules; F_res holds the votes on the female actor's emotion for every utterance, M_res on the
male's, so the two files' labels differ wherever the listener's emotion differs from the
speaker's. Totals spell disgust correctly, as KEMDy19 does.

Transcripts are UTF-8, a quarter end with CRLF, with KEMDy19's extra markers (`o/`, `s/`, `N/`)
and some `(spelling)/(pronunciation)` pairs. The first line of every scripted dialogue is the
same in all sessions (the script's line), so repeated transcripts appear across sessions.

Quirks planted in session QUIRK_SESSION when it exists: `SessionNN_M_res.csv` writes the first
F row that a M row follows twice, and the M row is missing there; the last M utterance of
impro02 skips a number (the annotation and wav say M<k+1>) and its transcript is named M<k>.
Deterministic: seeded from (seed, session, ...); the same arguments give the same bytes.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from koemo.config.synthetic import DURATION_RANGE, SyntheticKemdy19
from koemo.synth import corpus, sentences, speech

DIALOGUES = tuple([("impro", k) for k in range(1, 5)] + [("script", k) for k in range(1, 7)])
# KEMDy19's class shares (own-speaker labels, single-label rows): far less skewed than KEMDy20.
DEFAULT_CLASS_PROBS = {"neutral": 0.41, "angry": 0.19, "happy": 0.15, "surprise": 0.10,
                       "sad": 0.09, "fear": 0.05, "disgust": 0.02}
LISTENER_SAME = 0.4
CRLF_SHARE = 0.25
QUIRK_SESSION = 1
QUIRK_MISNAMED_DIALOGUE = ("impro", 2)
HEADER1 = (["Numb", "Wav", "", "ECG", "", "E4-EDA", "", "E4-TEMP", "", "Segment ID",
            "Total Evaluation", "", ""])
HEADER2 = ["", "start", "end", "start", "end", "start", "end", "start", "end", "",
           "Emotion", "Valence", "Arousal"] + ["Emotion", "Valence", "Arousal"] * corpus.N_RATERS


@dataclass
class Rating:
    labels: list[str]
    valence: list[int]
    arousal: list[int]

    @property
    def total_valence(self) -> float:
        return sum(self.valence) / corpus.N_RATERS

    @property
    def total_arousal(self) -> float:
        return sum(self.arousal) / corpus.N_RATERS

    def cells(self) -> list[str]:
        total = corpus.total_emotion(self.labels).replace("disqust", "disgust")
        row = [total, corpus.format_total(self.total_valence),
               corpus.format_total(self.total_arousal)]
        for label, val, aro in zip(self.labels, self.valence, self.arousal):
            row += [label, str(val), str(aro)]
        return row


@dataclass
class Utterance:
    session: int
    dialogue: tuple[str, int]
    gender: str
    utt_index: int
    start_units: int
    n_units: int
    own: Rating
    listener: Rating
    text: str = ""
    eol: str = "\n"
    first_line: bool = False     # the dialogue's first utterance
    txt_index: int = 0           # the number in the transcript's file name (0: utt_index)

    @property
    def folder(self) -> str:
        kind, number = self.dialogue
        return f"Sess{self.session:02d}_{kind}{number:02d}"

    @property
    def segment_id(self) -> str:
        return f"{self.folder}_{self.gender}{self.utt_index:03d}"

    @property
    def txt_name(self) -> str:
        return f"{self.folder}_{self.gender}{(self.txt_index or self.utt_index):03d}.txt"

    def rating_of(self, actor: str) -> Rating:
        """The votes on `actor`'s emotion during this utterance."""
        return self.own if actor == self.gender else self.listener


def _rating(emotion: str, ambiguous: bool, biases: np.ndarray, rng: np.random.Generator) -> Rating:
    labels = corpus.rater_labels(emotion, ambiguous, rng)
    valence, arousal = corpus.rater_scores(labels, biases, rng)
    return Rating(labels, valence, arousal)


def _transcript(utt: Utterance, seed: int, slot: int) -> str:
    """Own valence in the words; a scripted dialogue's first line is the script's, in every
    session; KEMDy19's extra markers and (spelling)/(pronunciation) pairs now and then; the long
    tail's names, things and numbers last (sentences.with_long_tail)."""
    kind, number = utt.dialogue
    if kind == "script" and utt.first_line:
        rng = np.random.default_rng([seed, 19, number])
        return sentences.with_long_tail(sentences.transcript(3.0, rng), rng)
    rng = np.random.default_rng([seed, utt.session, 2, slot])
    text = sentences.transcript(utt.own.total_valence, rng)
    roll = rng.random()
    if roll < 0.12:
        text = corpus._pick(rng, {"o/": 1, "s/": 1, "N/": 1}) + " " + text
    elif roll < 0.2:
        words = text.split(" ")
        plain = [i for i, w in enumerate(words) if "/" not in w]  # never a marker
        k = plain[int(rng.integers(len(plain)))]
        words[k] = f"({words[k]})/({words[k]}요)"
        text = " ".join(words)
    return sentences.with_long_tail(text, rng)


def plan_session(session: int, seed: int, per_session: int, probs: dict[str, float],
                 mean_duration: float, duration_range: tuple[float, float]) -> list[Utterance]:
    """Every utterance of one session, in dialogue then time order (cheap, pure)."""
    rng = np.random.default_rng([seed, session, 19])
    biases = {actor: rng.normal(0.0, 0.2, (corpus.N_RATERS, 2)) for actor in "FM"}
    counts = corpus.class_counts(probs, per_session, session)
    classes = rng.permutation([name for name, k in counts.items() for _ in range(k)]).tolist()
    utterances: list[Utterance] = []
    slot = 0
    for dialogue, size in zip(DIALOGUES, corpus._script_sizes(per_session, rng, len(DIALOGUES))):
        lengths = corpus._durations_units(size, mean_duration, duration_range, rng)
        cursor = int(round(rng.uniform(1.0, 12.0) / corpus.TIME_GRID_S))
        next_index = {"F": 1, "M": 1}
        for who, n_units in zip(corpus._turns(size, rng), lengths):
            gender = "FM"[who]
            emotion, ambiguous = classes[slot], rng.random() < corpus.TIE_RATE
            heard = emotion if rng.random() < LISTENER_SAME else corpus._pick(rng, probs)
            own = _rating(emotion, ambiguous, biases[gender], rng)
            listener = _rating(heard, rng.random() < corpus.TIE_RATE,
                               biases["M" if gender == "F" else "F"], rng)
            utt = Utterance(session, dialogue, gender, next_index[gender], cursor, int(n_units),
                            own, listener, first_line=not utterances or
                            utterances[-1].dialogue != dialogue)
            utt.text = _transcript(utt, seed, slot)
            utt.eol = "\r\n" if rng.random() < CRLF_SHARE else "\n"
            utterances.append(utt)
            next_index[gender] += 1
            slot += 1
            cursor += int(n_units) + int(round(rng.uniform(0.3, 3.0) / corpus.TIME_GRID_S))
    if session == QUIRK_SESSION:
        _misname_transcript(utterances)
    return utterances


def _misname_transcript(utterances: list[Utterance]) -> None:
    """The last M utterance of QUIRK_MISNAMED_DIALOGUE skips a number; its txt keeps the old one."""
    last = [u for u in utterances if u.dialogue == QUIRK_MISNAMED_DIALOGUE and u.gender == "M"][-1]
    last.txt_index = last.utt_index
    last.utt_index += 1


def annotation_csv(utterances: list[Utterance], actor: str, seed: int) -> str:
    """SessionNN_<actor>_res.csv: every utterance of both actors, rated for `actor`'s emotion."""
    rng = np.random.default_rng([seed, utterances[0].session, 5, ord(actor)])
    rows = [",".join(HEADER1 + [c for r in range(corpus.N_RATERS)
                                for c in (f"Eval{r + 1:02d}{'FM'[r % 2]}", "", "")]),
            ",".join(HEADER2)]
    listed = list(utterances)
    if actor == "M" and utterances[0].session == QUIRK_SESSION:
        k = next(i for i in range(1, len(listed))
                 if listed[i].gender == "M" and listed[i - 1].gender == "F")
        listed[k] = listed[k - 1]   # the F row written twice, the M row missing
    for numb, utt in enumerate(listed, start=1):
        bio = [f"{v:.6f}" for v in (*rng.normal(0.0, 0.3, 2), *rng.uniform(0.2, 2.0, 2),
                                    *rng.uniform(32.0, 34.0, 2))]
        cells = [str(numb), corpus.format_seconds(utt.start_units * corpus.TIME_GRID_S),
                 corpus.format_seconds((utt.start_units + utt.n_units) * corpus.TIME_GRID_S),
                 *bio, utt.segment_id, *utt.rating_of(actor).cells()]
        rows.append(",".join(cells))
    return "\n".join(rows) + "\n"


def write_session(root: Path, utterances: list[Utterance], seed: int) -> None:
    session = utterances[0].session
    (root / "annotation").mkdir(parents=True, exist_ok=True)
    for actor in "FM":
        path = root / "annotation" / f"Session{session:02d}_{actor}_res.csv"
        path.write_bytes(annotation_csv(utterances, actor, seed).encode("utf-8"))
    voices = {actor: speech.make_voice(actor, np.random.default_rng([seed, session, 6, ord(actor)]))
              for actor in "FM"}
    for k, utt in enumerate(utterances):
        folder = root / "wav" / f"Session{session:02d}" / utt.folder
        folder.mkdir(parents=True, exist_ok=True)
        n_samples = int(round(utt.n_units * corpus.TIME_GRID_S * speech.SAMPLE_RATE))
        wave = speech.synthesize(n_samples, utt.own.total_arousal, voices[utt.gender],
                                 np.random.default_rng([seed, session, 1, k]))
        (folder / f"{utt.segment_id}.wav").write_bytes(corpus.wav_bytes(wave))
        (folder / utt.txt_name).write_bytes((utt.text + utt.eol).encode("utf-8"))


def write_corpus(out: Path, sessions: int = 4, seed: int = 0, utterances_per_session: int = 60,
                 class_probs: dict | None = None, *, mean_duration: float = 3.5,
                 duration_range: tuple[float, float] = DURATION_RANGE, overwrite: bool = False) -> Path:
    """Write a synthetic KEMDy19-format corpus with `sessions` sessions under `out`; returns
    `out`. class_probs default: DEFAULT_CLASS_PROBS (KEMDy19's shares). Bad arguments raise
    KoemoInputError; a non-empty `out` is refused unless overwrite."""
    out = Path(out)
    counts = {"sessions": sessions, "seed": seed, "utterances_per_session": utterances_per_session}
    corpus._check_args(out, SyntheticKemdy19, "synthetic.kemdy19", counts, mean_duration,
                       tuple(duration_range), overwrite)
    probs = corpus.normalise_class_probs(DEFAULT_CLASS_PROBS if class_probs is None else class_probs)
    if overwrite:
        for sub in ("annotation", "wav"):
            shutil.rmtree(out / sub, ignore_errors=True)
    span = (duration_range[0], duration_range[1])       # two values: _check_args unpacked them
    for session in range(1, sessions + 1):
        plan = plan_session(session, seed, utterances_per_session, probs, mean_duration, span)
        write_session(out, plan, seed)
    return out
