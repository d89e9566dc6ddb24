"""Audio features as the paper computes them, and the on-disk store every model reads them from.

Per utterance (docs/paper.md, audio features; every size from `cfg["features"]`): 16 kHz mono wave ->
mel power spectrogram (hann window, center=True with zero padding, power 2, slaney mel scale and
slaney norm: librosa's defaults) -> dB with `ref = max of this utterance` and `top_db` (values
in [-top_db, 0]) -> first-order delta (width `delta_width`, librosa's savgol "interp" edges) ->
stacked as float32 `[2, T, n_mels]` (mel, delta; time-major) and cut or zero-padded to
`T = max_frames`. `n_frames` = valid frames before padding, capped at T. The dB reference and
the delta use every frame of the utterance, also those beyond T, exactly as the original (which
computed the whole spectrogram first and cut afterwards).

Two backends give the same numbers:
- `librosa`: the faithful reference, one file at a time (as the original ran it).
- `torch`: torchaudio's MelSpectrogram on a zero-padded batch, on CPU or GPU. Zero padding a
  wave at its end leaves every valid frame unchanged (center=True pads with zeros anyway), the
  dB reference is the max over that utterance's own valid frames, and the delta's edge frames
  reproduce librosa's "interp" mode, so padding never changes a result.
  Parity with librosa: max |torch - librosa| <= PARITY_TOLERANCE_DB (dB, mel and delta
  channels, over valid frames; float32 FFT rounding), checked by tests/test_features.py.

The librosa pad mode is "constant" (librosa >= 0.9 default; older librosa reflected the edges,
which changes only the first and last two frames).

`FeatureStore` lives at `W/features/<feature_fingerprint(cfg)>/`:
  mel.npy        [N, 2, T, F] in `store_dtype` (float16), zero padded, opened as a memmap
  index.parquet  segment_id, n_frames (row i of mel.npy)
  meta.json      feature config, backend, fingerprint, shape; `complete: true` is written last,
                 so an interrupted build never looks complete and is rebuilt next time.
The dB-floor padding fix (`fixes.db_floor_padding`) is applied when reading, not stored.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from koemo.augment import frequency_mask  # noqa: F401  (docs/architecture.md lists it here)
from koemo.config import feature_fingerprint
from koemo.dataset.workdir import data_fingerprint
from koemo.errors import KoemoInputError

# Max abs difference (dB) between the torch and librosa backends over valid frames, both
# channels; measured on sines, chirps and noise (~1e-3 dB typical), with margin.
PARITY_TOLERANCE_DB = 0.02
BACKENDS = ("librosa", "torch")
# librosa.power_to_db's floor on power before the log.
AMIN = 1e-10
STORE_SUBDIR = "features"
# Padded audio per torch batch: batch_size utterances of this many seconds (KEMDy20 mean: 6 s).
BATCH_SECONDS = 8
META_FILE, INDEX_FILE, MEL_FILE = "meta.json", "index.parquet", "mel.npy"
LOCK_SUFFIX, PARTIAL_SUFFIX = ".lock", ".partial"


def feature_section(cfg: dict) -> dict:
    """Accept either a whole config or its `features` section."""
    return cfg["features"] if "features" in cfg else cfg


def frames_for(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT (center=True): one per hop, plus the frame at sample 0."""
    return 1 + int(n_samples) // int(hop_length)


def min_samples(feat_cfg: dict) -> int:
    """Shortest wave with at least `delta_width` frames (librosa's delta needs that many)."""
    fc = feature_section(feat_cfg)
    return (int(fc["delta_width"]) - 1) * int(fc["hop_length"])


def check_wave(wave: np.ndarray, feat_cfg: dict, label: str = "wave") -> np.ndarray:
    """A 1-D finite float32 wave long enough for the delta; else KoemoInputError naming `label`."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise KoemoInputError(f"{label}: expected a 1-D mono wave, got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise KoemoInputError(f"{label}: expected float samples in [-1, 1], got {wave.dtype}")
    fc = feature_section(feat_cfg)
    need = min_samples(fc)
    if wave.shape[0] < need:
        raise KoemoInputError(
            f"{label}: too short ({wave.shape[0]} samples = {wave.shape[0] / fc['sample_rate']:.3f} s);"
            f" the delta of width {fc['delta_width']} needs >= {need} samples")
    if not np.isfinite(wave).all():
        raise KoemoInputError(f"{label}: wave contains NaN or infinite samples")
    return np.ascontiguousarray(wave, dtype=np.float32)


def fit_frames(feat: np.ndarray, max_frames: int) -> tuple[np.ndarray, int]:
    """[2, L, F] -> ([2, max_frames, F] cut or zero padded, valid frames capped at max_frames)."""
    n = min(feat.shape[1], max_frames)
    out = np.zeros((feat.shape[0], max_frames, feat.shape[2]), dtype=np.float32)
    out[:, :n] = feat[:, :n]
    return out, n


# ----------------------------------------------------------------------------------- librosa
def _librosa_features(wave: np.ndarray, fc: dict) -> tuple[np.ndarray, int]:
    import librosa
    mel = librosa.feature.melspectrogram(
        y=wave, sr=fc["sample_rate"], n_fft=fc["n_fft"], hop_length=fc["hop_length"],
        window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=fc["n_mels"], fmin=fc["fmin"], fmax=fc["fmax"])
    db = librosa.power_to_db(mel, ref=np.max, amin=AMIN, top_db=fc["top_db"])
    delta = librosa.feature.delta(db, width=fc["delta_width"], order=1)
    return fit_frames(np.stack([db.T, delta.T]).astype(np.float32), fc["max_frames"])


# ------------------------------------------------------------------------------------- torch
@functools.lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, hop_length: int, fmin: float, fmax: float,
                   n_mels: int, device: str):
    """torchaudio MelSpectrogram set to librosa's choices (its own defaults differ: htk scale,
    no norm, reflect padding)."""
    import torch
    import torchaudio
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, f_min=fmin, f_max=fmax,
        n_mels=n_mels, window_fn=torch.hann_window, power=2.0, center=True,
        pad_mode="constant", norm="slaney", mel_scale="slaney").to(device)


def _masked_power_to_db(mel, valid, top_db: float):
    """power_to_db(ref=max, top_db) per utterance, the max taken over its valid frames only.
    mel: [B, F, L] power; valid: [B, L] bool."""
    import torch
    valid3 = valid[:, None, :]
    ref = torch.where(valid3, mel, torch.zeros_like(mel)).amax(dim=(1, 2), keepdim=True)
    db = 10.0 * torch.log10(mel.clamp_min(AMIN)) - 10.0 * torch.log10(ref.clamp_min(AMIN))
    top = torch.where(valid3, db, torch.full_like(db, -torch.inf)).amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db, top - top_db)


def _delta_interp(db, lengths, width: int):
    """librosa.feature.delta(order=1, mode="interp") per utterance over its own frames.

    Inside, the savgol first derivative is sum(n * x[t+n]) / sum(n^2), n in [-h, h]. In "interp"
    mode the first/last h frames take the slope of a line fitted to the first/last `width`
    frames, which is exactly the centred value at frame h (or L-1-h): so compute the valid
    convolution once and clamp each frame's index into [h, L-1-h]. db: [B, F, L]."""
    import torch
    half = width // 2
    taps = torch.arange(-half, half + 1, dtype=db.dtype, device=db.device)
    kernel = (taps / taps.pow(2).sum()).view(1, 1, -1)
    batch, n_mels, n_time = db.shape
    inner = torch.nn.functional.conv1d(db.reshape(batch * n_mels, 1, n_time), kernel)
    inner = inner.view(batch, n_mels, n_time - 2 * half)
    t = torch.arange(n_time, device=db.device)[None, :]
    last = (lengths.to(db.device)[:, None] - 1 - half)
    source = torch.minimum(torch.clamp(t, min=half), last) - half          # [B, L]
    source = source.clamp(0, n_time - 2 * half - 1)                        # padding frames
    return torch.gather(inner, 2, source[:, None, :].expand(batch, n_mels, n_time))


def _pad_batch(waves: Sequence[np.ndarray]) -> np.ndarray:
    longest = max(w.shape[0] for w in waves)
    padded = np.zeros((len(waves), longest), dtype=np.float32)
    for row, wave in enumerate(waves):
        padded[row, :wave.shape[0]] = wave
    return padded


def extract_batch(waves: Sequence[np.ndarray], feat_cfg: dict, device="cpu"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Torch backend on a batch: -> (float32 [B, 2, T, F], int32 n_frames [B]).

    Waves may differ in length; each result equals `extract_features(wave, backend="torch")`
    of that wave alone (frames beyond each utterance's length are zero)."""
    import torch
    fc = feature_section(feat_cfg)
    if len(waves) == 0:
        raise KoemoInputError("extract_batch: no waves given")
    waves = [check_wave(w, fc, label=f"wave {i}") for i, w in enumerate(waves)]
    device = str(torch.device(device))
    hop, max_frames = int(fc["hop_length"]), int(fc["max_frames"])
    lengths = torch.tensor([frames_for(w.shape[0], hop) for w in waves])
    transform = _mel_transform(int(fc["sample_rate"]), int(fc["n_fft"]), hop, float(fc["fmin"]),
                               float(fc["fmax"]), int(fc["n_mels"]), device)
    with torch.inference_mode():
        audio = torch.from_numpy(_pad_batch(waves)).to(device)
        mel = transform(audio)                                             # [B, F, L]
        valid = torch.arange(mel.shape[-1], device=device)[None, :] < lengths.to(device)[:, None]
        db = _masked_power_to_db(mel, valid, float(fc["top_db"]))
        delta = _delta_interp(db, lengths, int(fc["delta_width"]))
        feats = torch.stack([db, delta], dim=1).transpose(2, 3)[:, :, :max_frames]  # [B,2,L,F]
        feats = feats * valid[:, None, :max_frames, None]
        out = torch.zeros((len(waves), 2, max_frames, feats.shape[-1]), dtype=torch.float32)
        out[:, :, :feats.shape[2]] = feats.float().cpu()
    return out.numpy(), lengths.clamp(max=max_frames).numpy().astype(np.int32)


def extract_features(wave: np.ndarray, feat_cfg: dict, backend: str = "torch"
                     ) -> tuple[np.ndarray, int]:
    """One 16 kHz mono wave -> (float32 [2, T, F], n_frames). See the module docstring."""
    fc = feature_section(feat_cfg)
    if backend == "librosa":
        return _librosa_features(check_wave(wave, fc), fc)
    if backend == "torch":
        feats, n_frames = extract_batch([wave], fc)
        return feats[0], int(n_frames[0])
    raise KoemoInputError(f"features.backend must be one of {BACKENDS}, not {backend!r}")


# ------------------------------------------------------------------------------------- store
def store_dir(workdir: str | Path, cfg: dict) -> Path:
    return Path(workdir) / STORE_SUBDIR / feature_fingerprint(cfg)


def _read_meta(directory: Path) -> dict | None:
    try:
        return json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class FeatureStore:
    """Read side of a built store: mel+delta rows by position or segment id.

    The memmap is opened lazily and dropped when pickled (DataLoader workers), so a worker
    re-opens the file instead of receiving a copy of the whole array."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = _read_meta(self.directory)
        if not meta or not meta.get("complete"):
            raise KoemoInputError(
                f"{self.directory}: not a complete feature store (missing or unfinished "
                f"{META_FILE}); build it with build_feature_store / `koemo prepare`")
        import pandas as pd
        self.meta = meta
        index = pd.read_parquet(self.directory / INDEX_FILE)
        self.segment_ids: list[str] = index["segment_id"].astype(str).tolist()
        self.n_frames: np.ndarray = index["n_frames"].to_numpy(dtype=np.int32)
        self._positions = {sid: i for i, sid in enumerate(self.segment_ids)}
        self.top_db = float(meta["features"]["top_db"])
        self._mel = None
        if tuple(self.mel.shape) != tuple(meta["shape"]) or len(self.segment_ids) != meta["shape"][0]:
            raise KoemoInputError(
                f"{self.directory / MEL_FILE}: shape {self.mel.shape} does not match {META_FILE} "
                f"{meta['shape']} and {len(self.segment_ids)} index rows; delete the folder and rebuild")

    @property
    def mel(self) -> np.ndarray:
        if self._mel is None:
            self._mel = np.lib.format.open_memmap(self.directory / MEL_FILE, mode="r")
        return self._mel

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mel"] = None
        return state

    def __len__(self) -> int:
        return len(self.segment_ids)

    def index_of(self, segment_id: str) -> int:
        try:
            return self._positions[segment_id]
        except KeyError:
            raise KoemoInputError(
                f"{self.directory}: segment {segment_id!r} is not in this feature store "
                f"({len(self)} segments); rebuild it for the current utterance table") from None

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


def open_feature_store(workdir: str | Path, cfg: dict) -> FeatureStore:
    """The complete store for this config's features under `workdir`."""
    directory = store_dir(workdir, cfg)
    meta = _read_meta(directory)
    if meta is None:
        raise KoemoInputError(
            f"{directory}: no feature store for config {cfg.get('name', '?')!r} "
            f"(fingerprint {feature_fingerprint(cfg)}); run `koemo prepare` first")
    source = data_fingerprint(workdir)
    if source is not None and meta.get("source") != source:
        raise KoemoInputError(
            f"{directory}: built from an earlier preparation of the corpus (inputs "
            f"{meta.get('source')}, now {source}); run `koemo prepare` again to rebuild it")
    return FeatureStore(directory)


def _reusable(directory: Path, fingerprint: str, segment_ids: list[str], source: str | None) -> bool:
    meta = _read_meta(directory)
    if not meta or not meta.get("complete") or meta.get("fingerprint") != fingerprint:
        return False
    if meta.get("source") != source:      # the corpus was prepared again (e.g. new wav files)
        return False
    try:
        store = FeatureStore(directory)
    except (KoemoInputError, OSError, ValueError, KeyError):
        return False
    return store.segment_ids == segment_ids


def resolve_device(cfg: dict, device=None) -> str:
    """Explicit device, else cfg.train.device; "auto" = cuda when available."""
    import torch
    wanted = device if device is not None else cfg.get("train", {}).get("device", "auto")
    if str(wanted) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(wanted)


def _probe_lengths(paths: Sequence[str], segment_ids: Sequence[str], fc: dict
                   ) -> tuple[np.ndarray, list[str]]:
    """Samples per file after resampling to the feature rate (header only), and every
    problem as '<segment id> <path>: <reason>'."""
    import soundfile as sf
    lengths = np.zeros(len(paths), dtype=np.int64)
    problems = []
    rate, need = int(fc["sample_rate"]), min_samples(fc)
    for row, (sid, path) in enumerate(zip(segment_ids, paths)):
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as err:
            reason = "file not found" if not Path(str(path)).exists() else f"unreadable audio ({err})"
            problems.append(f"{sid} {path}: {reason}")
            continue
        lengths[row] = int(np.ceil(info.frames * rate / info.samplerate))
        if lengths[row] < need:
            problems.append(
                f"{sid} {path}: too short ({info.frames / info.samplerate:.3f} s); the delta of "
                f"width {fc['delta_width']} needs >= {need / rate:.3f} s")
    return lengths, problems


def _read_wave(path: str, rate: int) -> np.ndarray:
    from koemo.audio_io import load_audio
    # Silence was judged by `prepare` (data.silent_audio); its features are those of zeros.
    wave, _ = load_audio(path, target_sample_rate=rate, allow_silence=True)
    return wave


def length_sorted_batches(lengths: np.ndarray, batch_size: int, max_samples: int | None = None
                          ) -> list[np.ndarray]:
    """Row indices grouped by similar length (little padding), at most `batch_size` rows and,
    when given, at most `max_samples` padded samples per batch (long utterances come in
    smaller batches, so peak memory stays flat)."""
    batches, current = [], []
    for row in np.argsort(lengths, kind="stable"):
        padded = (len(current) + 1) * int(lengths[row])        # ascending: row is the longest
        if current and (len(current) == batch_size or (max_samples and padded > max_samples)):
            batches.append(np.asarray(current))
            current = []
        current.append(row)
    if current:
        batches.append(np.asarray(current))
    return batches


def _create_mel_file(path: Path, shape: tuple, dtype: str) -> int:
    """Allocate the .npy file (sparse) with its header; return the byte offset of row 0."""
    mel = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)
    offset = int(mel.offset)
    del mel
    return offset


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _table_segment_ids(table) -> list[str]:
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
                        lengths: np.ndarray, fc: dict, device: str, batch_size: int,
                        progress: bool) -> np.ndarray:
    """Extract every file, batch by batch, and pwrite its row; returns n_frames per row."""
    from tqdm.auto import tqdm
    backend, rate = fc["backend"], int(fc["sample_rate"])
    n_frames = np.zeros(len(paths), dtype=np.int32)
    bar = tqdm(total=len(paths), desc=f"features ({backend}, {device})", unit="utt",
               disable=not progress)
    fd = os.open(partial, os.O_WRONLY)
    try:
        batches = length_sorted_batches(lengths, batch_size if backend == "torch" else 1,
                                        batch_size * BATCH_SECONDS * rate)
        for rows in batches:
            waves = [_read_wave(paths[r], rate) for r in rows]
            if backend == "torch":
                feats, frames = extract_batch(waves, fc, device=device)
            else:
                feats, frame = _librosa_features(check_wave(waves[0], fc, paths[rows[0]]), fc)
                feats, frames = feats[None], np.array([frame], dtype=np.int32)
            stored = feats.astype(fc["store_dtype"])
            for k, r in enumerate(rows):
                os.pwrite(fd, stored[k].tobytes(), offset + int(r) * row_bytes)
                n_frames[r] = frames[k]
            bar.update(len(rows))
        os.fsync(fd)                  # rows on disk before meta.json may say complete
    finally:
        os.close(fd)
        bar.close()
    return n_frames


def build_feature_store(table, workdir: str | Path, cfg: dict, progress: bool = True,
                        device=None, batch_size: int = 32) -> FeatureStore:
    """Features of every row of `table` (columns segment_id, wav_path) into the store.

    Idempotent: a complete store with the same fingerprint, the same segment ids (in order) and
    the same prepared inputs (`data_fingerprint` of the workdir) is reused. Memory stays
    bounded: files are read one batch at a time and rows are written
    straight to the file (pwrite, not a writable memmap whose dirty pages would all stay
    resident). Every unreadable or too-short file is listed in one KoemoInputError before
    anything is computed. A build that fails or is interrupted removes its .partial files; one
    that was killed outright leaves them for the next build, which removes them first. `device` (torch backend): None = cfg.train.device ("auto": cuda
    when available)."""
    fc = feature_section(cfg)
    segment_ids = _table_segment_ids(table)
    backend = fc["backend"]
    if backend not in BACKENDS:
        raise KoemoInputError(f"features.backend must be one of {BACKENDS}, not {backend!r}")
    fingerprint = feature_fingerprint(cfg)
    source = data_fingerprint(workdir)
    directory = store_dir(workdir, cfg)
    if _reusable(directory, fingerprint, segment_ids, source):
        return FeatureStore(directory)

    paths = table["wav_path"].astype(str).tolist()
    lengths, problems = _probe_lengths(paths, segment_ids, fc)
    if problems:
        raise KoemoInputError(
            f"{len(problems)} of {len(paths)} audio files cannot be turned into features:\n  "
            + "\n  ".join(problems))

    directory.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock
    # One builder per store; the lock sits beside the store, which holds only its own files.
    with FileLock(str(directory.with_name(directory.name + LOCK_SUFFIX))):
        if _reusable(directory, fingerprint, segment_ids, source):   # built while we waited
            return FeatureStore(directory)
        _remove_partials(directory)                  # left by a build that was killed
        try:
            _build_store_files(directory, segment_ids, paths, lengths, fc, cfg, device,
                               batch_size, progress, fingerprint, source)
        except BaseException:                        # error, Ctrl-C, SIGTERM: no half files
            _remove_partials(directory)
            raise
    return FeatureStore(directory)


def _remove_partials(directory: Path) -> None:
    for path in directory.glob("*" + PARTIAL_SUFFIX):
        path.unlink(missing_ok=True)


def _build_store_files(directory: Path, segment_ids: list[str], paths: list[str],
                       lengths: np.ndarray, fc: dict, cfg: dict, device, batch_size: int,
                       progress: bool, fingerprint: str, source: str | None) -> None:
    """Write mel.npy and index.parquet as .partial files, rename them, then meta.json."""
    (directory / META_FILE).unlink(missing_ok=True)      # from now on the store is incomplete
    # Written beside the old files and renamed at the end: a process still reading the old
    # store keeps its (unlinked) file instead of seeing it truncated under its memmap.
    partial = directory / (MEL_FILE + PARTIAL_SUFFIX)
    shape = (len(segment_ids), 2, int(fc["max_frames"]), int(fc["n_mels"]))
    offset = _create_mel_file(partial, shape, fc["store_dtype"])
    row_bytes = int(np.prod(shape[1:])) * np.dtype(fc["store_dtype"]).itemsize
    run_device = resolve_device(cfg, device) if fc["backend"] == "torch" else "cpu"
    n_frames = _write_feature_rows(partial, offset, row_bytes, paths, lengths, fc, run_device,
                                   batch_size, progress)

    import pandas as pd
    index_partial = directory / (INDEX_FILE + PARTIAL_SUFFIX)
    pd.DataFrame({"segment_id": segment_ids, "n_frames": n_frames}).to_parquet(
        index_partial, index=False)
    os.replace(partial, directory / MEL_FILE)
    os.replace(index_partial, directory / INDEX_FILE)
    _write_json_atomic(directory / META_FILE, {
        "features": dict(fc), "backend": fc["backend"], "device": run_device,
        "fingerprint": fingerprint, "source": source, "shape": list(shape),
        "dtype": str(fc["store_dtype"]), "complete": True})
