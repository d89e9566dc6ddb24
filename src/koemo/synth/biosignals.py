"""Wrist bio-signal files (EDA, TEMP, IBI) in KEMDy20's on-disk format.

One file per (session, script, speaker): `ROOT/<SIGNAL>/SessionNN/SessNN_scriptMM_UserNNNG.csv`.
The recording starts `lead` seconds (2-30 s, whole unix seconds) before the script's time 0,
the time base of the annotation's start/end columns, and ends 5-20 s after the last utterance.

File format (text, LF line ends, no header besides the preamble):

  EDA, TEMP   `<unix start>,<timestamp>` then `4.000000,hz`, then one row per 0.25 s:
              `value,timestamp` or `value,timestamp,segment_id` while the file's own speaker is
              inside an annotated segment (start <= t < end). EDA in microsiemens, 6 decimals;
              TEMP in degrees C, 2 decimals.
  IBI         `<unix start>,IBI,<timestamp>` then one row per detected inter-beat interval:
              `offset_s,ibi_s,timestamp[,segment_id]` (offset from the unix start; both
              multiples of 1/64 s, 6 decimals). Beats drop out in runs, so sampling is irregular.
  <unix start> is `%.6f`; every <timestamp> is wall-clock Korean time `YYYY-MM-DD HH:MM:SS.fff`.

Quirks reproduced: IBI files of 0 bytes (every session with s % 4 == 1 has one for its second
speaker in script 03; other files with probability 0.1); EDA gaps in sessions with s % 4 == 2
(each EDA file there loses one window of 15-90 s, at most 40% of its rows, with probability 0.6, at least one file
per such session), so some segments have no EDA rows at all.

Generative rule (A = the utterance's total arousal, u in [0, 1) = position inside the segment,
e = biosignal_effects[signal], default {"EDA": 1.0, "TEMP": 0.0, "IBI": 0.0}):
  EDA(t)  = tonic_speaker + random walk (sd 0.003 uS/sample) + N(0, 0.003)
            + e * 1.0 uS * (A - 3) * (0.3 + 0.7 u)        inside the speaker's own segments
  TEMP(t) = base_speaker (31-35 C) + random walk (sd 0.004 C/sample) + N(0, 0.01)
            + e * 0.3 C * (A - 3) * (0.3 + 0.7 u)          inside the speaker's own segments
  IBI     = 60 / HR_speaker * (1 + 0.04 sin(2 pi t / 4.5 s)) + N(0, 0.02)
            - e * 0.05 s * (A - 3)                          for beats inside own segments
So by default EDA level AND shape (rising for high arousal, falling for low) follow arousal,
while TEMP and IBI are noise and drift only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from typing import Sequence

import numpy as np

from koemo.config.schema import BIOSIGNALS

EDA_HZ = 4
BEAT_TICK = 1.0 / 64.0  # the wristband derives beats from a 64 Hz pulse signal
DEFAULT_EFFECTS = {"EDA": 1.0, "TEMP": 0.0, "IBI": 0.0}
KST_OFFSET_S = 9 * 3600
RESPONSE_GAIN = {"EDA": 1.0, "TEMP": 0.3, "IBI": 0.05}


@dataclass
class Recording:
    """One speaker's wristband recording during one script, and their annotated segments."""
    session: int
    script: int
    speaker: str                       # e.g. "User002M"
    unix_zero: float                   # unix time of the script's time 0 (annotation clock)
    duration_s: float                  # script length on the annotation clock
    segments: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (segment_id, start_s, end_s, total arousal)

    @property
    def stem(self) -> str:
        return f"Sess{self.session:02d}_script{self.script:02d}_{self.speaker}"


def validate_effects(effects: dict | None) -> dict[str, float]:
    merged = dict(DEFAULT_EFFECTS)
    for name, value in (effects or {}).items():
        if name not in DEFAULT_EFFECTS:
            raise ValueError(f"biosignal_effects: unknown signal {name!r} (known: {', '.join(BIOSIGNALS)})")
        merged[name] = float(value)
    return merged


def wallclock(unix: np.ndarray) -> np.ndarray:
    """Unix seconds -> 'YYYY-MM-DD HH:MM:SS.fff' Korean wall-clock strings (vectorised)."""
    if np.size(unix) == 0:
        return np.array([], dtype=str)
    millis = np.round((np.asarray(unix, dtype=np.float64) + KST_OFFSET_S) * 1000).astype("int64")
    text = np.datetime_as_string(millis.astype("datetime64[ms]"), unit="ms")
    return np.char.replace(text, "T", " ")


def _segment_labels(times: np.ndarray, segments: Sequence[tuple[object, float, float, float]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sample times (annotation clock): segment index (-1 outside), arousal, position u."""
    which = np.full(len(times), -1, dtype=np.int64)
    arousal = np.full(len(times), 3.0)
    pos = np.zeros(len(times))
    for k, (_, start, end, a) in enumerate(segments):
        lo, hi = np.searchsorted(times, [start, end], side="left")
        which[lo:hi] = k
        arousal[lo:hi] = a
        pos[lo:hi] = (times[lo:hi] - start) / (end - start)
    return which, arousal, pos


def _response(arousal: np.ndarray, pos: np.ndarray, inside: np.ndarray, gain: float) -> np.ndarray:
    return np.where(inside, gain * (arousal - 3.0) * (0.3 + 0.7 * pos), 0.0)


def _segment_ids(rec: Recording, which: np.ndarray) -> np.ndarray:
    """Segment id per row ('' outside segments)."""
    names = np.array([seg[0] for seg in rec.segments] + [""])
    return names[which]  # index -1 picks the trailing ''


def _lines(columns: list[np.ndarray], seg_ids: np.ndarray) -> str:
    """CSV rows; the segment id column exists only on rows inside a segment."""
    rows = columns[0]
    for col in columns[1:]:
        rows = np.char.add(np.char.add(rows, ","), col)
    tagged = seg_ids != ""
    rows = np.where(tagged, np.char.add(np.char.add(rows, ","), seg_ids), rows)
    return "".join(line + "\n" for line in rows.tolist())


def _sampled_signal(rec: Recording, signal_name: str, rng: np.random.Generator, effect: float,
                    start_unix: float, total_s: float, drop_window: tuple[float, float] | None) -> str:
    n = int(np.ceil(total_s * EDA_HZ))
    unix = start_unix + np.arange(n) / EDA_HZ
    times = unix - rec.unix_zero
    which, arousal, pos = _segment_labels(times, rec.segments)
    inside = which >= 0
    if signal_name == "EDA":
        level = rng.uniform(1.0, 4.0) + np.cumsum(rng.normal(0, 0.003, n)) + rng.normal(0, 0.003, n)
        values = np.maximum(level + effect * _response(arousal, pos, inside, RESPONSE_GAIN["EDA"]), 0.01)
        text = np.char.mod("%.6f", values)
    else:
        level = rng.uniform(31.0, 35.0) + np.cumsum(rng.normal(0, 0.004, n)) + rng.normal(0, 0.01, n)
        values = level + effect * _response(arousal, pos, inside, RESPONSE_GAIN["TEMP"])
        text = np.char.mod("%.2f", values)
    ids = _segment_ids(rec, which)
    keep = np.ones(n, dtype=bool)
    if drop_window is not None:  # device dropout: a window of rows is simply missing
        keep = (times < drop_window[0]) | (times >= drop_window[1])
    preamble = f"{start_unix:.6f},{wallclock(np.array([start_unix]))[0]}\n{EDA_HZ:.6f},hz\n"
    body = _lines([text[keep], wallclock(unix[keep])], ids[keep])
    return preamble + body


def _ibi_signal(rec: Recording, rng: np.random.Generator, effect: float,
                start_unix: float, total: float) -> str:
    period = 60.0 / rng.uniform(60.0, 90.0)
    n_beats = int(total / (period * 0.8)) + 2
    base = period * (1 + 0.04 * np.sin(2 * np.pi * np.arange(n_beats) * period / 4.5))
    ibis = base + rng.normal(0, 0.02, n_beats)
    beat_times = np.cumsum(ibis)  # seconds after the file start (first interval ends at ibis[0])
    which, arousal, _ = _segment_labels(beat_times - (rec.unix_zero - start_unix), rec.segments)
    ibis = ibis - effect * RESPONSE_GAIN["IBI"] * (arousal - 3.0) * (which >= 0)
    ibis = np.maximum(np.round(ibis / BEAT_TICK) * BEAT_TICK, 0.3)
    beat_times = np.cumsum(ibis)
    which, _, _ = _segment_labels(beat_times - (rec.unix_zero - start_unix), rec.segments)
    inside_file = beat_times < total
    # Beat detection drops out in runs (motion): a two-state Markov chain over beats.
    detected = np.empty(n_beats, dtype=bool)
    state = True
    draws = rng.random(n_beats)
    for k in range(n_beats):
        state = draws[k] < (0.9 if state else 0.3)
        detected[k] = state
    # A row needs this beat and the one before it detected.
    row = inside_file & detected & np.concatenate([[False], detected[:-1]])
    ids = _segment_ids(rec, which[row])
    preamble = f"{start_unix:.6f},IBI,{wallclock(np.array([start_unix]))[0]}\n"
    body = _lines([np.char.mod("%.6f", beat_times[row]), np.char.mod("%.6f", ibis[row]),
                   wallclock(start_unix + beat_times[row])], ids)
    return preamble + body


def _has_eda_gaps(session: int) -> bool:
    return session % 4 == 2


def _forced_empty_ibi(rec: Recording, speaker_index: int) -> bool:
    return rec.session % 4 == 1 and rec.script == 3 and speaker_index == 1


def write_biosignals(root: Path, recordings: list[Recording], speaker_index: dict[str, int],
                     seed: int, effects: dict | None = None) -> list[Path]:
    """Write EDA/TEMP/IBI files of the given recordings under `root`; returns the paths.

    Each file draws from its own generator seeded by (seed, session, script, speaker index), so
    the bytes do not depend on which other sessions are written or in what order.
    """
    effects = validate_effects(effects)
    written = []
    by_session: dict[int, list[Recording]] = {}
    for rec in recordings:
        by_session.setdefault(rec.session, []).append(rec)
    for session, recs in by_session.items():
        gap_rng = np.random.default_rng([seed, session, 30])
        gap_files = gap_rng.random(len(recs)) < 0.6 if _has_eda_gaps(session) else np.zeros(len(recs), bool)
        if _has_eda_gaps(session) and not gap_files.any():
            gap_files[int(gap_rng.integers(len(recs)))] = True
        for rec, gap in zip(recs, gap_files):
            who = speaker_index[rec.speaker]
            rng = np.random.default_rng([seed, session, 31, rec.script, who])
            start_unix = float(np.floor(rec.unix_zero - rng.uniform(2.0, 30.0)))
            total_s = rec.unix_zero + rec.duration_s + float(rng.uniform(5.0, 20.0)) - start_unix
            window = None
            if gap:
                # At most 40% of the file goes missing, so the file keeps rows on both sides.
                width = min(float(rng.uniform(15.0, 90.0)), 0.4 * total_s)
                begin = float(rng.uniform(0.0, total_s - width)) + start_unix - rec.unix_zero
                window = (begin, begin + width)
            contents = {
                "EDA": _sampled_signal(rec, "EDA", rng, effects["EDA"], start_unix, total_s, window),
                "TEMP": _sampled_signal(rec, "TEMP", rng, effects["TEMP"], start_unix, total_s, None),
                "IBI": _ibi_signal(rec, rng, effects["IBI"], start_unix, total_s),
            }
            if _forced_empty_ibi(rec, who) or rng.random() < 0.1:
                contents["IBI"] = ""
            for name, text in contents.items():
                path = root / name / f"Session{session:02d}" / f"{rec.stem}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text.encode("ascii"))
                written.append(path)
    return written
