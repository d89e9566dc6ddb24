"""Zero-shot emotion predictions of emotion2vec+ and SenseVoice-Small on koemo's utterances.

Each model names its own classes; `NATIVE_TO_EMOTION` (the one place the mapping is defined,
and docs/foundation.md's mapping table is generated from it: `python -m
koemo.upstreams.zeroshot`) maps every native label to one of koemo's emotion names (the seven
both corpora annotate: neutral, sad, happy, surprise, angry, disgust, fear) or to None where
the model's class is no emotion of koemo's (emotion2vec's "other" and "<unk>", SenseVoice's
EMO_UNKNOWN and an output without an emotion tag). A prediction whose emotion is not among
the study's classes (fear and disgust with the paper's five) gets label None as well: the
table counts those, and scores them both ways (excluded, and as errors).

    zero_shot_predict("emotion2vec", "emotion2vec/emotion2vec_plus_large", rows,
                      classes=("neutral", "sad", "happy", "surprise", "angry"),
                      root=None, device="cuda", batch_size=8)
    # -> DataFrame segment_id, native, label
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from koemo.errors import KoemoInputError

NATIVE_TO_EMOTION: dict[str, dict[str, str | None]] = {
    # emotion2vec+ (tokens.txt, English half): 0 angry .. 8 <unk>
    "emotion2vec": {"angry": "angry", "disgusted": "disgust", "fearful": "fear",
                    "happy": "happy", "neutral": "neutral", "other": None, "sad": "sad",
                    "surprised": "surprise", "<unk>": None},
    # SenseVoice-Small's emotion tags, and NO_TAG when its output holds none
    "sensevoice": {"HAPPY": "happy", "SAD": "sad", "ANGRY": "angry", "NEUTRAL": "neutral",
                   "FEARFUL": "fear", "DISGUSTED": "disgust", "SURPRISED": "surprise",
                   "EMO_UNKNOWN": None, "NO_TAG": None},
}
MODEL_NAMES = {"emotion2vec": "emotion2vec+ (base, large)", "sensevoice": "SenseVoice-Small"}
COLUMNS = ("segment_id", "native", "label")
CHUNK = 256          # utterances read into memory at a time


def map_label(kind: str, native: str, classes: Sequence[str]) -> str | None:
    """koemo's class for a native label: its emotion when that is one of `classes`, else None.
    A native label the mapping does not know -> KoemoInputError (a new checkpoint's classes)."""
    mapping = NATIVE_TO_EMOTION[kind]
    if native not in mapping:
        raise KoemoInputError(f"{kind}: native label {native!r} has no mapping to koemo's emotions "
                              f"(known: {', '.join(mapping)})")
    emotion = mapping[native]
    return emotion if emotion in tuple(classes) else None


def wav_paths(rows: pd.DataFrame, root: str | Path | None) -> list[Path]:
    """The rows' wav files (column wav_path; relative paths are under `root`), every missing
    one reported together before any model is loaded."""
    missing_cols = [c for c in ("segment_id", "wav_path") if c not in rows.columns]
    if missing_cols:
        raise KoemoInputError(f"utterance rows: missing column(s) {missing_cols} "
                              "(zero-shot prediction needs segment_id and wav_path)")
    base = Path(root) if root is not None else None
    paths = [Path(p) if Path(p).is_absolute() or base is None else base / p
             for p in rows["wav_path"].astype(str)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise KoemoInputError(f"{len(missing)} wav file(s) not found, e.g. {missing[0]}"
                              + (f" and {missing[1]}" if len(missing) > 1 else ""))
    return paths


def _predictor(kind: str, model: str, device: str) -> Callable[[list[np.ndarray], int], list[str]]:
    """The loaded model as (waves, batch size) -> native labels."""
    if kind == "emotion2vec":
        from koemo.upstreams.emotion2vec import load_emotion2vec_upstream

        upstream = load_emotion2vec_upstream(model, device)
        return lambda waves, size: [label for label, _ in upstream.classify(waves, size)]
    from koemo.upstreams.sensevoice import SenseVoice

    return SenseVoice.load(model, device, language="ko").emotions


def zero_shot_predict(kind: str, model: str, rows: pd.DataFrame, *, classes: Sequence[str],
                      root: str | Path | None = None, device: str = "cpu", batch_size: int = 8,
                      report: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Each row's native prediction and koemo label (None: outside `classes`); one row per
    input row, in order. `rows` needs segment_id and wav_path (utterances.parquet's columns,
    koemo.config.workdir.load_utterances); the audio is read as koemo reads it (16 kHz mono,
    koemo.audio.io.load_audio), CHUNK utterances at a time (memory stays bounded on a whole
    corpus); `report(done, total)` is told how many are predicted as the pass goes."""
    from koemo.audio.io import load_audio

    if kind not in NATIVE_TO_EMOTION:
        raise KoemoInputError(f"unknown zero-shot model kind {kind!r}; choose one of "
                              f"{', '.join(NATIVE_TO_EMOTION)}")
    paths = wav_paths(rows, root)
    report = report or (lambda done, total: None)
    natives: list[str] = []
    if paths:
        predict = _predictor(kind, model, device)
        report(0, len(paths))
        for start in range(0, len(paths), CHUNK):
            waves = [load_audio(p, allow_silence=True)[0] for p in paths[start:start + CHUNK]]
            natives += predict(waves, batch_size)
            report(len(natives), len(paths))
    return pd.DataFrame({"segment_id": rows["segment_id"].tolist(), "native": natives,
                         "label": [map_label(kind, n, classes) for n in natives]},
                        columns=list(COLUMNS))


def mapping_table() -> str:
    """docs/foundation.md's mapping table (markdown), generated from NATIVE_TO_EMOTION."""
    lines = ["| model | native label | koemo emotion |", "| --- | --- | --- |"]
    for kind, mapping in NATIVE_TO_EMOTION.items():
        for native, emotion in mapping.items():
            lines.append(f"| {MODEL_NAMES[kind]} | `{native}` | {emotion or '— (outside)'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mapping_table())
