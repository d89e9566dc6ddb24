"""Notebook 1-3 (bio-signals; issue #14, target 7): `koemo.biosignals.analyse` as the notebook
runs it, koemo's fast paths against the same code with them switched off.

The baseline is what notebook 1-3 ran before: tslearn's own TimeSeriesKMeans / cdist_dtw /
TimeSeriesResampler, the row-by-row CSV reader and a groupby per segment (the fast paths are
patched out: `dtw.exact_path_applies`, `io._read_plain_file`, `io._cut_segments`,
`clustering._plain_series`). Both sides run in this process, serially (n_jobs=1), on the same
corpus and settings; `identical` says whether every table, label and centroid came out equal.
A second row times the candidate at n_jobs=1 against n_jobs=-1 (the ks in threads).

Sizes: tiny = 2 sessions x 40 utterances at tiny.yaml's settings (60 series, ks 2-3, length 12;
seconds, run by tests/test_benchmarks.py); full = KEMDy20's size (40 sessions x 336 utterances,
durations 0.73-26.25 s, mean 6 s) at paper.yaml's settings (600 series of 24 points per
signal, TEMP and EDA, ks 2-10). Only the annotation and EDA/TEMP/IBI files are written
(no wav: notebook 1-3 never reads one), cached under data/bench/.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np

from benchmarks.common import REPO_ROOT, make_row, timed

CORPUS_SIZES = {
    "tiny": dict(sessions=2, per_session=40, mean_duration=3.5, duration_range=(1.0, 8.0)),
    "full": dict(sessions=40, per_session=336, mean_duration=6.0, duration_range=(0.73, 26.25)),
}
CONFIGS = {"tiny": "tiny", "full": "paper"}
CACHE_DIR = REPO_ROOT / "data" / "bench"


def corpus_root(size: str) -> Path:
    """The cached bio-signal corpus for `size`: koemo synth's annotation and bio-signal files
    (the same bytes write_corpus writes), without the wavs (`.complete` marks a finished one)."""
    from koemo.synth import corpus
    from koemo.synth.biosignals import write_biosignals

    spec = CORPUS_SIZES[size]
    root = CACHE_DIR / f"biosignals-{size}" / "KEMDy20_v1_1"
    marker = root.parent / ".complete"
    if not marker.exists():
        shutil.rmtree(root.parent, ignore_errors=True)
        (root / "annotation").mkdir(parents=True)
        probs = corpus.normalise_class_probs(None)
        for session in range(1, spec["sessions"] + 1):
            plan = corpus.plan_session(session, 0, spec["per_session"], probs,
                                       spec["mean_duration"], spec["duration_range"])
            (root / "annotation" / f"Sess{session:02d}_eval.csv").write_bytes(
                corpus.annotation_csv(plan).encode("utf-8"))
            write_biosignals(root, corpus._recordings(plan),
                             {speaker: i for i, speaker in enumerate(plan.speakers)}, 0, None)
        marker.touch()
    return root


def _groupby_cut(parsed, key):
    """io._cut_segments as it was: one groupby group per segment."""
    import pandas as pd
    from koemo.biosignals.io import SERIES_COLUMNS

    inside = parsed.samples[parsed.samples["segment_id"] != ""]
    rows = []
    for segment_id, group in inside.groupby("segment_id", sort=False):
        row = {"segment_id": segment_id, "session": key[0], "script": key[1], "speaker": key[2],
               "n_samples": len(group), "values": group["value"].to_numpy(dtype=float),
               "timestamps": group["timestamp"].to_numpy(dtype=float)}
        if parsed.signal == "IBI":
            row["offsets"] = group["offset"].to_numpy(dtype=float)
        rows.append(row)
    return pd.DataFrame(rows, columns=SERIES_COLUMNS + (["offsets"] if parsed.signal == "IBI"
                                                        else []))


@contextlib.contextmanager
def fast_paths_off():
    """The code as notebook 1-3 ran before the fast paths (module docstring)."""
    from koemo.biosignals import clustering, dtw, io

    saved = [(dtw, "exact_path_applies"), (io, "_read_plain_file"), (io, "_cut_segments"),
             (clustering, "_plain_series")]
    saved = [(module, name, getattr(module, name)) for module, name in saved]
    dtw.exact_path_applies = lambda X: False
    io._read_plain_file = lambda path, signal: None
    io._cut_segments = _groupby_cut
    clustering._plain_series = lambda series, length: False
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def _warm_up() -> None:
    """Load both sides' compiled DTW kernels (numba's disk cache) outside the timings."""
    from koemo.biosignals.clustering import dtw_kmeans_sweep

    X = np.random.default_rng(0).random((8, 6, 1))
    dtw_kmeans_sweep(X, [2], seed=0)
    with fast_paths_off():
        dtw_kmeans_sweep(X, [2], seed=0)


def same_report(a, b) -> bool:
    """Every table, label and centroid of two BiosignalReports equal (NaN equal to NaN)."""
    import pandas as pd

    def same_frame(x, y):
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=True)
            return True
        except AssertionError:
            return False

    if a.results.keys() != b.results.keys() or not same_frame(a.coverage, b.coverage) \
            or not same_frame(a.skipped, b.skipped) or a.conclusions != b.conclusions:
        return False
    for signal, x in a.results.items():
        y = b.results[signal]
        frames = ("silhouette", "assignments", "contingency", "level_tests", "level_by_label")
        if not all(same_frame(getattr(x, f), getattr(y, f)) for f in frames):
            return False
        if not np.array_equal(x.centroids, y.centroids):
            return False
        numbers = ("chi2", "p", "p_permutation", "cramers_v", "low_expected_share")
        if not all(np.array_equal(getattr(x, f), getattr(y, f), equal_nan=True) for f in numbers):
            return False
    return True


def run(size: str) -> list[dict]:
    if size not in CORPUS_SIZES:
        raise ValueError(f"size must be one of {sorted(CORPUS_SIZES)}, not {size!r}")
    from koemo.biosignals import analyse
    from koemo.config.load import load_config

    root = corpus_root(size)
    for path in root.rglob("*.csv"):        # the same warm page cache for both sides
        path.read_bytes()
    cfg = load_config(CONFIGS[size])
    settings = cfg.biosignals
    _warm_up()

    def analysed(n_jobs: int):
        return analyse(root, settings.model_copy(update={"n_jobs": n_jobs}), cfg.seed, cfg.data)

    with fast_paths_off():
        before, before_s = timed(lambda: analysed(1))
    after, after_s = timed(lambda: analysed(1))
    threaded, threaded_s = timed(lambda: analysed(-1))
    identical = same_report(before, after) and same_report(after, threaded)
    n_series = "+".join(str(r.n_clustered) for r in after.results.values())
    shape = (f"{CORPUS_SIZES[size]['sessions'] * CORPUS_SIZES[size]['per_session']} utterances, "
             f"{CONFIGS[size]}.yaml: {n_series} series x {settings.series_length} points, "
             f"ks {settings.ks[0]}-{settings.ks[-1]}")
    return [
        make_row("biosignals analyse", "fast paths off (tslearn's own, row-by-row CSV), n_jobs=1",
                 before_s, "koemo, n_jobs=1", after_s, notes=shape, identical=identical),
        make_row("biosignals analyse threads", "koemo, n_jobs=1", after_s,
                 "koemo, n_jobs=-1 (ks in threads)", threaded_s, notes=shape,
                 identical=identical),
    ]
