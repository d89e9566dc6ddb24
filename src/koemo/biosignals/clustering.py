"""Shape check of step 1-3: DTW k-means of min-max normalised series (tslearn), silhouette
per k, and the association of clusters with emotion labels (chi-square, permutation, Cramer's V).
Min-max normalisation keeps only the shape of each series, so this cannot see level differences
(levels.py does)."""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

N_PERMUTATIONS = 999
# Best of 3 k-means starts (lowest inertia): with one start the clusters, and so the chi-square
# verdict, hinged on the random initialisation (seen on the synthetic corpus: TEMP p .04-.6).
N_INIT = 3


def stratified_sample(frame: pd.DataFrame, by: str, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, each label's share kept (largest-remainder quotas), chosen
    deterministically by `seed`; original row order kept. sklearn's stratified splitters refuse
    labels with a single member, which KEMDy20's rare classes can have after filtering."""
    if len(frame) <= max_rows:
        return frame
    counts = frame[by].value_counts().sort_index()
    quota = counts * max_rows / len(frame)
    take = np.floor(quota).astype(int)
    by_remainder = (quota - take).sort_values(ascending=False, kind="stable").index
    take[by_remainder[: max_rows - int(take.sum())]] += 1
    picked = [group.sample(n=int(take[label]), random_state=seed)
              for label, group in frame.groupby(by) if take[label]]
    return frame.loc[sorted(pd.concat(picked).index)]


def _import_tslearn() -> None:
    """tslearn warns on import that the optional h5py is missing; hdf5 is never used here.
    Its numba kernels are then switched to numba's on-disk cache (see `_cache_numba_kernels`).
    Once per process: the sweep's threads call it too, and catch_warnings is not thread-safe."""
    global _TSLEARN_READY
    if _TSLEARN_READY:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="h5py not installed")
        import tslearn.barycenters  # noqa: F401
        import tslearn.clustering  # noqa: F401
        import tslearn.metrics  # noqa: F401
    _cache_numba_kernels()
    _TSLEARN_READY = True


_TSLEARN_READY = False


def _cache_numba_kernels() -> None:
    """tslearn compiles its DTW kernels with numba (`@njit`, no cache) in every new process:
    15-40 s per notebook kernel, most of notebook 1-3's time on the tiny
    config. With numba's on-disk cache switched on (before the first call) they are compiled
    once per machine and loaded in well under a second afterwards; the machine code, and so
    every result, is the same. The cache lives in tslearn's __pycache__, or in NUMBA_CACHE_DIR
    / the user cache folder where that is read-only (numba's own rules)."""
    import sys

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if not name.startswith("tslearn") or module is None:
            continue
        for obj in list(vars(module).values()):
            # numba has no public accessor for a dispatcher's cache (nor a stub for `_cache`)
            if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):  # type: ignore[attr-defined]
                try:
                    obj.enable_caching()
                except Exception:       # e.g. a kernel numba cannot cache: it compiles as before
                    pass


def _plain_series(series: list[np.ndarray], length: int) -> bool:
    """1-D, non-empty, NaN-free series (what the loader gives): every series is its whole
    length to tslearn, so resampling each one directly is exactly what it computes."""
    return length >= 2 and bool(series) and all(v.ndim == 1 and len(v) and not np.isnan(v).any()
                                                for v in series)


def normalised_series(values: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Resample every series to `length` points (linear) and min-max scale each to [0, 1];
    a flat series becomes all zeros. Returns float [n, length, 1] as tslearn expects."""
    _import_tslearn()
    from tslearn.preprocessing import TimeSeriesResampler, TimeSeriesScalerMinMax
    from tslearn.utils import to_time_series_dataset

    series = [np.asarray(v, dtype=float) for v in values]
    if _plain_series(series, length):
        # TimeSeriesResampler's own numpy.interp call per series, without its NaN-padded
        # dataset (its size checks loop in Python over every padded row: seconds at 600).
        grid = np.linspace(0, 1, length)
        resampled = np.stack([np.interp(grid, np.linspace(0, 1, len(v)), v) for v in series])
        return TimeSeriesScalerMinMax().fit_transform(resampled[:, :, None])
    dataset = to_time_series_dataset(series)
    return TimeSeriesScalerMinMax().fit_transform(TimeSeriesResampler(sz=length).fit_transform(dataset))


def _fit_k(X: np.ndarray, k: int, seed: int, max_iter: int, max_iter_barycenter: int) -> Any:
    """One k of the sweep (a joblib task: runs in a worker thread when n_jobs > 1).
    tslearn's TimeSeriesKMeans(metric="dtw"), through dtw.py's exact fast path where it applies."""
    _import_tslearn()
    from koemo.biosignals.dtw import make_dtw_kmeans

    model = make_dtw_kmeans(X, n_clusters=k, max_iter=max_iter, n_init=N_INIT,
                            max_iter_barycenter=max_iter_barycenter, random_state=seed)
    return model.fit(X)


def dtw_kmeans_sweep(X: np.ndarray, ks: Iterable[int], seed: int, max_iter: int = 20,
                     max_iter_barycenter: int = 20, n_jobs: int = 1) -> tuple[pd.DataFrame, dict]:
    """DTW k-means (tslearn, DBA barycentres) for each k, with its DTW silhouette score.

    A k that cannot be fitted (k >= number of series, or only empty clusters) gets NaN and a
    `problem` text instead of failing the whole sweep. Returns (table, fitted models by k).
    The DTW distance matrix is computed once and shared by every k's silhouette (it is the
    O(n^2) part; tslearn would otherwise recompute it per k).
    n_jobs > 1 (-1: every core) fits the ks in that many threads: each k is fitted with the
    same seed either way, so the results are identical. Threads, not processes: the DTW loops
    release the GIL (dtw.py), and a worker process would first spend seconds importing
    tslearn (slower on 2 busy cores than fitting serially; measured 15 s vs 10 s for TEMP).
    """
    _import_tslearn()
    from joblib import Parallel, delayed
    from tslearn.clustering import silhouette_score
    from tslearn.metrics import cdist_dtw

    from koemo.biosignals import dtw

    rows, models = [], {}
    distances = None
    if len(X) > 2:
        distances = dtw.cdist_dtw(X) if dtw.exact_path_applies(X) else cdist_dtw(X)
    ks = sorted(set(int(k) for k in ks))
    fittable = [k for k in ks if 2 <= k < len(X)]
    jobs = max(1, min(n_jobs, len(fittable))) if n_jobs > 0 else n_jobs
    fitted = dict(zip(fittable, Parallel(n_jobs=jobs, prefer="threads")(
        delayed(_fit_k)(X, k, seed, max_iter, max_iter_barycenter) for k in fittable)))
    for k in ks:
        row = {"k": k, "silhouette": float("nan"), "inertia": float("nan"), "n_iter": 0,
               "problem": ""}
        if not 2 <= k < len(X):
            row["problem"] = f"needs 2 <= k < number of series ({len(X)})"
            rows.append(row)
            continue
        model = fitted[k]
        if not np.isfinite(model.inertia_):
            # tslearn gives up silently (inertia inf) when every restart leaves a cluster
            # empty, e.g. fewer distinct series (flat ones are all zeros) than k.
            row["problem"] = "every restart left a cluster empty (too few distinct series?)"
            rows.append(row)
            continue
        models[k] = model
        row.update(inertia=float(model.inertia_), n_iter=int(model.n_iter_))
        n_used = len(np.unique(model.labels_))
        if n_used < 2:
            row["problem"] = "all series fell into one cluster"
        else:
            row["silhouette"] = float(silhouette_score(distances, model.labels_,
                                                       metric="precomputed"))
        rows.append(row)
    return pd.DataFrame(rows, columns=["k", "silhouette", "inertia", "n_iter", "problem"]), models


def _chi2(table: np.ndarray) -> float:
    from scipy.stats import chi2_contingency
    return float(chi2_contingency(table, correction=False).statistic)


def cluster_association(clusters: np.ndarray, labels: np.ndarray, seed: int = 0,
                        n_permutations: int = N_PERMUTATIONS) -> dict:
    """Clusters vs labels: contingency table, chi-square test (no continuity correction),
    Cramer's V, and a permutation p-value (labels shuffled against fixed clusters) because
    KEMDy20's rare emotions leave many expected counts below 5, where the chi-square
    approximation is unreliable. Fewer than two clusters or labels: statistics are NaN."""
    from scipy.stats import chi2_contingency, permutation_test
    from scipy.stats.contingency import association

    table = pd.crosstab(pd.Series(clusters, name="cluster"), pd.Series(labels, name="label"))
    out = {"contingency": table, "chi2": float("nan"), "dof": 0, "p": float("nan"),
           "p_permutation": float("nan"), "cramers_v": float("nan"),
           "low_expected_share": float("nan")}
    if min(table.shape) < 2:
        return out
    test = chi2_contingency(table.to_numpy(), correction=False)
    cluster_codes = pd.factorize(np.asarray(clusters))[0]
    label_codes, label_names = pd.factorize(np.asarray(labels))
    shape = (cluster_codes.max() + 1, len(label_names))

    def statistic(shuffled: np.ndarray) -> float:
        counts = np.zeros(shape)
        np.add.at(counts, (cluster_codes, shuffled), 1)
        return _chi2(counts)

    permuted = permutation_test((label_codes,), statistic, permutation_type="pairings",
                                n_resamples=n_permutations, alternative="greater",
                                random_state=seed)
    out.update(chi2=float(test.statistic), dof=int(test.dof), p=float(test.pvalue),
               p_permutation=float(permuted.pvalue),
               cramers_v=float(association(table.to_numpy(), method="cramer", correction=False)),
               low_expected_share=float((test.expected_freq < 5).mean()))
    return out

