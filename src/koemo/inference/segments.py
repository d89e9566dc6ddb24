"""Long recordings: cut into utterances by voice activity, then emotion per utterance.

    from koemo import Predictor
    from koemo.inference.segments import predict_timeline, plot_timeline
    frame = predict_timeline(Predictor.from_checkpoint("checkpoints/paper"), "meeting.wav")
    plot_timeline(frame, "timeline.png")

`predict_timeline` returns one row per utterance with the columns
`start, end, label, prob_<class>..., arousal, valence, text, text_source, notes` (seconds; 1-5
scales; text_source "asr" when the transcript came from speech recognition, empty when the text
path was skipped; notes: the row's prediction notes joined by " | ", the recording's own first,
so a predictor trained on synthetic data says so on every row). The notes that hold for the
whole recording (the predictor's provenance, the file's format) are also `frame.attrs["notes"]`,
which `timeline_figure` prints as a caption under the figure. How it runs, in bounded memory
(an hour of audio is never held at once):
1. The file is read in blocks (`segments.block_s`, default 30 s) with soundfile, averaged to
   mono, resampled to 16 kHz as a stream (soxr), and Silero VAD (`koemo.audio.vad`) scores every
   32 ms; only these probabilities (4 bytes per 32 ms) are kept.
2. The probabilities become utterances (`segments.vad` settings; at most `max_speech_s` each).
3. Utterances are read back from the file one batch at a time (`segments.batch_utterances`),
   transcribed together when no transcript is known (Whisper, `koemo.inference.asr`), and scored by the
   predictor in batches.
Utterances the predictor rejects (e.g. too short for the features) keep their row with empty
label, NaN values and the reason in its notes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from koemo.audio.io import AudioSource
from koemo.audio.stream import AudioStream
from koemo.errors import KoemoInputError
from koemo.audio.vad import SileroVAD, speech_segments
from koemo.config.load import parse_section
from koemo.config.schema import SAMPLE_RATE, Config, Segments
from koemo.inference.palette import class_colours
from koemo.inference.provenance import provenance_notes
from koemo.inference.recording import wav_notes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from koemo.inference.predictor import Prediction, Predictor

TABLE_DECIMALS = 3          # timeline tables (CSV, terminal, the app): ms and 0.001 probability


NOTE_SEPARATOR = " | "      # between the notes of one row (as the --batch CSV's notes column)


def timeline_columns(classes: Sequence[str]) -> list[str]:
    return (["start", "end", "label"] + [f"prob_{c}" for c in classes]
            + ["arousal", "valence", "text", "text_source", "notes"])


def timeline_frame(rows: list[dict], classes: Sequence[str], notes: list[str]) -> pd.DataFrame:
    """The timeline DataFrame of `rows`, each row's notes led by the recording's `notes`, which
    are also `frame.attrs["notes"]` (the figure's caption)."""
    import pandas as pd

    rows = [{**row, "notes": NOTE_SEPARATOR.join(dict.fromkeys([*notes, *row.get("notes", [])]))}
            for row in rows]
    frame = pd.DataFrame(rows, columns=timeline_columns(classes))
    frame.attrs["notes"] = list(notes)
    return frame


def segment_settings(section: Config | Segments | Mapping[str, Any] | None = None,
                     **overrides: Any) -> Segments:
    """The `segments:` section (typed, or a mapping checked against koemo.config.schema;
    absent: its defaults; a whole config: its section), overrides taking precedence."""
    section = section.segments if isinstance(section, Config) else section
    settings = parse_section(Segments, section, "segments")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return parse_section(Segments, {**settings.as_dict(), **changes}, "segments") if changes else settings


class _Recording:
    """A file read in blocks (or an array already in memory), as 16 kHz mono pieces."""

    def __init__(self, audio: AudioSource, sample_rate: int | None = None):
        self.notes = wav_notes(audio)       # prepare's wav checks: a cut file stops here
        self.stream = AudioStream(audio, sample_rate, target_sample_rate=SAMPLE_RATE)
        self.path, self.wave = self.stream.path, self.stream.wave
        if self.wave is not None:
            self.rate, self.frames, self.label = SAMPLE_RATE, len(self.wave), "array"
        else:
            self.rate, self.frames, self.label = self.stream.rate, self.stream.frames, str(self.path)

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    def blocks(self, block_s: float) -> Iterator[np.ndarray]:
        """16 kHz mono float32 blocks covering the recording (koemo.audio.stream)."""
        return self.stream.blocks(int(block_s * SAMPLE_RATE))

    def piece(self, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
        """(samples, their rate) of [start_s, end_s): read from the file, or sliced."""
        if self.wave is not None:
            return self.wave[int(start_s * SAMPLE_RATE):int(math.ceil(end_s * SAMPLE_RATE))], SAMPLE_RATE
        import soundfile as sf

        data, rate = sf.read(str(self.path), start=int(start_s * self.rate),
                             stop=min(self.frames, int(math.ceil(end_s * self.rate))),
                             dtype="float32", always_2d=True)
        return data, rate


def find_utterances(recording: _Recording, settings: Segments, vad: SileroVAD | None = None,
                    progress: bool = False) -> list[tuple[float, float]]:
    """Pass 1: speech probabilities block by block -> [(start_s, end_s)]."""
    vad = vad or SileroVAD()
    vad.reset()
    probs = []
    bar = _bar(progress, total=round(recording.duration_s, 1), unit="s", desc="voice activity")
    for block in recording.blocks(float(settings.block_s)):
        probs.append(vad.probabilities(block))
        if bar is not None:
            bar.update(round(len(block) / SAMPLE_RATE, 1))
    probs.append(vad.probabilities(np.zeros(0, np.float32), final=True))
    if bar is not None:
        bar.close()
    return speech_segments(np.concatenate(probs), settings.vad, recording.duration_s)


def predict_timeline(predictor: Predictor, audio: AudioSource, sample_rate: int | None = None,
                     settings: Segments | Mapping[str, Any] | None = None, progress: bool = False,
                     vad: SileroVAD | None = None) -> pd.DataFrame:
    """Emotion, arousal, valence and transcript per utterance of a long recording (a file path,
    or an array with `sample_rate`) -> pandas.DataFrame (columns: `timeline_columns`).
    `settings`: the `segments:` config section (default: the predictor's config)."""
    parsed = segment_settings(predictor.cfg if settings is None else settings)
    recording = _Recording(audio, sample_rate)
    spans = find_utterances(recording, parsed, vad, progress)
    rows = []
    bar = _bar(progress, total=len(spans), unit="utt", desc="utterances")
    size = max(1, int(parsed.batch_utterances))
    for first in range(0, len(spans), size):
        batch = spans[first:first + size]
        prepared: list[tuple[int, Any]] = []
        results: dict[int, Prediction | KoemoInputError] = {}
        for k, (start, end) in enumerate(batch):
            data, rate = recording.piece(start, end)
            try:
                prepared.append((k, predictor.prepare(data, None, rate)))
            except KoemoInputError as err:
                results[k] = err
        if prepared:
            results.update(zip([k for k, _ in prepared],
                               predictor.predict_prepared([item for _, item in prepared])))
        rows += [_row(span, results[k], predictor.classes) for k, span in enumerate(batch)]
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return timeline_frame(rows, predictor.classes,
                          recording.notes + provenance_notes(predictor.provenance))


def _row(span: tuple[float, float], result: Prediction | Exception, classes: Sequence[str]) -> dict:
    row = {"start": span[0], "end": span[1]}
    if isinstance(result, Exception):
        return {**row, "label": "", **{f"prob_{c}": math.nan for c in classes},
                "arousal": math.nan, "valence": math.nan, "text": "", "text_source": "",
                "notes": [f"not predicted: {result}"]}
    probs = result.probabilities or {}
    return {**row, "label": result.label or "",
            **{f"prob_{c}": probs.get(c, math.nan) for c in classes},
            "arousal": result.arousal,
            "valence": math.nan if result.valence is None else result.valence,
            "text": result.text or "", "text_source": result.text_source or "",
            "notes": list(result.notes)}


NOT_PREDICTED = "not predicted"
NOT_PREDICTED_COLOUR = (0.85, 0.85, 0.85)
CAPTION_COLOUR = "#b00020"


def plot_timeline(frame: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """A PNG of a timeline frame (see `timeline_figure`)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = timeline_figure(frame, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def timeline_figure(frame: pd.DataFrame, title: str | None = None) -> Figure:
    """One coloured band per utterance (its emotion), its class probabilities stacked, and
    arousal/valence (1-5) per utterance. Utterances without an emotion (no transcript, e.g.
    speech recognition off) are hatched grey bands, and a panel with nothing predicted says
    "not predicted" rather than staying empty. The recording's notes (`frame.attrs["notes"]`:
    e.g. a predictor trained on synthetic data) are a red caption under the panels. Class
    colours: koemo.inference.palette, as the page's other charts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prob_cols = [c for c in frame.columns if c.startswith("prob_")]
    classes = [c[len("prob_"):] for c in prob_cols]
    colours = class_colours(classes)
    end = float(frame["end"].max()) if len(frame) else 1.0
    fig, (ax_label, ax_prob, ax_av) = plt.subplots(3, 1, figsize=(12, 6), sharex=True,
                                                   gridspec_kw={"height_ratios": [1, 2, 2]})
    for _, row in frame.iterrows():
        if row["label"] in colours:
            ax_label.axvspan(row["start"], row["end"], color=colours[row["label"]], alpha=0.9)
        else:
            ax_label.axvspan(row["start"], row["end"], facecolor=NOT_PREDICTED_COLOUR,
                             hatch="//", edgecolor="white", lw=0)
        bottom = 0.0
        for cls, col in zip(classes, prob_cols):
            p = 0.0 if np.isnan(row[col]) else float(row[col])
            ax_prob.bar(row["start"], p, width=row["end"] - row["start"], bottom=bottom,
                        align="edge", color=colours[cls])
            bottom += p
    ax_label.set_yticks([])
    ax_label.set_ylabel("emotion")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in classes]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor=NOT_PREDICTED_COLOUR, hatch="//",
                                 edgecolor="white"))
    ax_label.legend(handles, classes + [NOT_PREDICTED], ncol=len(classes) + 1, loc="lower left",
                    bbox_to_anchor=(0, 1.02), frameon=False, fontsize=8)
    no_emotion = not len(frame) or not frame["label"].isin(classes).any()
    for ax in (ax_label, ax_prob) if no_emotion else ():
        ax.text(0.5, 0.5, f"{NOT_PREDICTED} (no transcript: speech recognition off or heard nothing)",
                ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555555")
    ax_prob.set_ylim(0, 1)
    ax_prob.set_ylabel("probability")
    mids = (frame["start"] + frame["end"]) / 2
    ax_av.plot(mids, frame["arousal"], "o-", label="arousal")
    no_valence = not _finite(frame["valence"]).any()
    ax_av.plot(mids, frame["valence"], "s-",
               label=f"valence ({NOT_PREDICTED})" if no_valence else "valence")
    ax_av.set_ylim(0.8, 5.2)
    ax_av.set_ylabel("1-5")
    ax_av.set_xlabel("time (s)")
    ax_av.set_xlim(0, end)
    ax_av.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    notes = frame.attrs.get("notes", [])
    fig.tight_layout(rect=(0, 0.035 * len(notes), 1, 1))
    for k, note in enumerate(notes):
        fig.text(0.01, 0.035 * (len(notes) - k - 0.8), note, color=CAPTION_COLOUR, fontsize=9)
    return fig


def _finite(values: ArrayLike) -> np.ndarray:
    return np.isfinite(np.asarray(values, dtype=float))


def _bar(enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(**kwargs)
