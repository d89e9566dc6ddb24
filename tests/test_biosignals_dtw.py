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
