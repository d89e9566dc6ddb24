"""The on-disk cache of speech-encoder states, read like the mel FeatureStore.

`W/audio_states/<fingerprint>/` (the fingerprint covers the encoder's config, weights and
feature-extractor settings, the chosen layers, max_frames and the sample rate):
  states.npy     float16 [N, K, T, H]: K chosen layers, T = max_frames (zero padded), H width
  index.parquet  segment_id, n_frames (row i of states.npy)
  meta.json      encoder source and fingerprint, layers, shape; `complete: true` written last
Rows are written with pwrite one batch at a time (bounded memory, no dirty memmap pages), under
a file lock beside the directory; an interrupted build leaves no complete meta.json and is
redone. Size: N x T x K x H x 2 bytes (docs/frontends.md).

`open_audio_store(workdir, cfg)` is what training reads audio from: the mel FeatureStore for
`models.audio.frontend: mel`, this cache (built on first use) for `frontend: encoder`. Both
give `get(i) -> float32 [C, T, W]`, `n_frames`, `index_of`, `segment_ids`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

import koemo.audio.feature_store as F
from koemo.config.fingerprints import fingerprint as config_fingerprint
from koemo.config.schema import Config
from koemo.errors import KoemoInputError
from koemo.audio.speech_encoder import (MIN_SAMPLES, EncoderSpec, SpeechEncoder, encoder_folder,
                                        encoder_settings, folder_fingerprint, load_speech_encoder,
                                        uses_speech_encoder)

if TYPE_CHECKING:
    import pandas as pd

STORE_SUBDIR = "audio_states"
STATES_FILE = "states.npy"


class EncoderStateStore(F.RowStore):
    """Read side of a built cache: encoder states by position or segment id. Augmentation's
    frequency masking does not apply to these states (`maskable = False`)."""

    maskable = False
    ARRAY_FILE = STATES_FILE
    WHAT = "speech-encoder state cache"

    @property
    def states(self) -> np.ndarray:
        return self.array

    def get_batch(self, indices: Iterable[int], db_floor_padding: bool = False) -> np.ndarray:
        """float32 [B, K, T, H]; db_floor_padding is a mel-only fix and ignored here."""
        indices = np.asarray(list(indices), dtype=np.int64)
        return np.asarray(self.states[indices], dtype=np.float32)

    def get(self, i: int, db_floor_padding: bool = False) -> np.ndarray:
        return self.get_batch([i])[0]


def store_key(cfg: Config, encoder_fp: str) -> dict:
    spec = encoder_settings(cfg)
    return {"encoder": encoder_fp, "layers": spec.layers, "max_frames": spec.max_frames,
            "sample_rate": int(cfg.features.sample_rate), "dtype": "float16"}


def _write_rows(partial: Path, offset: int, row_shape: tuple, paths: list[str], lengths: np.ndarray,
                encoder: SpeechEncoder, batch_size: int, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    rate, max_frames = encoder.sample_rate, row_shape[1]
    row_bytes = int(np.prod(row_shape)) * 2
    n_frames = np.zeros(len(paths), dtype=np.int32)
    size = batch_size if encoder.batched else 1
    batches = F.length_sorted_batches(lengths, size, size * F.BATCH_SECONDS * rate)
    fd = os.open(partial, os.O_WRONLY)
    try:
        with tqdm(total=len(paths), desc="speech-encoder states", unit="utt",
                  disable=not progress) as bar:
            for rows in batches:
                states = encoder.states([F.read_wave(paths[r], rate) for r in rows])
                for r, state in zip(rows, states):
                    row = np.zeros(row_shape, dtype=np.float16)
                    n = min(state.shape[1], max_frames)
                    row[:, :n] = state[:, :n]
                    os.pwrite(fd, row.tobytes(), offset + int(r) * row_bytes)
                    n_frames[r] = n
                bar.update(len(rows))
        os.fsync(fd)
    finally:
        os.close(fd)
    return n_frames


def build_encoder_store(table: pd.DataFrame, workdir: str | Path, cfg: Config, progress: bool = True,
                        device: str | None = None, encoder: SpeechEncoder | None = None
                        ) -> EncoderStateStore:
    """States of every row of `table` (segment_id, wav_path); a complete cache with the same key,
    segment ids and prepared inputs is reused without loading the encoder."""
    from koemo.config.workdir import data_fingerprint

    spec = encoder_settings(cfg)
    segment_ids = F.table_segment_ids(table)
    folder_fp = encoder.fingerprint if encoder is not None else folder_fingerprint(
        encoder_folder(spec.name))
    key = store_key(cfg, folder_fp)
    digest, source = config_fingerprint(key), data_fingerprint(workdir)
    directory = Path(workdir) / STORE_SUBDIR / digest

    def reusable() -> bool:
        return F.complete_for(EncoderStateStore, directory, segment_ids, source)

    if reusable():
        return EncoderStateStore(directory)
    paths = table["wav_path"].astype(str).tolist()
    lengths, problems = F.probe_lengths(paths, segment_ids, int(cfg.features.sample_rate),
                                        MIN_SAMPLES, "the speech encoder")
    if problems:
        raise KoemoInputError(f"{len(problems)} of {len(paths)} audio files cannot be encoded:\n  "
                              + "\n  ".join(problems))

    def build() -> None:
        chosen = encoder
        if chosen is None:
            chosen = load_speech_encoder(spec.name, spec.layers, F.resolve_device(cfg, device))
        _build_files(directory, segment_ids, paths, lengths, chosen, spec, key, source, progress)

    F.build_locked(directory, reusable, build)
    return EncoderStateStore(directory)


def _build_files(directory: Path, segment_ids: list[str], paths: list[str], lengths: np.ndarray,
                 encoder: SpeechEncoder, spec: EncoderSpec, key: dict, source: str | None,
                 progress: bool) -> None:
    import pandas as pd

    (directory / F.META_FILE).unlink(missing_ok=True)
    if encoder.hidden_size != spec.input_dim:
        raise KoemoInputError(f"speech encoder {spec.name} has width {encoder.hidden_size} but "
                              f"models.audio.encoder.input_dim is {spec.input_dim}: set them equal")
    shape = (len(segment_ids), len(encoder.layers), spec.max_frames, encoder.hidden_size)
    partial = directory / (STATES_FILE + F.PARTIAL_SUFFIX)
    offset = F.create_npy_file(partial, shape, "float16")
    n_frames = _write_rows(partial, offset, shape[1:], paths, lengths, encoder,
                           spec.batch_size, progress)
    index_partial = directory / (F.INDEX_FILE + F.PARTIAL_SUFFIX)
    pd.DataFrame({"segment_id": segment_ids, "n_frames": n_frames}).to_parquet(index_partial, index=False)
    os.replace(partial, directory / STATES_FILE)
    os.replace(index_partial, directory / F.INDEX_FILE)
    F.write_json_atomic(directory / F.META_FILE, {
        "encoder_source": encoder.source, **key, "hidden_states_indices": encoder.layers,
        "batched_with_mask": encoder.batched, "source": source, "shape": list(shape),
        "bytes": int(np.prod(shape)) * 2, "complete": True})


def open_audio_store(workdir: str | Path, cfg: Config, progress: bool = False,
                     device: str | None = None
                     ) -> F.FeatureStore | EncoderStateStore:
    """What the audio model reads: the mel FeatureStore, or the speech-encoder state cache
    (filled here for every prepared utterance the first time)."""
    if not uses_speech_encoder(cfg):
        from koemo.audio.feature_store import open_feature_store
        return open_feature_store(workdir, cfg)
    from koemo.config.workdir import load_utterances

    return build_encoder_store(load_utterances(workdir), workdir, cfg, progress=progress, device=device)
