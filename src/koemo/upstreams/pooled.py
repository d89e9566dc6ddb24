"""Pooled upstream states: per utterance, the mean over time of every layer's states, computed
once per workdir and upstream and read by every probe of the foundation study.

`W/pooled/<fingerprint>/` (the fingerprint covers the upstream's name and files, the modality,
the pooling and, for text, the token limit):
  pooled.npy     float16 [N, L, D]: row i = segment i, L = the upstream's hidden-state layers
  index.parquet  segment_id, n_frames (the frames, or tokens, each mean is over)
  meta.json      upstream, its fingerprint, shape, the prepared data's fingerprint;
                 `complete: true` written last
Built as the mel and speech-encoder stores are (koemo.audio.feature_store.build_locked): one
builder under a file lock beside the directory, rows written into a `.partial` file that is
renamed at the end, meta.json last, so an interrupted build is never taken for a complete one.
Every audio file is checked (readable, long enough) before the upstream is even loaded, and all
problems are reported together.

Audio: the mean over every encoder frame of the utterance (the upstream returns only those).
Text: the mean over the attention-masked tokens (`<cls>`, the tokens and `<sep>`; no padding).

Deviation from EmoBox, and why. EmoBox's probe (examples/sb, `SuperbBaseModel`) applies
Linear(dim, 256) and ReLU to every frame and then takes the masked mean over time; koemo's probe
(koemo.modeling.probe) takes the mean first (here, once) and applies Linear and ReLU to it.
The two differ: a ReLU of a mean is not the mean of ReLUs, and the learned layer weighting
then also acts on means. Keeping the frames instead would cost N x T x L x D x 2 bytes per
upstream: KEMDy20 (13,462 utterances, ~6 s = ~300 frames each) through a 25-layer, 1024-wide
model is ~200 GB in float16, for each of the six audio upstreams; the pooled store is
13,462 x 25 x 1024 x 2 bytes = 0.7 GB, and a probe then trains in seconds per fold.
A hub id is keyed by its name (download it to a directory to key it by its files).
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

import koemo.audio.feature_store as F
from koemo.config.fingerprints import fingerprint
from koemo.errors import KoemoInputError
from koemo.text.tokenizer import file_sha1
from koemo.upstreams.protocol import AudioUpstream

if TYPE_CHECKING:
    import pandas as pd

    from koemo.upstreams.text import TextUpstream

Report = Callable[[int, int], None]     # (utterances done, total)
_Row = tuple[int, np.ndarray, int]          # (row index, float32 [L, D] mean, frames or tokens)

POOLED_SUBDIR = "pooled"
ARRAY_FILE = "pooled.npy"
SAMPLE_RATE = 16000
MODALITIES = ("audio", "text")
POOLING = "mean over time (audio frames / unpadded tokens), per layer"
MIN_SAMPLES = 400          # 25 ms: the shortest input every audio upstream turns into a frame


class PooledStore(F.RowStore):
    """Read side of a built store: float16 [L, D] per segment."""

    ARRAY_FILE = ARRAY_FILE
    WHAT = "pooled-state store"

    @property
    def num_layers(self) -> int:
        return int(self.meta["shape"][1])

    @property
    def dim(self) -> int:
        return int(self.meta["shape"][2])

    def rows(self, segment_ids: Iterable[str]) -> np.ndarray:
        """float16 [n, L, D] of these segments, in their order."""
        index = np.fromiter((self.index_of(str(s)) for s in segment_ids), dtype=np.int64)
        return np.asarray(self.array[index])


@functools.lru_cache(maxsize=64)
def reference_fingerprint(name: str | Path) -> str:
    """A local directory: sha1 over its files (names and contents; hashed once per process);
    a hub id: the id."""
    path = Path(str(name)).expanduser()
    if not path.is_dir():
        return f"hub:{name}"
    digest = hashlib.sha1()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file_sha1(file).encode())
    return digest.hexdigest()[:16]


def pooled_key(name: str, modality: str, folder: str | Path | None = None,
               **settings: object) -> dict[str, Any]:
    """What a pooled store's contents depend on: the upstream's name as configured, the files
    it loads from (`folder`, default the name itself), the modality, the pooling and
    `settings` (e.g. the text token limit)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    return {"upstream": str(name), "files": reference_fingerprint(folder or name),
            "modality": modality, "pooling": POOLING, "dtype": "float16", **settings}


def pooled_directory(workdir: str | Path, key: dict[str, Any]) -> Path:
    return Path(workdir) / POOLED_SUBDIR / fingerprint(key, length=16)


def ensure_pooled(table: pd.DataFrame, workdir: str | Path, key: dict[str, Any],
                  load: Callable[[], Any], batch_size: int = 16, progress: bool = True,
                  report: Report | None = None) -> PooledStore:
    """The pooled store of every row of `table` (segment_id, wav_path, text) for the upstream
    `load()` returns (called only when the store must be built); a complete store with the
    same key, segment ids and prepared data is reused. `report(done, total)` is told how many
    utterances are pooled, as the pass goes (koemo.modeling.progress.PassReporter)."""
    from koemo.config.workdir import data_fingerprint

    segment_ids = F.table_segment_ids(table)
    directory, source = pooled_directory(workdir, key), data_fingerprint(workdir)

    def reusable() -> bool:
        return F.complete_for(PooledStore, directory, segment_ids, source)

    if reusable():
        return PooledStore(directory)
    paths = table["wav_path"].astype(str).tolist()
    if key["modality"] == "audio":
        _, problems = F.probe_lengths(paths, segment_ids, SAMPLE_RATE, MIN_SAMPLES,
                                      f"the audio upstream {key['upstream']}")
        if problems:
            raise KoemoInputError(f"{len(problems)} of {len(paths)} audio files cannot be "
                                  "encoded:\n  " + "\n  ".join(problems))
    texts = table["text"].astype(str).tolist() if key["modality"] == "text" else None

    def build() -> None:
        upstream = load()
        rows = (_audio_rows(upstream, paths) if texts is None
                else _text_rows(upstream, texts, batch_size))
        _write_store(directory, segment_ids, upstream, rows, key, source, progress, report)

    F.build_locked(directory, reusable, build)
    return PooledStore(directory)


def _audio_rows(upstream: AudioUpstream, paths: list[str]) -> Iterator[_Row]:
    """(row index, float32 [L, D] mean over the frames, frames) per utterance."""
    for row, path in enumerate(paths):
        states = upstream.layer_states(F.read_wave(path, SAMPLE_RATE))
        yield row, states.float().mean(dim=1).numpy(), int(states.shape[1])


def _text_rows(upstream: TextUpstream, texts: list[str], batch_size: int) -> Iterator[_Row]:
    """(row index, float32 [L, D] mean over the unpadded tokens, tokens) per transcript."""
    for start in range(0, len(texts), batch_size):
        states, mask = upstream.layer_states(texts[start:start + batch_size])
        weights = mask.float()[:, None, :, None]                       # [B, 1, T, 1]
        means = (states * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1)
        for offset in range(len(means)):
            yield start + offset, means[offset].numpy(), int(mask[offset].sum())


def _write_store(directory: Path, segment_ids: list[str], upstream: AudioUpstream | TextUpstream,
                 rows: Iterable[_Row], key: dict[str, Any], source: object,
                 progress: bool, report: Report | None = None) -> None:
    import pandas as pd
    from tqdm.auto import tqdm

    (directory / F.META_FILE).unlink(missing_ok=True)
    shape = (len(segment_ids), int(upstream.num_layers), int(upstream.dim))
    partial = directory / (ARRAY_FILE + F.PARTIAL_SUFFIX)
    offset = F.create_npy_file(partial, shape, "float16")
    row_bytes = shape[1] * shape[2] * 2
    n_frames = np.zeros(len(segment_ids), dtype=np.int32)
    fd = os.open(partial, os.O_WRONLY)
    report = report or (lambda done, total: None)
    report(0, len(segment_ids))
    try:
        bar = tqdm(rows, total=len(segment_ids), disable=not progress,
                   desc=f"pooled {key['modality']} states", unit="utt")
        for done, (row, mean, frames) in enumerate(bar):
            half = np.asarray(mean, dtype=np.float16)
            if half.shape != shape[1:] or not np.isfinite(half).all():
                raise KoemoInputError(f"{upstream.name}: segment {segment_ids[row]} gave pooled "
                                      f"states of shape {half.shape} (expected {shape[1:]}) or "
                                      "values beyond float16")
            os.pwrite(fd, half.tobytes(), offset + row * row_bytes)
            n_frames[row] = frames
            report(done + 1, len(segment_ids))
        os.fsync(fd)
    finally:
        os.close(fd)
    index_partial = directory / (F.INDEX_FILE + F.PARTIAL_SUFFIX)
    pd.DataFrame({"segment_id": segment_ids, "n_frames": n_frames}).to_parquet(index_partial,
                                                                             index=False)
    os.replace(partial, directory / ARRAY_FILE)
    os.replace(index_partial, directory / F.INDEX_FILE)
    F.write_json_atomic(directory / F.META_FILE, {
        **key, "upstream_fingerprint": getattr(upstream, "fingerprint", None),
        "source": source, "shape": list(shape), "bytes": int(np.prod(shape)) * 2,
        "complete": True})
