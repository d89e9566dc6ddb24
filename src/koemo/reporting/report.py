"""Tables for paper/: our measurements beside the paper's reported numbers.

Every table is a pandas DataFrame; `save_tables` writes each as CSV (for machines) and Markdown
(for people). Paper values come only from `koemo.reporting.paper_numbers` and their columns or rows say
"paper (reported)"; every other number is read from a run's outputs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from koemo.config.schema import N_FOLDS, UNIMODAL_KINDS, Config, Features
from koemo.dataset.labels import data_classes
from koemo.reporting import paper_numbers as P
from koemo.reporting import claims as C
from koemo.reporting.agreement import agreement_table
from koemo.reporting.summary import BETTER_SINGLE
from koemo.reporting.uncertainty import CLASS_METRICS, REGRESSION_METRICS, PredictionCache
from koemo.dataset.prepare import NO_SIGNAL_POLICY_NOTE
from koemo.experiments.plan import mean_std, split_column_of, splits_for, with_protocol
from koemo.modeling.runs import RunDir

REPORTED = "paper (reported)"
CLASSIFICATION_METRICS = ["accuracy", "weighted_f1", "weighted_f1_batch_mean", "macro_f1", "uar"]
# Metrics with a bootstrap interval (weighted_f1_batch_mean, the paper's per-batch mean, has none)
BOOTSTRAPPED = (*CLASS_METRICS, *REGRESSION_METRICS)


# ---------------------------------------------------------------- formatting and saving
def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table; floats rounded to `digits`. Notes in `frame.attrs["notes"]`
    (why a number is missing, what a mean covers) follow the table as paragraphs."""
    notes = list(frame.attrs.get("notes", []))
    if frame.empty and not len(frame.columns):
        # a table that could not be computed says why, rather than showing nothing
        return "".join([f"Note: {note}\n\n" for note in notes]) if notes else "*(no rows)*\n"
    frame = frame.reset_index(drop=True) if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    cells = [[_fmt(v, digits) for v in row] for row in frame.itertuples(index=False)]
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += [line for note in notes for line in ("", f"Note: {note}")]
    return "\n".join(lines) + "\n"


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.{digits}f}"
    return "" if value is None else str(value)


def save_tables(tables: dict[str, pd.DataFrame], directory: str | Path, prefix: str = "") -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        stem = prefix + name.replace(" ", "_")
        frame.to_csv(directory / f"{stem}.csv", index=not isinstance(frame.index, pd.RangeIndex))
        (directory / f"{stem}.md").write_text(markdown_table(frame), encoding="utf-8")


def save_runs(runs: pd.DataFrame, path: str | Path, workdir: str | Path) -> Path:
    """A plan's runs table as CSV with each `run_dir` relative to the workdir, so the committed
    tables are the same on every machine (`load_runs` resolves them again)."""
    root = Path(workdir).resolve()
    frame = runs.copy()
    if "run_dir" in frame:
        frame["run_dir"] = [Path(d).resolve().relative_to(root).as_posix() for d in frame["run_dir"]]
    frame.to_csv(path, index=False)
    return Path(path)


def load_runs(path: str | Path, workdir: str | Path) -> pd.DataFrame:
    """A runs table written by `save_runs`, with `run_dir` absolute again under `workdir`."""
    frame = pd.read_csv(path)
    if "run_dir" in frame:
        frame["run_dir"] = [str(Path(workdir) / d) for d in frame["run_dir"]]
    return frame


# ---------------------------------------------------------------- data (1-1, 1-2)
def load_table(workdir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(workdir) / "utterances.parquet")


def data_summary(workdir: str | Path, cfg: Config) -> dict[str, pd.DataFrame]:
    table = load_table(workdir)
    report = json.loads((Path(workdir) / "prepare_report.json").read_text(encoding="utf-8"))
    classes = list(data_classes(cfg.data))
    counts = table["label"].value_counts().reindex(classes, fill_value=0)
    class_counts = pd.DataFrame({"class": classes, "utterances": counts.to_numpy(),
                                 "share": (counts / counts.sum()).round(4).to_numpy()})
    frames = _frames(table["duration"].to_numpy(), cfg.features)
    cut = cfg.features.max_frames
    lengths = pd.DataFrame([{
        "utterances": len(table), "sessions": table["session"].nunique(),
        "speakers": table["speaker"].nunique(),
        "duration_s_min": table["duration"].min(), "duration_s_mean": table["duration"].mean(),
        "duration_s_max": table["duration"].max(), "frames_min": int(frames.min()),
        "frames_max": int(frames.max()), f"share_cut_at_{cut}_frames": float((frames > cut).mean()),
    }])
    # Dropped rows and problem files per reason, as prepare counted them (nothing left out).
    reasons = pd.DataFrame(sorted(report["counts_by_reason"].items()), columns=["reason", "rows"])
    no_signal = pd.DataFrame(sorted(report["no_signal_by_reason"].items()),
                             columns=["reason", "rows"])
    no_signal.attrs["notes"] = [NO_SIGNAL_POLICY_NOTE]
    return {"class_counts": class_counts, "lengths": lengths, "dropped_by_reason": reasons,
            "no_signal": no_signal, "rater_agreement": agreement_table(table)}


def _frames(durations: np.ndarray, feats: Features) -> np.ndarray:
    """Frames per utterance with center=True: 1 + floor(samples / hop)."""
    samples = np.round(durations * feats.sample_rate).astype(int)
    return 1 + samples // feats.hop_length


def welch_tables(table: pd.DataFrame, cfg: Config) -> dict[str, pd.DataFrame]:
    """The paper's statistics: Welch ANOVA by emotion and class means, ours beside reported.

    Groups too small for Welch's test are left out of it (the `note` column names them); the
    class means still show every class with at least one row."""
    from koemo.reporting.stats import emotion_statistics

    order = sorted(data_classes(cfg.data))  # the paper lists classes alphabetically
    stats = emotion_statistics(table, order=order)
    anova = pd.DataFrame([
        {"value": value, "source": source, "F": s["F"], "df1": s["df1"], "df2": s["df2"],
         "eta_squared": s.get("eta_squared", s.get("eta_sq")), "text": s.get("text", ""),
         "note": s.get("note", "")}
        for value in ("arousal", "valence")
        for source, s in (("ours", stats[value]), (REPORTED, P.WELCH[value]))])
    means = pd.DataFrame([
        {"value": value, "source": source, **{c: src.get(c, np.nan) for c in order}}
        for value in ("arousal", "valence")
        for source, src in (("ours", {n: g["mean"] for n, g in stats[value]["groups"].items()}),
                            (REPORTED, P.CLASS_MEANS[value]))])
    if any(s["left_out"] for s in stats.values()):
        anova.attrs["notes"] = [WELCH_RULE]
    sizes = {n: g["n"] for n, g in stats["arousal"]["groups"].items()}
    single = [f"{n} ({k} row{'' if k == 1 else 's'})" for n, k in sizes.items() if k < 2]
    if single:
        means.attrs["notes"] = ["Classes with fewer than two rows: " + ", ".join(single) +
                                "; an empty class has no mean, a single row is its own mean."]
    return {"welch_anova": anova, "class_means": means}


WELCH_RULE = ("A group with fewer than two rows (or no spread) has no variance estimate, so it "
              "cannot enter Welch's test: it is left out (named in `note`) and the test compares "
              "the remaining groups (df1 = groups tested - 1, not the paper's 4). With fewer than "
              "two groups left the test is not computed.")


def split_tables(workdir: str | Path, cfg: Config) -> dict[str, pd.DataFrame]:
    from koemo.dataset.augment import plan_augmentation
    from koemo.dataset.splits import split_problem

    table = load_table(workdir)
    classes = data_classes(cfg.data)
    columns = [split_column_of(split) for split in splits_for(["paper", "cv5"])]
    rows = []
    for column in columns:
        sizes = table[column].value_counts()
        train = table[table[column] == "train"]
        augmented = len(plan_augmentation(train, cfg, cfg.seed))
        sessions = sorted(table.loc[table[column] == "test", "session"].unique().tolist())
        problem = split_problem(table, column)
        rows.append({"protocol": column.removeprefix("split_"), "train": int(sizes.get("train", 0)),
                     "valid": int(sizes.get("valid", 0)), "test": int(sizes.get("test", 0)),
                     "train_augmented": augmented,
                     "test_sessions": " ".join(str(s) for s in sessions) if column != "split_paper"
                     else "all (random utterances)",
                     "status": f"skipped: {problem}" if problem else "ok"})
    rows.append({"protocol": f"paper {REPORTED}", **P.SPLIT_SIZES,
                 "test_sessions": "all (random utterances)", "status": ""})
    sizes = pd.DataFrame(rows)
    if sizes["status"].str.startswith("skipped").any():
        sizes.attrs["notes"] = ["A fold without a test session (or without training or "
                                "validation rows) is not trained; tables over the cv5 folds "
                                "say how many folds they average."]
    per_class = (table.groupby(["split_paper", "label"]).size().unstack(fill_value=0)
                 .reindex(columns=classes, fill_value=0).reset_index())
    leakage = pd.DataFrame([{
        "protocol": column.removeprefix("split_"),
        "test speakers also in train": len(set(table.loc[table[column] == "test", "speaker"])
                                           & set(table.loc[table[column] == "train", "speaker"]))}
        for column in columns])
    return {"sizes": sizes, "paper_split_class_counts": per_class, "speaker_overlap": leakage}


# ---------------------------------------------------------------- runs (2-1 .. 5-2)
def summarise(runs: pd.DataFrame, by: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean ± std of `metrics` per group, with how many folds (splits) and runs it covers."""
    runs = with_protocol(runs)
    present = [m for m in metrics if m in runs.columns]
    table = mean_std(runs, by, present)
    folds = runs.groupby(by, sort=False)["split"].nunique().rename("n_folds").reset_index()
    table = table.merge(folds, on=by, how="left")
    # each bootstrapped metric's interval of the row's mean beside it (see reporting.claims)
    resampled = [m for m in present if m in BOOTSTRAPPED]
    table = table.merge(C.interval_columns(runs, by, resampled), on=by, how="left")
    shown = [c for m in present for c in (m, f"{m} {C.CI}") if c in table.columns]
    return table[by + shown + ["n_folds", "n_runs"]]


def fold_notes(runs: pd.DataFrame) -> list[str]:
    """Which cv5 folds the cv5 rows average over, and why the others are missing (from the
    runs table's attrs["skipped"], set by run_plan); [] when all five folds ran."""
    fold_of = {f"cv5_f{k}": k for k in range(N_FOLDS)}
    ran = sorted({fold_of[s] for s in runs.get("split", []) if s in fold_of})
    skipped = {fold_of[s]: why for s, why in runs.attrs.get("skipped", {}).items() if s in fold_of}
    if len(ran) == N_FOLDS or not (ran or skipped):
        return []
    parts = [f"cv5 rows: mean over {len(ran)} of {N_FOLDS} folds"
             + (f" (folds {_join(ran)})" if ran else "")]
    for why in dict.fromkeys(skipped.values()):
        parts.append(f"folds {_join([k for k, w in skipped.items() if w == why])} skipped: {why}")
    others = sorted(set(range(N_FOLDS)) - set(ran) - set(skipped))
    if others:
        parts.append(f"folds {_join(others)} not in this run's plan")
    return ["; ".join(parts) + "."]


def _join(numbers: Iterable[object]) -> str:
    return ", ".join(str(n) for n in numbers)


LABEL_RULE = ("Macro F1, UAR and weighted F1 of every row, the majority-class baseline "
              "included, average over one label set: the classes present in the true labels of "
              "the test set scored (a class absent from it counts in no row, predicted or not). "
              "Per-class tables and confusion matrices keep all five classes.")


def label_set_notes(runs: pd.DataFrame) -> list[str]:
    """LABEL_RULE plus, where a test set lacks classes, which ones each protocol averages over;
    [] without classifier runs."""
    if runs.empty:
        return []
    details = []
    for protocol, group in with_protocol(runs).groupby("protocol", sort=False):
        metrics = [RunDir(d).metrics() for d in group["run_dir"]]
        sets = {tuple(m.label_set or m.class_names()) for m in metrics}
        if all(len(found) == len(metrics[0].class_names()) for found in sets):
            continue
        if len(sets) == 1:
            details.append(f"{protocol}: {', '.join(next(iter(sets)))}")
        else:
            sizes = sorted(len(found) for found in sets)
            details.append(f"{protocol}: each test set its own ({sizes[0]} to {sizes[-1]} classes)")
    return [LABEL_RULE + (" Here " + "; ".join(details) + "." if details else "")]


def best_valid_loss(run_dir: str | Path) -> float:
    """Lowest validation loss in a run's log (RMSE for the regressors, as the paper reports)."""
    log = RunDir(run_dir).log()
    column = next(c for c in ("valid_loss", "val_loss", "valid_rmse") if c in log.columns)
    return float(log[column].min())


def regressor_tables(runs: pd.DataFrame, ablation: pd.DataFrame, stage: str) -> dict[str, pd.DataFrame]:
    main = summarise(runs, ["protocol", "variant"], REGRESSION_METRICS)
    main.attrs["notes"] = fold_notes(runs)
    checked = C.uncertainty_tables(runs, REGRESSION_METRICS, C.CLAIM_METRICS["regression"])
    reported = P.AUDIO_VALID_RMSE if stage == "audio" else P.TEXT_VALID_RMSE
    rows = []
    for _, run in ablation.iterrows():
        layers = int(run["variant"].split("=")[1])
        rows.append({"n_layers": layers, "valid_rmse (ours)": best_valid_loss(run["run_dir"]),
                     "test_rmse (ours)": run.get("rmse", np.nan),
                     f"test_rmse {C.CI}": C.run_interval(run, "rmse"),
                     f"valid_rmse {REPORTED}": reported.get(layers, np.nan)})
    return {"test_metrics": main, "layer_ablation": pd.DataFrame(rows), **checked}


def classifier_tables(runs: pd.DataFrame, combos: pd.DataFrame) -> dict[str, pd.DataFrame]:
    multimodal = runs[runs["stage"] == "multimodal"]
    main = summarise(multimodal, ["protocol", "variant"], CLASSIFICATION_METRICS)
    reported = {"protocol": "paper", "variant": REPORTED, "n_folds": 1, "n_runs": 1,
                **{m: P.FINAL_TEST.get(m, np.nan) for m in CLASSIFICATION_METRICS}}
    baseline = _baseline_rows(multimodal)
    main = pd.concat([main, pd.DataFrame([reported]), baseline], ignore_index=True)
    main.attrs["notes"] = (fold_notes(runs) + label_set_notes(multimodal)
                           + C.paper_value_notes(multimodal, P.FINAL_TEST, CLASS_METRICS))
    checked = C.uncertainty_tables(multimodal, CLASS_METRICS, C.CLAIM_METRICS["classification"])
    combo_rows = []
    for _, run in combos[combos["stage"] == "multimodal"].iterrows():
        audio, text = (int(part.removeprefix("audio").removeprefix("text"))
                       for part in run["variant"].split("/"))
        combo_rows.append({"audio_layers": audio, "text_layers": text,
                           "weighted_f1_batch_mean (ours)": run.get("weighted_f1_batch_mean", np.nan),
                           "weighted_f1 (ours)": run.get("weighted_f1", np.nan),
                           f"weighted_f1 {C.CI}": C.run_interval(run, "weighted_f1"),
                           f"weighted_f1_batch_mean {REPORTED}":
                               P.COMBINATION_WEIGHTED_F1.get((audio, text), np.nan)})
    return {"test_metrics": main, "per_class": per_class_table(multimodal),
            "layer_combinations": pd.DataFrame(combo_rows), **checked}



def _baseline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Majority-class baseline on each protocol's test sets (same rows as the models)."""
    rows = []
    for protocol, group in with_protocol(runs).groupby("protocol"):
        first_seed = group[group["seed"] == group["seed"].min()].drop_duplicates("split")
        scores = [RunDir(d).metrics().majority() for d in first_seed["run_dir"]]
        rows.append({"protocol": protocol, "variant": "majority class (ours)",
                     "n_folds": len(scores), "n_runs": len(scores),
                     **{m: float(np.mean([s.score(m) for s in scores])) for m in CLASS_METRICS}})
    rows.append({"protocol": "paper", "variant": f"all neutral {REPORTED}", "n_folds": 1, "n_runs": 1,
                 **P.ALL_NEUTRAL})
    return pd.DataFrame(rows)


def per_class_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-class recall and precision (mean over runs) beside the paper's recall. A class
    absent from a run's test set has no recall there: it is averaged over the runs that hold
    it (blank when none does); `support` counts its test rows over all runs."""
    rows = []
    for (protocol, variant), group in with_protocol(runs).groupby(["protocol", "variant"], sort=False):
        tables = [RunDir(d).metrics().class_table() for d in group["run_dir"]]
        for name in tables[0]:
            held = [t[name] for t in tables if t[name].support > 0]
            rows.append({"protocol": protocol, "variant": variant, "class": name,
                         "support": sum(t[name].support for t in tables),
                         "recall": np.mean([c.recall for c in held]) if held else np.nan,
                         "precision": np.mean([t[name].precision for t in tables]),
                         f"recall {REPORTED}": P.RECALL.get(name, np.nan) if protocol == "paper" else np.nan})
    return pd.DataFrame(rows)


FUSION_METRICS = ["macro_f1", "uar", "weighted_f1", "accuracy"]


def fusion_tables(runs: pd.DataFrame, cfg: Config | None = None) -> dict[str, pd.DataFrame]:
    """One row per fusion kind (mean ± std over folds and seeds) plus the majority baseline;
    `fusion_macro_f1` holds the numbers behind the figure. Without fusion runs, notes that say
    why (`cfg`: the study is off in this config's plan)."""
    classifiers = runs[runs["stage"] == "multimodal"]
    if classifiers.empty:
        return not_in_plan(cfg)
    table = summarise(classifiers, ["protocol", "classifier"], FUSION_METRICS)
    if cfg is not None and cfg.reproduce.leakage_free:    # the second score, without seen text
        from koemo.reporting.leakage import unseen_columns
        table = table.merge(unseen_columns(with_protocol(classifiers), ["protocol", "classifier"]),
                            on=["protocol", "classifier"], how="left")
    baseline = _baseline_rows(classifiers)
    baseline = baseline[baseline["variant"] == "majority class (ours)"].rename(
        columns={"variant": "classifier"})
    shown = baseline.assign(**{m: baseline[m].map(lambda v: f"{v:.3f}") for m in FUSION_METRICS})
    summary = pd.concat([table, shown.reindex(columns=table.columns)], ignore_index=True)
    by = ["protocol", "classifier"]
    numbers = mean_std(with_protocol(classifiers), by, ["macro_f1"])
    numbers = numbers[by + ["macro_f1_mean", "macro_f1_std", "n_runs"]].rename(
        columns={"macro_f1_mean": "mean", "macro_f1_std": "std"})
    numbers = pd.concat([numbers, pd.DataFrame({
        "protocol": baseline["protocol"], "classifier": baseline["classifier"],
        "mean": baseline["macro_f1"], "std": 0.0, "n_runs": baseline["n_runs"]})], ignore_index=True)
    paired = paired_fusion_gains(classifiers)
    summary.attrs["notes"] = fold_notes(runs) + label_set_notes(classifiers)
    paired.attrs["notes"] = fold_notes(runs) + paired.attrs.get("notes", [])
    return {"fusion": summary, "fusion_macro_f1": numbers, "paired": paired}


FUSION_OFF = ("The fusion study is not in this config's plan (`reproduce.fusion` is null or has "
              "no kinds, as in configs/paper_budget.yaml, which trains only what the paper's "
              "tables need); configs/paper.yaml runs it.")


NO_FUSION_SPLIT = ("No fusion run: no split of the study has train, valid and test rows in this "
                   "corpus (split sizes: notebook 1-2).")


def not_in_plan(cfg: Config | None) -> dict[str, pd.DataFrame]:
    """The fusion tables of a plan without fusion runs: a note saying why, no empty tables."""
    fusion = cfg.reproduce.fusion if cfg is not None else None
    note = FUSION_OFF if cfg is not None and not (fusion and fusion.kinds) else NO_FUSION_SPLIT
    tables = {name: pd.DataFrame() for name in ("fusion", "paired")}
    for frame in tables.values():
        frame.attrs["notes"] = [note]
    numbers = pd.DataFrame(columns=["protocol", "classifier", "mean", "std", "n_runs"])
    return {"fusion": tables["fusion"], "fusion_macro_f1": numbers, "paired": tables["paired"]}


def paired_fusion_gains(classifiers: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """Each fused classifier against each single-modality one trained on the SAME split and
    seed: pairs won and the mean/min difference. The ± of the summary includes how much folds
    differ from each other; a paired difference does not, so it says whether fusion helps."""
    runs = with_protocol(classifiers)
    wide = runs.pivot_table(index=["protocol", "split", "seed"], columns="classifier",
                            values=metric, aggfunc="first")
    if not set(UNIMODAL_KINDS) <= set(wide.columns):
        return pd.DataFrame(columns=["protocol", "classifier", "versus", "pairs", "wins",
                                     "mean_gain", "min_gain", C.CI, "p", "supported"])
    wide[BETTER_SINGLE] = wide[list(UNIMODAL_KINDS)].max(axis=1)
    rows, cache = [], PredictionCache()
    for kind in [c for c in wide.columns if c not in (*UNIMODAL_KINDS, BETTER_SINGLE)]:
        for versus in (*UNIMODAL_KINDS, BETTER_SINGLE):
            for protocol, group in wide.groupby(level="protocol", sort=False):
                gain = (group[kind] - group[versus]).dropna()
                own = runs[runs["protocol"] == protocol]
                pairs = (C.best_of_pairs(own, kind, UNIMODAL_KINDS, metric)
                         if versus == BETTER_SINGLE
                         else C.paired_runs(own, "classifier", kind, versus))
                rows.append({"protocol": protocol, "classifier": kind, "versus": versus,
                             "pairs": len(gain), "wins": int((gain > 0).sum()),
                             "mean_gain": round(float(gain.mean()), 3),
                             "min_gain": round(float(gain.min()), 3),
                             **C.test_columns(pairs, metric, cache, kind, versus)})
    frame = pd.DataFrame(rows)
    frame.attrs["notes"] = [C.CLAIMS_NOTE.replace("difference A - B", "gain (classifier - versus)")]
    return frame
