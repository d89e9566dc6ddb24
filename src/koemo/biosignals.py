"""Wrist bio-signals of KEMDy20 (EDA, TEMP, IBI) per utterance, and the original's step 1-3 redone.

The original clustered per-utterance wrist temperature series with DTW k-means in R (`dtwclust`)
and concluded that TEMP carries no emotion signal; EDA (sessions with gaps) and IBI (irregular
sampling) were excluded. Its input file was never published, so this module rebuilds the input
from the corpus files and COMPUTES the conclusion from the data:

- `load_biosignals(root)` cuts every file into per-utterance series by the segment id that the
  corpus writes on the samples inside annotated segments, and returns a coverage table saying
  which files are missing, empty or broken, which rows were skipped and which annotated segments
  have no samples (nothing is dropped silently).
- `analyse(root)` runs, per signal, two complementary checks:
  1. shape: min-max normalised series (resampled to a common length) clustered with DTW k-means
     (tslearn) for k in `ks` (silhouette per k) and for the reported `k`; clusters vs emotion
     labels as a contingency table, chi-square test and Cramer's V. Min-max normalisation keeps
     only the shape of each series, so this cannot see level differences.
  2. level: Kruskal-Wallis test of the per-utterance mean (raw units) by emotion, and of the same
     mean standardised within each speaker (removes between-person baselines such as skin
     temperature, which would otherwise dominate). This does not depend on clustering.
- `write_report(report, out_dir)` writes CSV tables, a Markdown summary and PNG figures.

File format (kemdy20-format.md): EDA/TEMP start with `<unix start>,<timestamp>` and
`<rate>,hz`; data rows are `value,timestamp[,segment_id]`. IBI starts with `<unix>,IBI,<ts>`;
data rows are `offset_s,ibi_s,timestamp[,segment_id]`. Rows have a varying number of fields.
"""
from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from koemo.errors import KoemoInputError
from koemo.labels import PAPER_CLASSES, classes_for, resolve_label

SIGNALS = ("EDA", "TEMP", "IBI")
# Each data row: the value columns, then an optional segment id.
DATA_FIELDS = {"EDA": ("value", "timestamp"), "TEMP": ("value", "timestamp"),
               "IBI": ("offset", "value", "timestamp")}
SIGNAL_FILE_RE = re.compile(r"^Sess(\d{2})_script(0[1-6])_(User\d{3}[MF])\.csv$")
SEGMENT_ID_RE = re.compile(r"^Sess\d{2}_script0[1-6]_User\d{3}[MF]_\d{3}$")
FILE_STATUSES = ("ok", "missing", "empty", "broken")
COVERAGE_COLUMNS = ["signal", "level", "session", "script", "speaker", "path", "segment_id",
                    "line", "status", "n_samples", "n_segments", "problem"]
SERIES_COLUMNS = ["segment_id", "session", "script", "speaker", "n_samples", "values",
                  "timestamps"]


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------

@dataclass
class SignalFile:
    """One parsed bio-signal file: its samples in file order and the rows that were skipped."""
    path: Path
    signal: str
    start_unix: float
    rate_hz: float | None            # EDA/TEMP: the declared sampling rate; IBI: None
    samples: pd.DataFrame            # line, value, timestamp, segment_id (+ offset for IBI)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)   # (line number, reason)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_preamble(path: Path, signal: str, rows: list[list[str]]) -> tuple[float, float | None, int]:
    """Check the header lines; return (unix start, rate in Hz or None, number of header lines)."""
    def broken(problem: str) -> KoemoInputError:
        return KoemoInputError(f"{path}: broken {signal} preamble: {problem}")

    if not rows:
        raise broken("no header line")
    first = [cell.strip() for cell in rows[0]]
    start = _number(first[0]) if first else None
    if signal == "IBI":
        if len(first) < 2 or start is None or first[1] != "IBI":
            raise broken(f"line 1 is {','.join(first)!r}, expected '<unix start>,IBI,<timestamp>'")
        return start, None, 1
    if len(first) != 2 or start is None:
        raise broken(f"line 1 is {','.join(first)!r}, expected '<unix start>,<timestamp>'")
    if len(rows) < 2:
        raise broken("line 2 missing, expected '<rate>,hz'")
    second = [cell.strip() for cell in rows[1]]
    rate = _number(second[0]) if second else None
    if len(second) != 2 or rate is None or rate <= 0 or second[1].lower() != "hz":
        raise broken(f"line 2 is {','.join(second)!r}, expected '<rate>,hz' (e.g. 4.000000,hz)")
    return start, rate, 2


def _timestamps_as_seconds(texts: pd.Series) -> np.ndarray:
    """Numeric timestamps stay numbers; date-time text (KEMDy20: Korean wall-clock time,
    `YYYY-MM-DD HH:MM:SS.fff`, no zone) becomes seconds since 1970-01-01 00:00 of that clock,
    so differences are exact but the values are 9 h off the unix preamble.

    Unparseable timestamps become NaN: the sample value is still usable, so the row is kept.
    """
    numbers = pd.to_numeric(texts, errors="coerce")
    if texts.empty or numbers.notna().any():
        return numbers.to_numpy(dtype=float)
    stamps = pd.to_datetime(texts, errors="coerce", format="ISO8601")
    if stamps.isna().all():          # not ISO: let pandas infer each one (slower)
        stamps = pd.to_datetime(texts, errors="coerce", format="mixed")
    seconds = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=float)


def read_signal_file(path: str | Path, signal: str) -> SignalFile:
    """Parse one EDA/TEMP/IBI file. A broken header (or a non-text file) raises KoemoInputError
    naming the file; a bad data row is skipped and listed in `bad_rows` with its line number."""
    path = Path(path)
    if signal not in DATA_FIELDS:
        raise KoemoInputError(f"unknown bio-signal {signal!r}; choose from {SIGNALS}")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise KoemoInputError(f"{path}: not a text CSV file ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise KoemoInputError(f"{path}: not valid CSV: {err}") from err
    start, rate, n_header = _parse_preamble(path, signal, rows)

    names = DATA_FIELDS[signal]
    kept: list[list[str]] = []
    bad_rows: list[tuple[int, str]] = []
    for line, row in enumerate(rows[n_header:], start=n_header + 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue                 # blank line: nothing to lose
        if len(cells) not in (len(names), len(names) + 1):
            bad_rows.append((line, f"{len(cells)} fields, expected {len(names)} or "
                                   f"{len(names) + 1} ({','.join(names)}[,segment_id])"))
            continue
        segment = cells[len(names)] if len(cells) > len(names) else ""
        if segment and not SEGMENT_ID_RE.match(segment):
            bad_rows.append((line, f"segment id {segment!r} is not SessNN_scriptMM_UserNNNX_KKK"))
            continue
        kept.append([str(line), *cells[:len(names)], segment])

    frame = pd.DataFrame(kept, columns=["line", *names, "segment_id"], dtype=str)
    frame["line"] = frame["line"].astype(int)
    numeric = ["value"] + (["offset"] if signal == "IBI" else [])
    for col in numeric:
        parsed = pd.to_numeric(frame[col], errors="coerce")
        for line, text in zip(frame.loc[parsed.isna(), "line"], frame.loc[parsed.isna(), col]):
            bad_rows.append((int(line), f"{col} {text!r} is not a number"))
        frame[col] = parsed
    frame = frame.dropna(subset=numeric).reset_index(drop=True)
    frame["timestamp"] = _timestamps_as_seconds(frame["timestamp"])
    return SignalFile(path, signal, start, rate, frame, sorted(bad_rows))


# ---------------------------------------------------------------------------------------------
# Labels (annotation files)
# ---------------------------------------------------------------------------------------------

def read_labels(data_root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All `annotation/SessNN_eval.csv` -> (segment_id, session, script, speaker, emotion_total)
    in file order, and a coverage-style table of annotation files that could not be read.

    The session comes from the file name (Sess17_eval.csv holds `Sess42...` ids); script and
    speaker come from the id. Rows whose id is malformed are reported, not kept.
    """
    from koemo.dataset.kemdy20 import (SEGMENT_ID_RE as FULL_ID_RE, read_annotations,
                                       session_of_annotation_file)

    frames, problems = [], []
    for csv_path in sorted(Path(data_root, "annotation").glob("Sess*_eval.csv")):
        try:
            session = session_of_annotation_file(csv_path)
            table = read_annotations(csv_path)
        except KoemoInputError as err:       # CorpusFileError included
            problems.append(_coverage_row("annotation", "file", path=csv_path, status="broken",
                                          problem=str(err)))
            continue
        ids = table["segment_id"].astype(str).str.strip()
        parts = ids.str.extract(FULL_ID_RE)
        for row_no, segment in zip(table.index[parts[0].isna()] + 1, ids[parts[0].isna()]):
            problems.append(_coverage_row("annotation", "row", path=csv_path, session=session,
                                          segment_id=segment, status="bad_row",
                                          problem=f"{csv_path}: data row {row_no}: segment id "
                                                  f"{segment!r} is malformed"))
        ok = parts[0].notna()
        frames.append(pd.DataFrame({
            "segment_id": ids[ok].to_numpy(), "session": session,
            "script": parts.loc[ok, 1].astype(int).to_numpy(),
            "speaker": ("User" + parts.loc[ok, 2] + parts.loc[ok, 3]).to_numpy(),
            "emotion_total": table.loc[ok, "emotion_total"].to_numpy()}))
    labels = (pd.concat(frames, ignore_index=True) if frames else
              pd.DataFrame(columns=["segment_id", "session", "script", "speaker", "emotion_total"]))
    return labels, _coverage_frame(problems)


# ---------------------------------------------------------------------------------------------
# Loading a corpus: per-utterance series + coverage
# ---------------------------------------------------------------------------------------------

def _coverage_row(signal: str, level: str, *, path: Path | str | None = None,
                  session: int | None = None, script: int | None = None,
                  speaker: str | None = None, segment_id: str | None = None,
                  line: int | None = None, status: str, n_samples: int = 0,
                  n_segments: int = 0, problem: str = "") -> dict:
    return {"signal": signal, "level": level, "session": session, "script": script,
            "speaker": speaker, "path": None if path is None else str(path),
            "segment_id": segment_id, "line": line, "status": status, "n_samples": n_samples,
            "n_segments": n_segments, "problem": problem}


def _coverage_frame(rows: list[dict]) -> pd.DataFrame:
    # Nullable integers: file-level rows have no line, annotation-level rows no script.
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS).astype(
        {"session": "Int64", "script": "Int64", "line": "Int64", "n_samples": "int64",
         "n_segments": "int64"})


def _signal_files(data_root: Path, signal: str) -> dict[tuple[int, int, str], Path]:
    """Files named SessNN_scriptMM_UserNNNX.csv under ROOT/<signal>/SessionNN/, by key."""
    return {(int(m.group(1)), int(m.group(2)), m.group(3)): path
            for path in sorted(Path(data_root, signal).glob("Session*/*.csv"))
            if (m := SIGNAL_FILE_RE.match(path.name))}


def _cut_segments(parsed: SignalFile, key: tuple[int, int, str]) -> pd.DataFrame:
    """One row per segment id in the file: its sample values and timestamps in file order."""
    session, script, speaker = key
    inside = parsed.samples[parsed.samples["segment_id"] != ""]
    rows = []
    for segment_id, group in inside.groupby("segment_id", sort=False):
        row = {"segment_id": segment_id, "session": session, "script": script,
               "speaker": speaker, "n_samples": len(group),
               "values": group["value"].to_numpy(dtype=float),
               "timestamps": group["timestamp"].to_numpy(dtype=float)}
        if parsed.signal == "IBI":
            row["offsets"] = group["offset"].to_numpy(dtype=float)
        rows.append(row)
    columns = SERIES_COLUMNS + (["offsets"] if parsed.signal == "IBI" else [])
    return pd.DataFrame(rows, columns=columns)


def _read_expected_file(path: Path, signal: str, key: tuple[int, int, str], exists: bool
                        ) -> tuple[str, str, pd.DataFrame | None, list[tuple[int, str]]]:
    """(status, problem, per-segment series or None, skipped rows) of one file of the corpus."""
    if not exists:
        return "missing", f"{path}: file not found", None, []
    if path.stat().st_size == 0:
        return "empty", f"{path}: file is empty (0 bytes)", None, []
    try:
        parsed = read_signal_file(path, signal)
    except KoemoInputError as err:
        return "broken", str(err), None, []
    problem = f"{len(parsed.bad_rows)} row(s) skipped" if parsed.bad_rows else ""
    return "ok", problem, _cut_segments(parsed, key), parsed.bad_rows


def _load_signal(data_root: Path, signal: str, labels: pd.DataFrame
                 ) -> tuple[pd.DataFrame, list[dict]]:
    """Read every file of one signal; expected files are those with annotated segments."""
    found = _signal_files(data_root, signal)
    expected = set(zip(labels["session"], labels["script"], labels["speaker"]))
    coverage, pieces = [], []
    for path in sorted(Path(data_root, signal).glob("Session*/*.csv")):
        if not SIGNAL_FILE_RE.match(path.name):
            coverage.append(_coverage_row(signal, "file", path=path, status="broken",
                                          problem=f"{path}: name is not SessNN_scriptMM_UserNNNX.csv"))
    file_status: dict[tuple[int, int, str], str] = {}
    for key in sorted(found.keys() | expected):
        session, script, speaker = key
        where = dict(session=session, script=script, speaker=speaker)
        path = found.get(key) or Path(data_root, signal, f"Session{session:02d}",
                                      f"Sess{session:02d}_script{script:02d}_{speaker}.csv")
        status, problem, segments, bad_rows = _read_expected_file(path, signal, key, key in found)
        for line, reason in bad_rows:
            coverage.append(_coverage_row(signal, "row", path=path, line=line, status="bad_row",
                                          problem=f"{path}:{line}: {reason}", **where))
        if segments is not None:
            pieces.append(segments)
        file_status[key] = status
        coverage.append(_coverage_row(
            signal, "file", path=path, status=status, problem=problem,
            n_samples=0 if segments is None else int(segments["n_samples"].sum()),
            n_segments=0 if segments is None else len(segments), **where))

    columns = SERIES_COLUMNS + (["offsets"] if signal == "IBI" else [])
    series = (pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=columns))
    duplicated = series["segment_id"].duplicated()
    for _, row in series[duplicated].iterrows():
        coverage.append(_coverage_row(signal, "segment", segment_id=row["segment_id"],
                                      session=row["session"], script=row["script"],
                                      speaker=row["speaker"], status="duplicate",
                                      n_samples=int(row["n_samples"]),
                                      problem="segment id also in an earlier file; first kept"))
    series = series[~duplicated].reset_index(drop=True)

    have = set(series["segment_id"])
    for row in labels[~labels["segment_id"].isin(have)].itertuples(index=False):
        status = file_status.get((row.session, row.script, row.speaker), "missing")
        reason = ("no sample carries this segment id" if status == "ok"
                  else f"its file is {status}")
        coverage.append(_coverage_row(signal, "segment", segment_id=row.segment_id,
                                      session=row.session, script=row.script,
                                      speaker=row.speaker, status="no_samples", problem=reason))
    return series, coverage


def load_biosignals(data_root: str | Path, signals: Iterable[str] = SIGNALS
                    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Per-utterance bio-signal series and a coverage report.

    Returns `series[signal]`: a DataFrame with one row per segment id found in that signal's files
    (segment_id, session, script, speaker, n_samples, values, timestamps [+ offsets for IBI];
    `values`/`timestamps` are float arrays in file order, timestamps in seconds), and `coverage`
    with COVERAGE_COLUMNS, one row per
      level "file":    every file found or expected (from the annotations): status ok | missing |
                       empty | broken, with the problem naming the file;
      level "row":     every data row skipped (status bad_row, file:line and the reason);
      level "segment": every annotated segment without samples (status no_samples, with why) and
                       every duplicated segment id (status duplicate).
    Annotation files that cannot be read appear with signal "annotation". A missing signal folder
    only makes its files "missing"; a missing data root raises KoemoInputError.
    """
    series, coverage, _ = _load_with_labels(data_root, signals)
    return series, coverage


def _load_with_labels(data_root: str | Path, signals: Iterable[str]
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise KoemoInputError(f"{data_root}: data root is not a directory")
    signals = tuple(signals)
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        raise KoemoInputError(f"unknown bio-signal(s) {unknown}; choose from {SIGNALS}")
    labels, coverage_rows = read_labels(data_root)
    coverage_rows = coverage_rows.to_dict("records")
    series = {}
    for signal in signals:
        series[signal], rows = _load_signal(data_root, signal, labels)
        coverage_rows.extend(rows)
    return series, _coverage_frame(coverage_rows), labels


def coverage_summary(coverage: pd.DataFrame) -> pd.DataFrame:
    """Per signal and session: files by status, and annotated segments lacking samples."""
    files = coverage[coverage["level"] == "file"]
    table = pd.crosstab([files["signal"], files["session"]], files["status"]).reindex(
        columns=FILE_STATUSES, fill_value=0)
    lacking = coverage[(coverage["level"] == "segment") & (coverage["status"] == "no_samples")]
    table["segments_without_samples"] = (
        lacking.groupby(["signal", "session"]).size().reindex(table.index, fill_value=0))
    table["segments_with_samples"] = (
        files.groupby(["signal", "session"])["n_segments"].sum().reindex(table.index, fill_value=0))
    return table.reset_index()


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------

# Defaults sized so the tiny test corpus runs in seconds and full KEMDy20 in minutes: DTW k-means
# and the DTW silhouette are O(n^2 * L^2). 24 samples = 6 s at 4 Hz, the mean utterance length.
DEFAULT_MAX_SERIES = 600
DEFAULT_SERIES_LENGTH = 24
MIN_SAMPLES = 3          # fewer samples carry no shape (KEMDy20's shortest utterance: 0.73 s)
N_PERMUTATIONS = 999
# Best of 3 k-means starts (lowest inertia): with one start the clusters, and so the chi-square
# verdict, hinged on the random initialisation (seen on the synthetic corpus: TEMP p .04-.6).
N_INIT = 3


@dataclass
class SignalResult:
    """Everything computed for one signal. Tables are DataFrames; see `analyse` for meaning."""
    signal: str
    n_labelled: int                 # utterances with a label and >= MIN_SAMPLES samples
    n_clustered: int                # after the stratified `max_series` cap
    series_length: int
    k: int
    silhouette: pd.DataFrame        # k, silhouette, inertia, n_iter, problem
    assignments: pd.DataFrame       # segment_id, speaker, label, cluster (for the reported k)
    centroids: np.ndarray           # [k, series_length] DTW barycentres of the normalised series
    contingency: pd.DataFrame       # clusters x labels, counts
    chi2: float
    dof: int
    p: float                        # asymptotic chi-square p-value
    p_permutation: float            # labels permuted against clusters (valid for sparse tables)
    cramers_v: float
    low_expected_share: float       # share of expected counts < 5 (Cochran's rule: <= 0.2)
    clusters_associated: bool
    level_tests: pd.DataFrame       # measure, H, p, epsilon_squared, n, n_groups, associated
    level_by_label: pd.DataFrame    # label, n, mean, median of the per-utterance mean level
    conclusion_clusters: str
    conclusion_level: str


@dataclass
class BiosignalReport:
    results: dict[str, SignalResult]
    coverage: pd.DataFrame          # as load_biosignals
    skipped: pd.DataFrame           # signal, segment_id, reason: utterances not analysed
    settings: dict

    @property
    def conclusions(self) -> list[str]:
        return [line for r in self.results.values()
                for line in (r.conclusion_clusters, r.conclusion_level)]


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
    """tslearn warns on import that the optional h5py is missing; hdf5 is never used here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="h5py not installed")
        import tslearn.clustering  # noqa: F401


def normalised_series(values: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Resample every series to `length` points (linear) and min-max scale each to [0, 1];
    a flat series becomes all zeros. Returns float [n, length, 1] as tslearn expects."""
    _import_tslearn()
    from tslearn.preprocessing import TimeSeriesResampler, TimeSeriesScalerMinMax
    from tslearn.utils import to_time_series_dataset

    dataset = to_time_series_dataset([np.asarray(v, dtype=float) for v in values])
    return TimeSeriesScalerMinMax().fit_transform(TimeSeriesResampler(sz=length).fit_transform(dataset))


def dtw_kmeans_sweep(X: np.ndarray, ks: Iterable[int], seed: int, max_iter: int = 20,
                     max_iter_barycenter: int = 20) -> tuple[pd.DataFrame, dict]:
    """DTW k-means (tslearn, DBA barycentres) for each k, with its DTW silhouette score.

    A k that cannot be fitted (k >= number of series, or only empty clusters) gets NaN and a
    `problem` text instead of failing the whole sweep. Returns (table, fitted models by k).
    The DTW distance matrix is computed once and shared by every k's silhouette (it is the
    O(n^2) part; tslearn would otherwise recompute it per k).
    """
    _import_tslearn()
    from tslearn.clustering import TimeSeriesKMeans, silhouette_score
    from tslearn.metrics import cdist_dtw

    rows, models = [], {}
    distances = cdist_dtw(X) if len(X) > 2 else None
    for k in sorted(set(int(k) for k in ks)):
        row = {"k": k, "silhouette": float("nan"), "inertia": float("nan"), "n_iter": 0,
               "problem": ""}
        if not 2 <= k < len(X):
            row["problem"] = f"needs 2 <= k < number of series ({len(X)})"
            rows.append(row)
            continue
        model = TimeSeriesKMeans(n_clusters=k, metric="dtw", max_iter=max_iter, n_init=N_INIT,
                                 max_iter_barycenter=max_iter_barycenter, random_state=seed)
        model.fit(X)
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


def within_speaker_z(level: pd.Series, speaker: pd.Series) -> pd.Series:
    """Standardise each utterance's level within its speaker (mean 0, sd 1). Removes the
    person's baseline (skin temperature and conductance differ far more between people than
    between emotions); speakers with < 2 utterances or no spread give NaN."""
    grouped = level.groupby(speaker)
    spread = grouped.transform("std")
    return (level - grouped.transform("mean")) / spread.where(spread > 0)


def level_tests(frame: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kruskal-Wallis tests of the per-utterance mean level by label (`frame`: label, speaker,
    level): raw units, and standardised within speaker. Effect size epsilon^2 = H / (n - 1)."""
    from scipy.stats import kruskal

    measures = {"mean_level": frame["level"],
                "within_speaker_level": within_speaker_z(frame["level"], frame["speaker"])}
    rows = []
    for name, values in measures.items():
        groups = [v.dropna().to_numpy() for _, v in values.groupby(frame["label"])]
        groups = [g for g in groups if len(g)]
        n = int(sum(len(g) for g in groups))
        row = {"measure": name, "H": float("nan"), "p": float("nan"),
               "epsilon_squared": float("nan"), "n": n, "n_groups": len(groups),
               "associated": False}
        if len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0:
            result = kruskal(*groups)
            row.update(H=float(result.statistic), p=float(result.pvalue),
                       epsilon_squared=float(result.statistic / (n - 1)),
                       associated=bool(result.pvalue < alpha))
        rows.append(row)
    by_label = (frame.groupby("label")["level"].agg(["size", "mean", "median"])
                .rename(columns={"size": "n"}).reset_index())
    return pd.DataFrame(rows), by_label


def _decisive_p(assoc: dict) -> tuple[float, str]:
    """The permutation p-value decides when Cochran's rule fails (> 20% of expected counts < 5)."""
    if assoc["low_expected_share"] > 0.2:
        return assoc["p_permutation"], "permutation"
    return assoc["p"], "chi-square"


def conclude_clusters(signal: str, k: int, n: int, assoc: dict, alpha: float) -> str:
    """One sentence computed from the test results (never written in by hand)."""
    from koemo.stats import format_p

    if math.isnan(assoc["chi2"]):
        return (f"{signal}: no test of clusters vs emotion (k={k}, n={n}): fewer than two "
                f"clusters or two emotions among the clustered utterances.")
    p, which = _decisive_p(assoc)
    verdict = "are" if p < alpha else "are not"
    return (f"{signal}: DTW k-means clusters (k={k}, n={n}) {verdict} associated with emotion at "
            f"alpha={alpha} (chi2({assoc['dof']}) = {assoc['chi2']:.2f}, {format_p(assoc['p'])}; "
            f"permutation {format_p(assoc['p_permutation'])}; Cramer's V = "
            f"{assoc['cramers_v']:.3f}; decided by the {which} p-value, "
            f"{assoc['low_expected_share']:.0%} of expected counts < 5).")


def conclude_level(signal: str, tests: pd.DataFrame, alpha: float) -> str:
    from koemo.stats import format_p

    parts = []
    for row in tests.itertuples(index=False):
        what = "raw mean level" if row.measure == "mean_level" else "within-speaker standardised level"
        if math.isnan(row.H):
            parts.append(f"{what}: not testable (n={row.n}, {row.n_groups} emotion group(s))")
            continue
        verdict = "differs" if row.associated else "does not differ"
        parts.append(f"{what} {verdict} by emotion at alpha={alpha} (Kruskal-Wallis H = "
                     f"{row.H:.2f}, {format_p(row.p)}, epsilon^2 = {row.epsilon_squared:.3f}, "
                     f"n = {row.n}, {row.n_groups} emotions)")
    return f"{signal}: per-utterance " + "; ".join(parts) + "."


def labelled_series(series: pd.DataFrame, labels: pd.DataFrame, label_policy: str,
                    classes: Sequence[str], signal: str) -> tuple[pd.DataFrame, list[dict]]:
    """Join series with their emotion label under the label policy; returns the usable rows
    (segment_id, speaker, label, values, level) and one skip record per dropped utterance."""
    merged = series.merge(labels[["segment_id", "emotion_total"]], on="segment_id", how="left")
    skipped, keep = [], []
    for row in merged.itertuples(index=False):
        if pd.isna(row.emotion_total):
            reason = "segment id not in any annotation file"
            label = None
        else:
            label, reason = resolve_label(row.emotion_total, label_policy, tuple(classes))
        if label is not None and row.n_samples < MIN_SAMPLES:
            label, reason = None, f"{row.n_samples} sample(s), fewer than {MIN_SAMPLES}"
        keep.append(label)
        if label is None:
            skipped.append({"signal": signal, "segment_id": row.segment_id, "reason": reason})
    merged["label"] = keep
    usable = merged[merged["label"].notna()].reset_index(drop=True)
    usable["speaker"] = usable["session"].astype(str) + "/" + usable["speaker"].astype(str)
    usable["level"] = [float(np.mean(v)) for v in usable["values"]]
    return usable[["segment_id", "speaker", "label", "values", "level"]], skipped


def analyse_signal(frame: pd.DataFrame, signal: str, ks: Iterable[int], k: int, seed: int,
                   max_series: int, series_length: int, alpha: float) -> SignalResult:
    """Both checks for one signal on its labelled utterances (see the module docstring).

    The level test uses every labelled utterance (cheap); clustering uses the stratified
    `max_series` sample (DTW is O(n^2)).
    """
    tests, by_label = level_tests(frame, alpha)
    sample = stratified_sample(frame, "label", max_series, seed).reset_index(drop=True)
    X = normalised_series(sample["values"], series_length) if len(sample) else \
        np.zeros((0, series_length, 1))
    sweep, models = dtw_kmeans_sweep(X, list(ks) + [k], seed)
    model = models.get(k)
    clusters = model.labels_ if model is not None else np.full(len(sample), -1)
    # Without a model every utterance is in "cluster -1": one row, so the statistics are NaN.
    assoc = cluster_association(clusters, sample["label"].to_numpy(), seed)
    assignments = sample[["segment_id", "speaker", "label"]].assign(cluster=clusters)
    p, _ = _decisive_p(assoc)
    return SignalResult(
        signal=signal, n_labelled=len(frame), n_clustered=len(sample), series_length=series_length,
        k=k, silhouette=sweep,
        assignments=assignments,
        centroids=(model.cluster_centers_[..., 0] if model is not None
                   else np.zeros((0, series_length))),
        contingency=assoc["contingency"], chi2=assoc["chi2"], dof=assoc["dof"], p=assoc["p"],
        p_permutation=assoc["p_permutation"], cramers_v=assoc["cramers_v"],
        low_expected_share=assoc["low_expected_share"],
        clusters_associated=bool(p < alpha),
        level_tests=tests, level_by_label=by_label,
        conclusion_clusters=conclude_clusters(signal, k, len(sample), assoc, alpha),
        conclusion_level=conclude_level(signal, tests, alpha))


def analyse(data_root: str | Path, signals: Iterable[str] = ("TEMP", "EDA"),
            ks: Iterable[int] = range(2, 11), k: int = 5, seed: int = 0,
            max_series: int = DEFAULT_MAX_SERIES, series_length: int = DEFAULT_SERIES_LENGTH,
            alpha: float = 0.05, label_policy: str = "paper5",
            classes: Sequence[str] = PAPER_CLASSES) -> BiosignalReport:
    """The original's step 1-3, redone: do TEMP/EDA carry emotion? (module docstring).

    Per signal: labelled utterances (label policy as the models use; ties and other classes
    skipped and listed), a Kruskal-Wallis level test over all of them, then DTW k-means of the
    min-max normalised series on a stratified sample of at most `max_series` utterances,
    resampled to `series_length` points: silhouette for every k in `ks`, and for `k` the
    contingency table with emotion, chi-square, permutation p-value and Cramer's V.
    The conclusion strings are computed from these results at level `alpha`.
    """
    if max_series < 2 or series_length < 2:
        raise KoemoInputError("max_series and series_length must be at least 2")
    signals = tuple(signals)
    series, coverage, labels = _load_with_labels(data_root, signals)
    if labels.empty:
        raise KoemoInputError(f"{Path(data_root) / 'annotation'}: no readable SessNN_eval.csv; "
                              "emotion labels are needed for the analysis")
    classes = classes_for(label_policy, classes)
    results, skipped = {}, []
    for signal in signals:
        frame, dropped = labelled_series(series[signal], labels, label_policy, classes, signal)
        skipped.extend(dropped)
        results[signal] = analyse_signal(frame, signal, ks, k, seed, max_series, series_length,
                                         alpha)
    settings = {"data_root": str(data_root), "signals": list(signals), "ks": list(ks), "k": k,
                "seed": seed, "max_series": max_series, "series_length": series_length,
                "alpha": alpha, "label_policy": label_policy, "classes": list(classes),
                "min_samples": MIN_SAMPLES, "n_init": N_INIT, "n_permutations": N_PERMUTATIONS}
    return BiosignalReport(results, coverage,
                           pd.DataFrame(skipped, columns=["signal", "segment_id", "reason"]),
                           settings)


# ---------------------------------------------------------------------------------------------
# Writing tables and figures
# ---------------------------------------------------------------------------------------------

def plot_centroids(result: SignalResult, path: Path) -> Path:
    from matplotlib.figure import Figure   # no pyplot: no global backend state (Agg-safe)

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    sizes = result.assignments["cluster"].value_counts()
    for i, centroid in enumerate(result.centroids):
        ax.plot(centroid, label=f"cluster {i} (n={sizes.get(i, 0)})")
    ax.set(title=f"{result.signal}: DTW k-means centroids (k={result.k})",
           xlabel=f"resampled time step (of {result.series_length})", ylabel="min-max level")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def plot_silhouette(result: SignalResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(result.silhouette["k"], result.silhouette["silhouette"], marker="o")
    ax.set(title=f"{result.signal}: DTW silhouette by k (n={result.n_clustered})",
           xlabel="k (clusters)", ylabel="average silhouette")
    fig.savefig(path, dpi=120)
    return path


def summary_table(report: BiosignalReport) -> pd.DataFrame:
    """One row per signal: sizes, the cluster association and both level tests."""
    rows = []
    for r in report.results.values():
        level = r.level_tests.set_index("measure")
        rows.append({"signal": r.signal, "n_labelled": r.n_labelled, "n_clustered": r.n_clustered,
                     "k": r.k, "silhouette_at_k": _silhouette_at(r), "chi2": r.chi2, "dof": r.dof,
                     "p": r.p, "p_permutation": r.p_permutation, "cramers_v": r.cramers_v,
                     "clusters_associated": r.clusters_associated,
                     **{f"{m}_{c}": level.loc[m, c] for m in level.index
                        for c in ("H", "p", "epsilon_squared", "associated")}})
    return pd.DataFrame(rows)


def _silhouette_at(result: SignalResult) -> float:
    match = result.silhouette.loc[result.silhouette["k"] == result.k, "silhouette"]
    return float(match.iloc[0]) if len(match) else float("nan")


def write_report(report: BiosignalReport, out_dir: str | Path) -> list[Path]:
    """Write CSV tables, `report.md` and per-signal PNGs into `out_dir`; returns the paths."""
    from koemo.report import markdown_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"summary": summary_table(report), "coverage": report.coverage,
              "coverage_summary": coverage_summary(report.coverage), "skipped": report.skipped}
    for signal, r in report.results.items():
        tables[f"{signal}_silhouette"] = r.silhouette
        tables[f"{signal}_contingency"] = r.contingency.reset_index()
        tables[f"{signal}_level_tests"] = r.level_tests
        tables[f"{signal}_level_by_label"] = r.level_by_label
        tables[f"{signal}_assignments"] = r.assignments
    written = []
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    for signal, r in report.results.items():
        if len(r.centroids):
            written.append(plot_centroids(r, out / f"{signal}_centroids.png"))
        written.append(plot_silhouette(r, out / f"{signal}_silhouette.png"))

    lines = ["# Bio-signals and emotion (step 1-3 redone)", "",
             *[f"- {line}" for line in report.conclusions], "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()), "",
             "## Coverage", "", markdown_table(tables["coverage_summary"]),
             f"Utterances not analysed: {len(report.skipped)} (see skipped.csv); coverage "
             f"problems: {int((report.coverage['status'] != 'ok').sum())} (see coverage.csv).", ""]
    for signal, r in report.results.items():
        lines += [f"## {signal}", "", r.conclusion_clusters, "", r.conclusion_level, "",
                  "### Silhouette by k", "", markdown_table(r.silhouette),
                  f"### Clusters x emotion (k={r.k})", "", markdown_table(r.contingency),
                  "### Level by emotion", "", markdown_table(r.level_by_label),
                  markdown_table(r.level_tests)]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    written.append(out / "report.md")
    return written
