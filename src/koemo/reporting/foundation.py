"""The foundation-model tables of notebook 5-4: one per corpus and direction.

Rows, in this order: the paper's attention + LSTM classifier and the best other fusion kind
(both from the runs the fusion study 5-2 and the cross-corpus study 5-3 trained, read from
their saved runs tables), every probe, every zero-shot model (scored with its predictions
outside the study's classes excluded, and counted as errors), the majority class of the
training rows. Columns: WA (accuracy), UA (UAR), macro F1 and weighted F1, each the mean over
folds and seeds with its 95% bootstrap interval (koemo.reporting.uncertainty); macro F1 on the
test utterances whose text the run never met in training (koemo.reporting.leakage); for
zero-shot rows how many test predictions fell outside the classes; and a paired test of macro
F1 against the paper's method on the same test utterances (difference row - paper, its
interval and p-value; koemo.reporting.claims words the supported ones for the results page).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from koemo.experiments.foundation import ERRORS, EXCLUDED, MAJORITY
from koemo.experiments.plan import protocol_of
from koemo.reporting import claims as C
from koemo.reporting import uncertainty as U
from koemo.reporting.cross_corpus import IN_CORPUS, direction
from koemo.reporting.leakage import UNSEEN, UNSEEN_SHARE, unseen_columns
from koemo.reporting.report import load_runs, summarise

TABLES = {"kemdy20": "KEMDy20 session folds", "kemdy19": "KEMDy19 session folds",
          "kemdy19_to_kemdy20": "KEMDy19 -> KEMDy20", "kemdy20_to_kemdy19": "KEMDy20 -> KEMDy19"}
PAPER = "attention + LSTM (the paper's method)"
PAPER_KIND = "attention_lstm"
NOT_FUSION = (PAPER_KIND, "audio_only", "text_only")
METRICS = ["accuracy", "uar", "macro_f1", "weighted_f1"]
SHOWN = {"accuracy": "WA", "uar": "UA", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}
PAIRED_METRIC = "macro_f1"
OUTSIDE = "outside the classes (n)"
VERSUS = "macro F1 - paper"
PAPER_RUNS = ("runs_fusion.csv", "runs_cross_in_corpus.csv", "runs_cross.csv")


def table_of(split: str, main_corpus: str = "kemdy20") -> str:
    """The table a split's runs belong to: the test corpus of session folds, or a direction."""
    train, test, evaluation = direction(split, main_corpus)
    return test if evaluation == IN_CORPUS else f"{train}_to_{test}"


def fold_key(split: str) -> str:
    """`f<k>` for the k-th session fold (of any workdir), the split itself otherwise."""
    return f"f{split.rpartition('_f')[2]}" if protocol_of(split) != split else split


def paper_runs(tables_dir: str | Path, workdir: str | Path) -> pd.DataFrame:
    """The classifier runs of 5-2 and 5-3 from the runs tables they saved, with `table`."""
    frames = [load_runs(Path(tables_dir) / name, workdir) for name in PAPER_RUNS
              if (Path(tables_dir) / name).is_file() and (Path(tables_dir) / name).stat().st_size > 1]
    frames = [f for f in frames if len(f) and "stage" in f]
    if not frames:
        return pd.DataFrame(columns=["table", "classifier", "split", "seed", "run_dir"])
    runs = pd.concat(frames, ignore_index=True).drop_duplicates("run_dir")
    runs = runs[runs["stage"] == "multimodal"]
    return runs.assign(table=[table_of(s) for s in runs["split"]])


def _paper_rows(paper: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paper's method and the best other fusion kind (highest mean macro F1) of a table."""
    own = paper[paper["table"] == name]
    rows = [own[own["classifier"] == PAPER_KIND].assign(system=PAPER)]
    fusion = own[~own["classifier"].isin(NOT_FUSION)]
    if len(fusion):
        best = fusion.groupby("classifier")[PAIRED_METRIC].mean().idxmax()
        rows.append(fusion[fusion["classifier"] == best].assign(system=f"best fusion: {best}"))
    return pd.concat(rows, ignore_index=True)


def paired_runs(runs: pd.DataFrame, system: str, paper: pd.DataFrame) -> list[tuple]:
    """(split, run of `system`, paper run) on the same fold: the same seed where both have it,
    else every combination (a zero-shot model or the majority class has one run per fold)."""
    pairs = []
    mine = runs[runs["system"] == system].assign(fold=lambda f: f["split"].map(fold_key))
    theirs = paper.assign(fold=paper["split"].map(fold_key))
    for fold, group in mine.groupby("fold", sort=False):
        other = theirs[theirs["fold"] == fold]
        common = set(group["seed"]) & set(other["seed"])
        for _, a in group.iterrows():
            for _, b in other.iterrows():
                if not common or (a["seed"] == b["seed"] and a["seed"] in common):
                    pairs.append((a["split"], a["run_dir"], b["run_dir"]))
    return pairs


def _outside(runs: pd.DataFrame) -> pd.DataFrame:
    """Per system: test predictions outside the classes, summed over the folds (one seed),
    as text (blank for the rows that cannot predict outside them)."""
    first = runs.dropna(subset=["outside"]).drop_duplicates(["system", "split"])
    sums = first.groupby("system", sort=False)["outside"].sum()
    return pd.DataFrame({"system": sums.index, OUTSIDE: [str(int(v)) for v in sums]})


def nothing_inside(runs: pd.DataFrame) -> list[str]:
    """Zero-shot models scored as errors without an `excluded` row: every test prediction fell
    outside the classes, so there was nothing to score with them left out."""
    names = set(runs["system"])
    return [f"{name.replace(ERRORS, '')}: every test prediction falls outside the classes, so "
            "the row with them excluded has nothing to score." for name in dict.fromkeys(runs["system"])
            if name.endswith(ERRORS) and name.replace(ERRORS, EXCLUDED) not in names]


def system_order(systems: pd.Series) -> list[str]:
    """The table's row order (module doc): systems as they first appear, each zero-shot model's
    `excluded` row just before its `errors` row (a fold where every prediction falls outside
    the classes has no `excluded` run, so that row may first appear in a later fold), and the
    majority class last."""
    names = [n for n in dict.fromkeys(systems) if n != MAJORITY]
    base = {n: n.removesuffix(EXCLUDED).removesuffix(ERRORS) for n in names}
    first: dict[str, int] = {}
    for position, n in enumerate(names):
        first.setdefault(base[n], position)
    ordered = sorted(names, key=lambda n: (first[base[n]], n.endswith(ERRORS)))
    return ordered + ([MAJORITY] if MAJORITY in set(systems) else [])


def one_table(name: str, runs: pd.DataFrame, paper: pd.DataFrame, leakage_free: bool,
              cache: U.PredictionCache) -> tuple[pd.DataFrame, list[dict]]:
    """The table of `name` and its claim rows (each row against the paper's method)."""
    own = runs[runs["table"] == name]
    reference = _paper_rows(paper, name) if len(paper) else pd.DataFrame()
    rows = pd.concat([reference, own], ignore_index=True) if len(reference) else own
    table = summarise(rows, ["system"], METRICS)
    table = table.set_index("system").loc[system_order(rows["system"])].reset_index()
    if leakage_free:
        table = table.merge(unseen_columns(rows, ["system"]), on="system", how="left")
    table = table.merge(_outside(own), on="system", how="left")
    claims, paper_own = [], (reference[reference["system"] == PAPER] if len(reference) else reference)
    tests = []
    for system in table["system"]:
        pairs = paired_runs(rows, system, paper_own) if system != PAPER and len(paper_own) else []
        test = U.paired_test(pairs, PAIRED_METRIC, cache)
        tests.append({"system": system, VERSUS: test["difference"],
                      f"{VERSUS} {C.CI}": U.format_interval(test["ci_low"], test["ci_high"]),
                      "p": test["p"], "supported": C.winner(test, PAIRED_METRIC, system, PAPER)})
        if pairs:
            claims.append(C.claim_row(TABLES[name], system, PAPER, PAIRED_METRIC, pairs, cache))
    table = table.merge(pd.DataFrame(tests), on="system", how="left")
    counts = ["n_folds", "n_runs"]                      # last, after the paired test
    table = table[[c for c in table.columns if c not in counts] + counts].rename(columns=_renamed)
    table.attrs["notes"] = notes(len(paper_own) > 0, leakage_free) + nothing_inside(own)
    return table, claims


def _renamed(column: str) -> str:
    for metric, shown in SHOWN.items():
        if column == metric or column.startswith(f"{metric} "):
            return shown + column[len(metric):]
    return column


def foundation_tables(runs: pd.DataFrame | None, paper: pd.DataFrame,
                      leakage_free: bool = True) -> dict[str, pd.DataFrame]:
    """{<table>: the table, ..., "claims": every row against the paper's method}; notes only
    when the study ran nothing."""
    if runs is None or runs.empty:
        return not_run()
    cache, tables, claims = U.PredictionCache(), {}, []
    missing = runs.attrs.get("left_out", {})
    for name in [n for n in TABLES if n in set(runs["table"])]:
        tables[name], found = one_table(name, runs, paper, leakage_free, cache)
        tables[name].attrs["notes"] += [f"Left out: {model} ({why})." for model, why in missing.items()]
        claims += found
    frame = pd.DataFrame(claims, columns=C.CLAIM_COLUMNS)
    frame.attrs["notes"] = [C.CLAIMS_NOTE]
    return {**tables, "claims": frame}


def notes(with_paper: bool, leakage_free: bool) -> list[str]:
    text = [
        "WA = accuracy, UA = unweighted average recall; mean ± std over folds and seeds, "
        f"{C.CI}: bootstrap interval of that mean over the test utterances "
        f"({U.N_RESAMPLES} draws per fold).",
        "Probes: frozen upstream, every layer's states averaged over time (once per corpus), "
        "then a learned layer weighting (or one layer) and Linear(256)-ReLU-Linear trained per "
        "fold (EmoBox's probe applies Linear-ReLU to each frame before averaging: a deviation, "
        "see koemo.upstreams.pooled).",
        f"Zero-shot: the model's own labels mapped to the classes; `{OUTSIDE}`: test "
        "predictions that map to none of them, left out of the row marked excluded and "
        "counted wrong in the row marked as errors.",
    ]
    if leakage_free:
        text.append(f"`{_renamed(UNSEEN)}`: macro F1 on the test utterances whose text occurs in none of "
                    f"the run's training or validation rows; `{UNSEEN_SHARE}`: their share.")
    if with_paper:
        text.append(f"`{VERSUS}`: paired difference in macro F1 against the paper's method on "
                    "the same test utterances of the same folds (same seeds where both have "
                    f"them), its {C.CI} and two-sided p; `supported` names the better system "
                    "only where the interval excludes 0.")
    else:
        text.append("No run of the paper's method for this table: run notebooks 5-2 and 5-3 "
                    "first (their runs tables) for the paired column.")
    return text


FOUNDATION_OFF = ("No foundation-model study: `reproduce.foundation` is null in this config "
                  "(configs/paper.yaml runs it).")


def not_run(note: str = FOUNDATION_OFF) -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame()
    frame.attrs["notes"] = [note]
    claims = pd.DataFrame(columns=C.CLAIM_COLUMNS)
    return {"kemdy20": frame, "claims": claims}

