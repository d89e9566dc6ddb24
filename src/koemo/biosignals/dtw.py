"""tslearn's DTW k-means, the same numbers without its per-pair Python calls.

tslearn's `TimeSeriesKMeans(metric="dtw")` spends nearly all of its time in Python, not in DTW:
every distance (k-means++ seeding, assignment, silhouette) and every DBA alignment is one Python
call to a small numba kernel, wrapped in input checks (`_ts_size` loops over the rows of each
series). At notebook 1-3's paper config (600 series of 24 points, k = 2..10, 3 starts) that is
~10^7 calls, about 100 s of one core for TEMP and EDA together.

Here the loops over pairs and series run inside numba, with the arithmetic written exactly as
tslearn's kernels (`_njit_accumulated_matrix`, `_compute_path`, `_petitjean_*` in tslearn 0.10),
and the k-means control flow (restarts, empty clusters, convergence, inertia) is tslearn's own
code: `ExactDTWKMeans` overrides only the three methods that call the slow helpers. Results are
bit-identical to tslearn's (tests/test_biosignals_dtw.py checks labels, centres, inertia and
iterations against `TimeSeriesKMeans`). Only the case analysed here takes this path: equal-length
series without NaN, no DTW constraint, k-means++ start, tslearn 0.10; anything else gets
tslearn's class unchanged (`make_dtw_kmeans`).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numba import njit

# Verified bit-identical against these tslearn releases (private methods are overridden).
VERIFIED_TSLEARN = ("0.10.",)


@njit(cache=True, nogil=True)
def _cell(cost: float, up: float, left: float, diag: float) -> float:
    """One cell of the accumulated cost, as tslearn adds it: cost, then + min of the three."""
    acc = cost
    acc += min(up, left, diag)
    return acc


@njit(cache=True, nogil=True)
def _accumulate(s1: np.ndarray, s2: np.ndarray, cum: np.ndarray) -> None:
    """Fill cum[1:, 1:] with the DTW accumulated cost matrix of s1 vs s2: tslearn's
    `_njit_accumulated_matrix` without a mask (cum[0, :] and cum[:, 0] stay inf, cum[0, 0] 0)."""
    l1, l2, d = s1.shape[0], s2.shape[0], s1.shape[1]
    for i in range(l1):
        for j in range(l2):
            dist = 0.0
            for di in range(d):
                diff = s1[i, di] - s2[j, di]
                dist += diff * diff
            cum[i + 1, j + 1] = _cell(dist, cum[i, j + 1], cum[i + 1, j], cum[i, j])


@njit(cache=True, nogil=True)
def _empty_cum(l1: int, l2: int) -> np.ndarray:
    cum = np.full((l1 + 1, l2 + 1), np.inf)
    cum[0, 0] = 0.0
    return cum


@njit(cache=True, nogil=True)
def _cdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    out = np.empty((A.shape[0], B.shape[0]))
    cum = _empty_cum(A.shape[1], B.shape[1])
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            _accumulate(A[i], B[j], cum)
            out[i, j] = np.sqrt(cum[-1, -1])
    return out


@njit(cache=True, nogil=True)
def _pdist(A: np.ndarray) -> np.ndarray:
    """Self-distances as tslearn computes them: the upper triangle, mirrored; zero diagonal."""
    n = A.shape[0]
    out = np.zeros((n, n))
    cum = _empty_cum(A.shape[1], A.shape[1])
    for i in range(n):
        for j in range(i + 1, n):
            _accumulate(A[i], A[j], cum)
            out[i, j] = np.sqrt(cum[-1, -1])
            out[j, i] = out[i, j]
    return out


@njit(cache=True, nogil=True)
def _dba_alignment(X: np.ndarray, barycenter: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One DBA assignment step (tslearn's `_petitjean_assignment`): each series' DTW distance to
    the barycenter, and the values aligned to every barycenter point, grouped by that point in
    the order tslearn appends them (series by series, along each warping path)."""
    n, sz, d = X.shape
    bsz = barycenter.shape[0]
    longest = sz + bsz - 1
    path_a = np.empty((n, longest), np.int64)
    path_b = np.empty((n, longest), np.int64)
    lengths = np.empty(n, np.int64)
    dists = np.empty(n)
    counts = np.zeros(bsz, np.int64)
    cum = _empty_cum(sz, bsz)
    acc = cum[1:, 1:]
    for i in range(n):
        _accumulate(X[i], barycenter, cum)
        dists[i] = np.sqrt(acc[-1, -1])
        a, b, k = sz - 1, bsz - 1, 0           # backtrack as tslearn's `_compute_path`
        path_a[i, 0], path_b[i, 0] = a, b
        while a != 0 or b != 0:
            if a == 0:
                b -= 1
            elif b == 0:
                a -= 1
            else:
                diag, up, left = acc[a - 1, b - 1], acc[a - 1, b], acc[a, b - 1]
                if diag <= up and diag <= left:   # numpy.argmin: the first minimum wins
                    a -= 1
                    b -= 1
                elif up <= left:
                    a -= 1
                else:
                    b -= 1
            k += 1
            path_a[i, k], path_b[i, k] = a, b
        lengths[i] = k + 1
        for m in range(k + 1):
            counts[path_b[i, m]] += 1
    starts = np.zeros(bsz, np.int64)
    for t in range(1, bsz):
        starts[t] = starts[t - 1] + counts[t - 1]
    values = np.empty((starts[-1] + counts[-1], d))
    for i in range(n):
        for m in range(lengths[i] - 1, -1, -1):    # stored end to start; tslearn walks forwards
            t = path_b[i, m]
            values[starts[t]] = X[i, path_a[i, m]]
            starts[t] += 1
    return dists, values, counts


def cdist_dtw(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """tslearn's `cdist_dtw(A, B)` (no constraint) for equal-length, NaN-free [n, sz, d] data."""
    A = np.ascontiguousarray(A, dtype=float)
    if B is None:
        return _pdist(A)
    return _cdist(A, np.ascontiguousarray(B, dtype=float))


def dba_petitjean(X: np.ndarray, init_barycenter: np.ndarray, max_iter: int = 30,
                  tol: float = 1e-5) -> np.ndarray:
    """tslearn's `dtw_barycenter_averaging_petitjean(X, init_barycenter=...)` with uniform
    weights, as `TimeSeriesKMeans` calls it (its default max_iter=30 and tol)."""
    from sklearn.exceptions import ConvergenceWarning

    X = np.ascontiguousarray(X, dtype=float)
    barycenter = np.array(init_barycenter, dtype=float)
    n = X.shape[0]
    cost_prev = np.inf
    for _ in range(max_iter):
        dists, values, counts = _dba_alignment(X, barycenter)
        cost = 0.0
        for dist in dists.tolist():      # Python floats summed in order, as tslearn does
            cost += dist ** 2
        cost /= float(n)
        # numpy.average with unit weights is sum / count; the same (m, d) slices are summed.
        ends = np.cumsum(counts)
        barycenter = np.empty((len(counts), X.shape[-1]))
        for t, (end, count) in enumerate(zip(ends.tolist(), counts.tolist())):
            barycenter[t] = values[end - count:end].sum(axis=0) / float(count)
        if abs(cost_prev - cost) < tol:
            break
        if cost_prev < cost:
            warnings.warn("DBA loss is increasing while it should not be. Stopping optimization.",
                          ConvergenceWarning)
            break
        cost_prev = cost
    return barycenter


def _kmeans_class() -> type:
    """ExactDTWKMeans, built on first use: tslearn is slow to import and warns about h5py."""
    global _EXACT_CLASS
    if _EXACT_CLASS is not None:
        return _EXACT_CLASS
    from tslearn.clustering import TimeSeriesKMeans
    from tslearn.clustering.kmeans import _k_init_metric
    from tslearn.clustering.utils import _check_full_length

    class ExactDTWKMeans(TimeSeriesKMeans):
        """TimeSeriesKMeans(metric="dtw") whose distances and DBA run in the kernels above.
        The three overrides mirror tslearn 0.10's methods line for line (dtw branch only)."""

        def _fit_one_init(self, X: np.ndarray, x_squared_norms: Any, rs: Any) -> ExactDTWKMeans:
            self.cluster_centers_ = _k_init_metric(X, self.n_clusters, cdist_metric=cdist_dtw,
                                                   random_state=rs)
            self.cluster_centers_ = _check_full_length(self.cluster_centers_)
            old_inertia = np.inf
            for it in range(self.max_iter):
                self._assign(X)
                self._update_centroids(X)
                if np.abs(old_inertia - self.inertia_) < self.tol:
                    break
                old_inertia = self.inertia_
            self._iter = it + 1
            return self

        def _transform(self, X: np.ndarray) -> np.ndarray:
            return cdist_dtw(X, self.cluster_centers_)

        def _update_centroids(self, X: np.ndarray) -> None:
            for k in range(self.n_clusters):
                self.cluster_centers_[k] = dba_petitjean(X[self.labels_ == k],
                                                         self.cluster_centers_[k])

    _EXACT_CLASS = ExactDTWKMeans
    return _EXACT_CLASS


_EXACT_CLASS: type | None = None


def exact_path_applies(X: np.ndarray) -> bool:
    """The fast path is only taken where it was verified to equal tslearn (module docstring)."""
    import tslearn

    return (tslearn.__version__.startswith(VERIFIED_TSLEARN) and X.ndim == 3
            and bool(np.isfinite(X).all()))


def make_dtw_kmeans(X: np.ndarray, **params: Any) -> Any:
    """A `TimeSeriesKMeans(metric="dtw", **params)` for X: the fast exact class when
    `exact_path_applies(X)` and no metric_params / init are given, else tslearn's own."""
    from tslearn.clustering import TimeSeriesKMeans

    plain = params.get("metric_params") is None and params.get("init", "k-means++") == "k-means++"
    cls = _kmeans_class() if plain and exact_path_applies(X) else TimeSeriesKMeans
    return cls(metric="dtw", **params)
