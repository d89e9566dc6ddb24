"""The fast DTW k-means path (koemo.biosignals.dtw) gives tslearn's numbers bit for bit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from koemo.biosignals import dtw
from koemo.biosignals.clustering import _import_tslearn, normalised_series

_import_tslearn()
from tslearn.barycenters import dtw_barycenter_averaging_petitjean  # noqa: E402
from tslearn.clustering import TimeSeriesKMeans  # noqa: E402
from tslearn.metrics import cdist_dtw  # noqa: E402
from tslearn.preprocessing import TimeSeriesResampler, TimeSeriesScalerMinMax  # noqa: E402
from tslearn.utils import to_time_series_dataset  # noqa: E402


def walks(n, sz, d=1, seed=0):
    """Random walks, min-max scaled like the analysis' input (shapes in [0, 1])."""
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, sz, d)), axis=1)
    X -= X.min(axis=1, keepdims=True)
    return X / X.max(axis=1, keepdims=True)


@pytest.mark.parametrize("d", [1, 2])
def test_distances_equal_tslearn_bit_for_bit(d):
    A, B = walks(30, 12, d, seed=1), walks(7, 12, d, seed=2)
    assert np.array_equal(dtw.cdist_dtw(A), cdist_dtw(A))
    assert np.array_equal(dtw.cdist_dtw(A, B), cdist_dtw(A, B))
    C = walks(5, 9, d, seed=3)                      # other length: DTW aligns any two lengths
    assert np.array_equal(dtw.cdist_dtw(A, C), cdist_dtw(A, C))


def test_dba_equals_tslearn_petitjean():
    X = walks(40, 16, seed=4)
    for init in (X[0], X[:20].mean(axis=0), np.zeros((16, 1))):
        ours = dtw.dba_petitjean(X, init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = dtw_barycenter_averaging_petitjean(X, init_barycenter=init)
        assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (5, 0), (8, 2)])
def test_kmeans_equals_tslearn(k, seed):
    X = walks(60, 12, seed=seed)
    params = dict(n_clusters=k, max_iter=20, n_init=3, max_iter_barycenter=20, random_state=seed)
    ours = dtw.make_dtw_kmeans(X, **params)
    assert type(ours).__name__ == "ExactDTWKMeans"
    ours.fit(X)
    theirs = TimeSeriesKMeans(metric="dtw", **params).fit(X)
    assert np.array_equal(ours.labels_, theirs.labels_)
    assert np.array_equal(ours.cluster_centers_, theirs.cluster_centers_)
    assert ours.inertia_ == theirs.inertia_ and ours.n_iter_ == theirs.n_iter_
    assert np.array_equal(ours.predict(X[:5]), theirs.predict(X[:5]))


def test_kmeans_with_empty_cluster_restarts_equals_tslearn():
    """Fewer distinct series than k: tslearn restarts, then gives up (inertia inf)."""
    X = np.zeros((8, 10, 1))
    X[0, 3] = 1.0
    X[1, 5] = 1.0
    for k in (2, 3, 4):
        params = dict(n_clusters=k, n_init=3, random_state=0)
        ours = dtw.make_dtw_kmeans(X, **params).fit(X)
        theirs = TimeSeriesKMeans(metric="dtw", **params).fit(X)
        assert ours.inertia_ == theirs.inertia_ or (np.isinf(ours.inertia_)
                                                    and np.isinf(theirs.inertia_))
        assert np.array_equal(ours.labels_, theirs.labels_)


def test_other_inputs_get_tslearns_own_class():
    X = walks(10, 8)
    assert type(dtw.make_dtw_kmeans(X, n_clusters=2)).__name__ == "ExactDTWKMeans"
    gappy = X.copy()
    gappy[0, -2:] = np.nan                        # variable length: tslearn's NaN padding
    assert type(dtw.make_dtw_kmeans(gappy, n_clusters=2)) is TimeSeriesKMeans
    constrained = dtw.make_dtw_kmeans(X, n_clusters=2, metric_params={"sakoe_chiba_radius": 2})
    assert type(constrained) is TimeSeriesKMeans


def test_normalised_series_equals_tslearns_resampler():
    rng = np.random.default_rng(5)
    values = [np.cumsum(rng.normal(size=rng.integers(3, 40))) + 30 for _ in range(25)]
    values += [np.full(7, 33.1), np.array([1.0, 2.0, 3.0])]
    reference = TimeSeriesScalerMinMax().fit_transform(
        TimeSeriesResampler(sz=12).fit_transform(to_time_series_dataset(values)))
    assert np.array_equal(normalised_series(values, 12), reference)
    # A NaN inside a series takes tslearn's own path, so it behaves exactly as before.
    values[0] = values[0].copy()
    values[0][1] = np.nan
    reference = TimeSeriesScalerMinMax().fit_transform(
        TimeSeriesResampler(sz=12).fit_transform(to_time_series_dataset(values)))
    np.testing.assert_array_equal(normalised_series(values, 12), reference)


# ------------------------------------------------------------------ the file reader's fast path
# The reference: _cut_segments as it was (benchmarks/bench_biosignals.py times it too).
from benchmarks.bench_biosignals import _groupby_cut as groupby_cut  # noqa: E402


def _assert_same_series(a, b):
    import pandas as pd

    assert list(a.columns) == list(b.columns)
    for column in a.columns:
        if column in ("values", "timestamps", "offsets"):
            assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[column], b[column]))
            assert len(a) == len(b)
        else:
            pd.testing.assert_series_equal(a[column], b[column], check_dtype=False)


def test_plain_reader_equals_row_by_row_reader_on_synthetic_files(tmp_path):
    """Every file koemo synth writes (EDA, TEMP with date-time stamps; IBI) takes the fast
    path and gives the row-by-row reader's samples and per-segment series exactly."""
    import pandas as pd
    from koemo.biosignals import io as bio
    from koemo.synth.biosignals import Recording, write_biosignals

    recordings = [Recording(1, script, "User001F", 1593561600.0 + 900 * script, 80.0,
                            [(f"Sess01_script{script:02d}_User001F_{i:03d}", 5.0 + 12 * i,
                              9.5 + 12 * i, 3.0) for i in range(1, 6)])
                  for script in (1, 2)]
    paths = write_biosignals(tmp_path, recordings, {"User001F": 0}, seed=0)
    checked = 0
    for path in paths:
        signal = path.parent.parent.name
        if path.stat().st_size == 0:
            continue
        fast, slow = bio._read_plain_file(path, signal), bio._read_row_by_row(path, signal)
        assert fast is not None, path
        pd.testing.assert_frame_equal(fast.samples, slow.samples, check_exact=True)
        assert (fast.start_unix, fast.rate_hz, fast.bad_rows) == (slow.start_unix, slow.rate_hz, [])
        key = (1, int(path.stem.split("_")[1][-2:]), "User001F")
        _assert_same_series(bio._cut_segments(fast, key), groupby_cut(slow, key))
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("change", [
    lambda body: body.replace(b"\n", b"\r\n"),                        # Windows line ends: fast
    lambda body: body.replace(b"0.500000,2020", b"0.500000, 2020", 1),  # space next to a comma
    lambda body: body.replace(b".250\n", b".250\n\n", 2),              # blank lines
    lambda body: body.replace(b"0.500000", b'"0.500000"', 1),          # quoted cell
    lambda body: body.replace(b"0.500000,", b"oops,", 1),             # not a number
    lambda body: body.replace(b"_001\n", b"_001,extra\n", 1),         # a field too many
    lambda body: body.replace(b"_002\n", b"_2\n", 1),                 # malformed segment id
    lambda body: body.replace(b"0.500000,", b"\xef\xbb\xbf0.5,", 1),  # non-ASCII bytes
])
def test_irregular_files_read_as_before(tmp_path, change):
    """Whatever a file holds, read_signal_file returns what the row-by-row reader returns
    (irregular files are handed to it; bad rows are still listed one by one)."""
    import pandas as pd
    from koemo.biosignals import io as bio

    path = tmp_path / "Sess01_script01_User001F.csv"
    lines = ["1591000000.000000,2020-06-01 17:26:40", "4.000000,hz"]
    for i, segment in enumerate(["", "Sess01_script01_User001F_001", "Sess01_script01_User001F_001",
                                 "", "Sess01_script01_User001F_002", ""] * 3):
        lines.append(f"{0.5 if not segment else 1.0 + i:.6f},2020-06-01 17:26:{41 + i:02d}.250"
                     + (f",{segment}" if segment else ""))
    path.write_bytes(change(("\n".join(lines) + "\n").encode()))
    ours, reference = bio.read_signal_file(path, "EDA"), bio._read_row_by_row(path, "EDA")
    pd.testing.assert_frame_equal(ours.samples, reference.samples, check_exact=True)
    assert ours.bad_rows == reference.bad_rows
    # Only the CRLF file is plain; every other one went to the row-by-row reader.
    assert (bio._read_plain_file(path, "EDA") is not None) == (b"\r\n" in path.read_bytes())
