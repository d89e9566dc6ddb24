"""Writing the step 1-3 results: CSV tables, a Markdown summary and PNG figures; and the step as
notebook 1-3 runs it inside `koemo reproduce`, where a corpus without bio-signals is recorded as
"not available" instead of stopping the pipeline."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from koemo.biosignals.analysis import BiosignalReport, SignalResult, analyse
from koemo.biosignals.io import coverage_summary
from koemo.errors import BiosignalsNotAvailable

TITLE = "# Bio-signals and emotion (step 1-3 redone)"


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


def corpus_relative(coverage: pd.DataFrame, data_root: str | Path) -> pd.DataFrame:
    """Coverage with paths relative to the corpus root (in `path` and inside `problem`), so the
    written tables are the same wherever the corpus lies."""
    prefix = str(Path(data_root)) + "/"
    out = coverage.copy()
    for column in ("path", "problem"):
        out[column] = out[column].map(lambda v: v.replace(prefix, "") if isinstance(v, str) else v)
    return out


def shown_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The analysis settings as the report prints them: the corpus by its folder name only."""
    return {**settings, "data_root": Path(settings["data_root"]).name}


def write_report(report: BiosignalReport, out_dir: str | Path) -> list[Path]:
    """Write CSV tables, `report.md` and per-signal PNGs into `out_dir`; returns the paths."""
    from koemo.reporting.report import markdown_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"summary": summary_table(report),
              "coverage": corpus_relative(report.coverage, report.settings["data_root"]),
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

    lines = [TITLE, "",
             *[f"- {line}" for line in report.conclusions], "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in shown_settings(report.settings).items()),
             "",
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


@dataclass
class BiosignalOutcome:
    """What step 1-3 produced: the report, or (report None) why bio-signals are not available."""
    report: BiosignalReport | None
    summary: str                            # Markdown, as written to tables/biosignals.md
    missing: list[Path] = field(default_factory=list)   # signal folders looked for, absent
    written: list[Path] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.report is not None


def analyse_and_write(data_root: str | Path, out: str | Path, **settings) -> BiosignalOutcome:
    """Step 1-3 as notebook 1-3 runs it: `analyse(data_root, **settings)`, the full report in
    OUT/biosignals/ and a short summary in OUT/tables/biosignals.md (a section of the results
    page). A corpus without the bio-signal folders is not an error here: both files say "not
    available" and which folders were missing, so `koemo reproduce` goes on with 2-1. Every
    other input error still raises."""
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    report_dir = out / "biosignals"
    try:
        report = analyse(data_root, **settings)
    except BiosignalsNotAvailable as err:
        summary = f"**Not available.** {err}\n"
        report_dir.mkdir(parents=True, exist_ok=True)
        # Overwrites an earlier run's report.md; its CSVs and figures, if any, stay but are
        # no longer what report.md describes.
        (report_dir / "report.md").write_text(f"{TITLE}\n\n{summary}", encoding="utf-8")
        written = [report_dir / "report.md"]
        outcome = BiosignalOutcome(None, summary, err.missing, written)
    else:
        written = write_report(report, report_dir)
        summary = "\n".join([*[f"- {line}" for line in report.conclusions], "",
                             "Tables and figures: `biosignals/` (see `biosignals/report.md`).", ""])
        outcome = BiosignalOutcome(report, summary, [], written)
    (out / "tables" / "biosignals.md").write_text(summary, encoding="utf-8")
    outcome.written.append(out / "tables" / "biosignals.md")
    return outcome
