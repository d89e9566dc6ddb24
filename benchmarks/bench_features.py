"""Mel+delta features: the original's per-file librosa loop vs koemo's batched torch backend.

Both sides see the same synthetic KEMDy20-format corpus (`koemo.synth.write_corpus`, cached
under data/bench/) and the paper's feature sizes (n_mels 128, n_fft 2048, hop 512, T 512).
Rows:
  1. extraction only, waves already in memory: librosa one file at a time vs torch batches
     of 32 on the CPU with torch's default threads and with one thread (librosa's loop is
     single-threaded; on a shared, oversubscribed machine extra torch threads mostly wait),
     and on the GPU when torch sees one.
  2. `build_feature_store` end to end (read wav, extract, write the float16 store), each
     backend in its own subprocess, with the subprocess's peak RSS (target: < 3 GB for a
     13,000-utterance corpus); torch with default threads and with one thread.
Sizes: tiny = 12 short utterances (seconds; run by tests/test_benchmarks.py), full = 13,000
utterances of KEMDy20's length distribution (0.73-26.25 s, mean 6 s; minutes, most of it the
librosa side and writing the corpus the first time).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import REPO_ROOT, make_row, run_in_subprocess, timed

CORPUS_SIZES = {
    "tiny": dict(sessions=1, utterances_per_session=12, mean_duration=1.5, duration_range=(0.5, 2.5)),
    "full": dict(sessions=40, utterances_per_session=325, mean_duration=6.0,
                 duration_range=(0.73, 26.25)),
}
IN_MEMORY_SUBSET = {"tiny": 12, "full": 512}
REPEATS = 3
BATCH_SIZE = 32
RSS_TARGET_MB = 3000
CACHE_DIR = REPO_ROOT / "data" / "bench"


def corpus_root(size: str) -> Path:
    """The cached synthetic corpus for `size` (written once; `.complete` marks a finished one)."""
    from koemo.synth import write_corpus
    root = CACHE_DIR / f"corpus-{size}" / "KEMDy20_v1_1"
    marker = root.parent / ".complete"
    if not marker.exists():
        shutil.rmtree(root.parent, ignore_errors=True)
        root.parent.mkdir(parents=True)
        write_corpus(root, seed=0, workers=2, **CORPUS_SIZES[size])
        marker.touch()
    return root


def utterance_table(root: str | Path):
    """segment_id + wav_path of every wav in the corpus (the store needs nothing else)."""
    import pandas as pd
    paths = sorted(Path(root).glob("wav/Session*/*.wav"))
    return pd.DataFrame({"segment_id": [p.stem for p in paths], "wav_path": [str(p) for p in paths]})


def paper_features() -> dict:
    from koemo.config.load import load_config
    return load_config("paper")


def _warm_up(fc: dict, backends: tuple[str, ...], device: str = "cpu") -> None:
    """First calls pay one-off costs (librosa's numba compilation, torch's allocator/FFT plans,
    CUDA context) that a 13,000-file run amortises; keep them out of the timings."""
    from koemo.audio.features import extract_batch, extract_features
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    if "librosa" in backends:
        extract_features(wave, fc, backend="librosa")
    if "torch" in backends:
        extract_batch([wave, wave[:8000]], fc, device=device)


def _librosa_loop(waves: list[np.ndarray], fc: dict) -> None:
    from koemo.audio.features import extract_features
    for wave in waves:
        extract_features(wave, fc, backend="librosa")


def _torch_batches(waves: list[np.ndarray], fc: dict, device: str) -> None:
    from koemo.audio.feature_store import length_sorted_batches
    from koemo.audio.features import extract_batch
    for rows in length_sorted_batches(np.array([w.size for w in waves]), BATCH_SIZE):
        extract_batch([waves[i] for i in rows], fc, device=device)


def _candidates() -> list[tuple[str, str, int | None]]:
    """(label, device, torch threads or None for torch's default)."""
    import torch
    found = [(f"torch, batches of {BATCH_SIZE} (cpu, {torch.get_num_threads()} threads)", "cpu", None),
             (f"torch, batches of {BATCH_SIZE} (cpu, 1 thread)", "cpu", 1)]
    if torch.cuda.is_available():
        found.append((f"torch, batches of {BATCH_SIZE} (cuda)", "cuda", None))
    return found


def in_memory_rows(size: str, table) -> list[dict]:
    """Best of REPEATS, the sides interleaved, so a burst of load on a shared machine hits
    every side alike rather than whichever ran during it."""
    import soundfile as sf
    import torch
    fc = paper_features().features
    picked = np.random.default_rng(0).permutation(len(table))[:IN_MEMORY_SUBSET[size]]
    waves = [sf.read(p, dtype="float32")[0] for p in table["wav_path"].iloc[np.sort(picked)]]
    hours = sum(w.size for w in waves) / fc.sample_rate / 3600
    candidates = _candidates()
    for _, device, _ in candidates:
        _warm_up(fc, ("librosa", "torch"), device)
    default_threads = torch.get_num_threads()
    best = {"librosa": float("inf"), **{label: float("inf") for label, _, _ in candidates}}
    for _ in range(REPEATS):
        best["librosa"] = min(best["librosa"], timed(lambda: _librosa_loop(waves, fc))[1])
        for label, device, threads in candidates:
            torch.set_num_threads(threads or default_threads)
            try:
                best[label] = min(best[label], timed(lambda: _torch_batches(waves, fc, device))[1])
            finally:
                torch.set_num_threads(default_threads)
    return [make_row(
        f"mel+delta extraction, {len(waves)} utterances in memory", "librosa, per file (CPU)",
        best["librosa"], label, best[label],
        notes=f"{hours * 60:.1f} min of audio; {len(waves) / best['librosa']:.0f} vs "
              f"{len(waves) / best[label]:.0f} utt/s; best of {REPEATS}; target ratio >= 3 on CPU",
        utterances=len(waves)) for label, _, _ in candidates]


def build_store_job(corpus: str, workdir: str, backend: str, threads: int | None = None) -> dict:
    """Subprocess body: build the store from the corpus; report the build time alone."""
    import time
    from koemo.config.load import load_config
    from koemo.audio.feature_store import build_feature_store
    cfg = load_config("paper", [f"features.backend={backend}"])
    device = "cpu"
    if backend == "torch":
        import torch
        from koemo.audio.feature_store import resolve_device
        device = resolve_device(cfg)
        if threads:
            torch.set_num_threads(threads)
    _warm_up(cfg.features, (backend,), device)
    table = utterance_table(corpus)
    start = time.perf_counter()
    store = build_feature_store(table, workdir, cfg, progress=False)
    return {"build_s": time.perf_counter() - start, "utterances": len(store),
            "store_mb": (store.directory / "mel.npy").stat().st_size / 2**20}


STORE_SIDES = {"librosa backend": ("librosa", None),
               "torch backend (auto device, torch's default threads)": ("torch", None),
               "torch backend (auto device, 1 thread)": ("torch", 1)}


def store_rows(size: str, root: Path) -> list[dict]:
    results = {}
    for label, (backend, threads) in STORE_SIDES.items():
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="store-") as workdir:
            results[label] = run_in_subprocess("benchmarks.bench_features:build_store_job",
                                               corpus=str(root), workdir=workdir,
                                               backend=backend, threads=threads)
    baseline, *candidates = STORE_SIDES
    base = results[baseline]
    return [make_row(
        f"build_feature_store, {results[label]['utterances']} utterances (read, extract, write float16)",
        baseline, base["build_s"], label, results[label]["build_s"],
        notes=f"peak RSS of the whole process {base['peak_rss_mb']:.0f} / "
              f"{results[label]['peak_rss_mb']:.0f} MB (target < {RSS_TARGET_MB} MB); "
              f"store {results[label]['store_mb']:.0f} MB on disk",
        utterances=results[label]["utterances"], baseline_peak_rss_mb=base["peak_rss_mb"],
        candidate_peak_rss_mb=results[label]["peak_rss_mb"]) for label in candidates]


def run(size: str) -> list[dict]:
    if size not in CORPUS_SIZES:
        raise ValueError(f"size must be one of {sorted(CORPUS_SIZES)}, not {size!r}")
    root = corpus_root(size)
    return in_memory_rows(size, utterance_table(root)) + store_rows(size, root)
