"""The feature store: mel + delta of every utterance, computed once and read by every model.

`FeatureStore` lives at `W/features/<feature_fingerprint(cfg)>/`:
  mel.npy        [N, 2, T, F] in `store_dtype` (float16), zero padded, opened as a memmap
  index.parquet  segment_id, n_frames (row i of mel.npy)
  meta.json      feature config, backend, fingerprint, shape; `complete: true` is written last,
                 so an interrupted build never looks complete and is rebuilt next time.
The dB-floor padding fix (`fixes.db_floor_padding`) is applied when reading, not stored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from koemo.config.fingerprints import feature_fingerprint, written_config
from koemo.config.schema import Config, Features, StoreDtype
from koemo.config.workdir import data_fingerprint
from koemo.errors import KoemoInputError
from koemo.audio.features import librosa_features, check_wave, extract_batch, min_samples

if TYPE_CHECKING:
    import pandas as pd

STORE_SUBDIR = "features"
# Padded audio per torch batch: batch_size utterances of this many seconds (KEMDy20 mean: 6 s).
BATCH_SECONDS = 8
META_FILE, INDEX_FILE, MEL_FILE = "meta.json", "index.parquet", "mel.npy"
LOCK_SUFFIX, PARTIAL_SUFFIX = ".lock", ".partial"


def store_dir(workdir: str | Path, cfg: Config) -> Path:
    return Path(workdir) / STORE_SUBDIR / feature_fingerprint(cfg)


def read_meta(directory: Path) -> dict | None:
    try:
        return json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class RowStore:
    """A complete on-disk store of one row per utterance: meta.json (written last), index.parquet
    (segment_id, n_frames) and a .npy array opened lazily as a read-only memmap. The memmap is
    dropped when pickled (DataLoader workers), so a worker re-opens the file instead of
    receiving a copy of the whole array. Subclasses name the array file and what they are."""

    ARRAY_FILE = ""
    WHAT = "store"
    INCOMPLETE_HINT = ""

    def __init__(self, directory: str | Path):
        import pandas as pd

        self.directory = Path(directory)
        meta = read_meta(self.directory)
        if not meta or not meta.get("complete"):
            raise KoemoInputError(f"{self.directory}: not a complete {self.WHAT}{self.INCOMPLETE_HINT}")
        self.meta = meta
        index = pd.read_parquet(self.directory / INDEX_FILE)
        self.segment_ids: list[str] = index["segment_id"].astype(str).tolist()
        self.n_frames: np.ndarray = index["n_frames"].to_numpy(dtype=np.int32)
        self._positions = {sid: i for i, sid in enumerate(self.segment_ids)}
        self._array: np.ndarray | None = None
        if tuple(self.array.shape) != tuple(meta["shape"]) or len(self.segment_ids) != meta["shape"][0]:
            raise KoemoInputError(
                f"{self.directory / self.ARRAY_FILE}: shape {self.array.shape} does not match "
                f"{META_FILE} {meta['shape']} and {len(self.segment_ids)} index rows; delete the "
                "folder and rebuild")

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.lib.format.open_memmap(self.directory / self.ARRAY_FILE, mode="r")
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __len__(self) -> int:
        return len(self.segment_ids)

    def index_of(self, segment_id: str) -> int:
        try:
            return self._positions[segment_id]
        except KeyError:
            raise KoemoInputError(
                f"{self.directory}: segment {segment_id!r} is not in this {self.WHAT} "
                f"({len(self)} segments); rebuild it for the current utterance table") from None


class FeatureStore(RowStore):
    """Read side of a built store: mel+delta rows by position or segment id."""

    ARRAY_FILE = MEL_FILE
    WHAT = "feature store"
    INCOMPLETE_HINT = (f" (missing or unfinished {META_FILE}); build it with build_feature_store "
                       "/ `koemo prepare`")

    def __init__(self, directory: str | Path):
        super().__init__(directory)
        self.top_db = float(self.meta["features"]["top_db"])

    @property
    def mel(self) -> np.ndarray:
        return self.array

    def _floor_padding(self, feats: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """fixes.db_floor_padding: padding frames of the mel channel at -top_db (silence)
        instead of 0 dB (the loudest level); the delta of padding stays 0. feats: [B,2,T,F]."""
        pad = np.arange(feats.shape[2])[None, :] >= n_frames[:, None]     # [B, T]
        feats[:, 0][pad] = -self.top_db
        return feats

    def get_batch(self, indices: Iterable[int], db_floor_padding: bool = False) -> np.ndarray:
        """float32 [B, 2, T, F] for store positions `indices`."""
        indices = np.asarray(list(indices), dtype=np.int64)
        feats = np.asarray(self.mel[indices], dtype=np.float32)
        if db_floor_padding:
            feats = self._floor_padding(feats, self.n_frames[indices])
        return feats

    def get(self, i: int, db_floor_padding: bool = False) -> np.ndarray:
        """float32 [2, T, F] for store position `i`."""
        return self.get_batch([i], db_floor_padding)[0]


def open_feature_store(workdir: str | Path, cfg: Config) -> FeatureStore:
    """The complete store for this config's features under `workdir`."""
    directory = store_dir(workdir, cfg)
    meta = read_meta(directory)
    if meta is None:
        raise KoemoInputError(
            f"{directory}: no feature store for config {cfg.name!r} "
            f"(fingerprint {feature_fingerprint(cfg)}); run `koemo prepare` first")
    source = data_fingerprint(workdir)
    if source is not None and meta.get("source") != source:
        raise KoemoInputError(
            f"{directory}: built from an earlier preparation of the corpus (inputs "
            f"{meta.get('source')}, now {source}); run `koemo prepare` again to rebuild it")
    return FeatureStore(directory)


def _reusable(directory: Path, fingerprint: str, segment_ids: list[str], source: str | None) -> bool:
    meta = read_meta(directory)
    if not meta or not meta.get("complete") or meta.get("fingerprint") != fingerprint:
        return False
    if meta.get("source") != source:      # the corpus was prepared again (e.g. new wav files)
        return False
    try:
        store = FeatureStore(directory)
    except (KoemoInputError, OSError, ValueError, KeyError):
        return False
    return store.segment_ids == segment_ids


def complete_for(store_class: type, directory: Path, segment_ids: list[str], source: object) -> bool:
    """Whether `directory` holds a complete `store_class` store of these segment ids, built
    from the prepared data `source` (a store that cannot be opened is not)."""
    meta = read_meta(directory)
    if not meta or not meta.get("complete") or meta.get("source") != source:
        return False
    try:
        return store_class(directory).segment_ids == segment_ids
    except (KoemoInputError, OSError, ValueError, KeyError):
        return False


def resolve_device(cfg: Config, device: str | None = None) -> str:
    """Explicit device, else cfg.train.device; "auto" = cuda when available."""
    import torch
    wanted = device if device is not None else cfg.train.device
    if str(wanted) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(wanted)


def probe_lengths(paths: Sequence[str], segment_ids: Sequence[str], rate: int, need: int,
                  too_short: str) -> tuple[np.ndarray, list[str]]:
    """Samples per file after resampling to `rate` (header only), and every problem as
    '<segment id> <path>: <reason>'; a file under `need` samples is `too_short` for its user."""
    import soundfile as sf
    lengths = np.zeros(len(paths), dtype=np.int64)
    problems = []
    for row, (sid, path) in enumerate(zip(segment_ids, paths)):
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as err:
            reason = "file not found" if not Path(str(path)).exists() else f"unreadable audio ({err})"
            problems.append(f"{sid} {path}: {reason}")
            continue
        lengths[row] = int(np.ceil(info.frames * rate / info.samplerate))
        if lengths[row] < need:
            problems.append(f"{sid} {path}: too short ({info.frames / info.samplerate:.3f} s); "
                            f"{too_short} needs >= {need / rate:.3f} s")
    return lengths, problems


def read_wave(path: str, rate: int) -> np.ndarray:
    from koemo.audio.io import load_audio
    # Silence was judged by `prepare` (data.silent_audio); its features are those of zeros.
    wave, _ = load_audio(path, target_sample_rate=rate, allow_silence=True)
    return wave


def length_sorted_batches(lengths: np.ndarray, batch_size: int, max_samples: int | None = None
                          ) -> list[np.ndarray]:
    """Row indices grouped by similar length (little padding), at most `batch_size` rows and,
    when given, at most `max_samples` padded samples per batch (long utterances come in
    smaller batches, so peak memory stays flat)."""
    batches: list[np.ndarray] = []
    current: list[int] = []
    for row in np.argsort(lengths, kind="stable"):
        padded = (len(current) + 1) * int(lengths[row])        # ascending: row is the longest
        if current and (len(current) == batch_size or (max_samples and padded > max_samples)):
            batches.append(np.asarray(current))
            current = []
        current.append(row)
    if current:
        batches.append(np.asarray(current))
    return batches


def create_npy_file(path: Path, shape: tuple, dtype: StoreDtype) -> int:
    """Allocate the .npy file (sparse) with its header; return the byte offset of row 0."""
    mel = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)
    offset = int(mel.offset)
    del mel
    return offset


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def table_segment_ids(table: pd.DataFrame) -> list[str]:
    """Segment ids of the utterance table; KoemoInputError for missing columns or duplicates."""
    from collections import Counter
    for column in ("segment_id", "wav_path"):
        if column not in table.columns:
            raise KoemoInputError(f"utterance table: missing column {column!r} (needs segment_id, wav_path)")
    segment_ids = table["segment_id"].astype(str).tolist()
    if not segment_ids:
        raise KoemoInputError("utterance table: no rows to compute features for")
    dupes = sorted(sid for sid, count in Counter(segment_ids).items() if count > 1)
    if dupes:
        raise KoemoInputError(f"utterance table: {len(dupes)} duplicate segment ids, e.g. {dupes[:10]}")
    return segment_ids


def _write_feature_rows(partial: Path, offset: int, row_bytes: int, paths: list[str],
                        lengths: np.ndarray, fc: Features, device: str, batch_size: int,
                        progress: bool) -> np.ndarray:
    """Extract every file, batch by batch, and pwrite its row; returns n_frames per row."""
    from tqdm.auto import tqdm
    backend, rate = fc.backend, int(fc.sample_rate)
    n_frames = np.zeros(len(paths), dtype=np.int32)
    bar = tqdm(total=len(paths), desc=f"features ({backend}, {device})", unit="utt",
               disable=not progress)
    fd = os.open(partial, os.O_WRONLY)
    try:
        batches = length_sorted_batches(lengths, batch_size if backend == "torch" else 1,
                                        batch_size * BATCH_SECONDS * rate)
        for rows in batches:
            waves = [read_wave(paths[r], rate) for r in rows]
            if backend == "torch":
                feats, frames = extract_batch(waves, fc, device=device)
            else:
                feats, frame = librosa_features(check_wave(waves[0], fc, paths[rows[0]]), fc)
                feats, frames = feats[None], np.array([frame], dtype=np.int32)
            stored = feats.astype(fc.store_dtype)
            for k, r in enumerate(rows):
                os.pwrite(fd, stored[k].tobytes(), offset + int(r) * row_bytes)
                n_frames[r] = frames[k]
            bar.update(len(rows))
        os.fsync(fd)                  # rows on disk before meta.json may say complete
    finally:
        os.close(fd)
        bar.close()
    return n_frames


def build_feature_store(table: pd.DataFrame, workdir: str | Path, cfg: Config,
                        progress: bool = True, device: str | None = None, batch_size: int = 32) -> FeatureStore:
    """Features of every row of `table` (columns segment_id, wav_path) into the store.

    Idempotent: a complete store with the same fingerprint, the same segment ids (in order) and
    the same prepared inputs (`data_fingerprint` of the workdir) is reused. Memory stays
    bounded: files are read one batch at a time and rows are written
    straight to the file (pwrite, not a writable memmap whose dirty pages would all stay
    resident). Every unreadable or too-short file is listed in one KoemoInputError before
    anything is computed. A build that fails or is interrupted removes its .partial files; one
    that was killed outright leaves them for the next build, which removes them first. `device` (torch backend): None = cfg.train.device ("auto": cuda
    when available)."""
    fc = cfg.features
    segment_ids = table_segment_ids(table)
    fingerprint = feature_fingerprint(cfg)
    source = data_fingerprint(workdir)
    directory = store_dir(workdir, cfg)
    if _reusable(directory, fingerprint, segment_ids, source):
        return FeatureStore(directory)

    paths = table["wav_path"].astype(str).tolist()
    lengths, problems = probe_lengths(paths, segment_ids, int(fc.sample_rate), min_samples(fc),
                                      f"the delta of width {fc.delta_width}")
    if problems:
        raise KoemoInputError(
            f"{len(problems)} of {len(paths)} audio files cannot be turned into features:\n  "
            + "\n  ".join(problems))

    build_locked(directory, lambda: _reusable(directory, fingerprint, segment_ids, source),
                 lambda: _build_store_files(directory, segment_ids, paths, lengths, fc, cfg,
                                            device, batch_size, progress, fingerprint, source))
    return FeatureStore(directory)


def build_locked(directory: Path, reusable: Callable[[], bool], build: Callable[[], object]) -> None:
    """Run `build` (which writes .partial files and renames them, meta.json last) under the
    store's lock, unless `reusable()` says another process built it while we waited. Partial
    files of a killed build are removed first; an error, Ctrl-C or SIGTERM removes its own."""
    from filelock import FileLock

    directory.mkdir(parents=True, exist_ok=True)
    # One builder per store; the lock sits beside the store, which holds only its own files.
    with FileLock(str(directory.with_name(directory.name + LOCK_SUFFIX))):
        if reusable():
            return
        remove_partials(directory)
        try:
            build()
        except BaseException:
            remove_partials(directory)
            raise


def remove_partials(directory: Path) -> None:
    for path in directory.glob("*" + PARTIAL_SUFFIX):
        path.unlink(missing_ok=True)


def _build_store_files(directory: Path, segment_ids: list[str], paths: list[str],
                       lengths: np.ndarray, fc: Features, cfg: Config, device: str | None,
                       batch_size: int,
                       progress: bool, fingerprint: str, source: str | None) -> None:
    """Write mel.npy and index.parquet as .partial files, rename them, then meta.json."""
    (directory / META_FILE).unlink(missing_ok=True)      # from now on the store is incomplete
    # Written beside the old files and renamed at the end: a process still reading the old
    # store keeps its (unlinked) file instead of seeing it truncated under its memmap.
    partial = directory / (MEL_FILE + PARTIAL_SUFFIX)
    shape = (len(segment_ids), 2, int(fc.max_frames), int(fc.n_mels))
    offset = create_npy_file(partial, shape, fc.store_dtype)
    row_bytes = int(np.prod(shape[1:])) * np.dtype(fc.store_dtype).itemsize
    run_device = resolve_device(cfg, device) if fc.backend == "torch" else "cpu"
    n_frames = _write_feature_rows(partial, offset, row_bytes, paths, lengths, fc, run_device,
                                   batch_size, progress)

    import pandas as pd
    index_partial = directory / (INDEX_FILE + PARTIAL_SUFFIX)
    pd.DataFrame({"segment_id": segment_ids, "n_frames": n_frames}).to_parquet(
        index_partial, index=False)
    os.replace(partial, directory / MEL_FILE)
    os.replace(index_partial, directory / INDEX_FILE)
    write_json_atomic(directory / META_FILE, {
        "features": written_config(fc), "backend": fc.backend, "device": run_device,
        "fingerprint": fingerprint, "source": source, "shape": list(shape),
        "dtype": str(fc.store_dtype), "complete": True})
