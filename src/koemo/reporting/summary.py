"""The headline figures of a results folder (what `koemo reproduce --out DIR` wrote), for
`koemo summary`:

- `comparison(run, committed)`: a run beside the committed results, figure by figure
  (`make demo` prints it after writing its own, git-ignored folder);
- `paper_readme(results)`: paper/README.md, every figure in it read from the committed demo's
  tables (`make demo-refresh` writes it; a test checks the committed page is what this writes).

The figures: macro F1 of each classifier of the fusion study on the five session folds (cv5),
how often each fused classifier beats the better single modality of the same fold, the
regressors' Pearson r, the rows prepare dropped and the notebooks' time. A figure whose table a
run did not write (e.g. `reproduce --only`) shows as missing, never as a number.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from koemo.errors import KoemoInputError
from koemo.modeling.runs import CONFIG_FILE, RECORD_FILE

PROTOCOL = "cv5"
VARIANTS = ("corrected", "faithful")
BETTER_SINGLE = "better single modality"
FUSION_MACRO_F1 = "tables/fusion_fusion_macro_f1.csv"
FUSION_PAIRED = "tables/fusion_paired.csv"
REGRESSOR_TABLES = {"audio": "tables/audio_test_metrics.csv", "text": "tables/text_test_metrics.csv"}
DROPPED = "tables/data_dropped_by_reason.csv"
NO_SIGNAL = "tables/data_no_signal.csv"
TIMINGS = "timings.json"
NAMES = {"audio_only": "audio only", "text_only": "text only",
         "attention_lstm": "attention + LSTM (paper)", "majority class (ours)": "majority"}
MISSING = "-"
DEMO = "paper/demo"             # the committed demo run paper/README.md describes
VARIES = ("Synthetic numbers: they differ from machine to machine (the CPU's kernels change the "
          "order of floating-point sums; docs/reproducibility.md) and say nothing of the real "
          "corpora. The ranges measured so far are in README.md, \"Results so far\". The committed "
          "results change only by `make demo-refresh`.")


@dataclass(frozen=True)
class Headline:
    """The headline figures of one results folder (each empty when its table is absent)."""
    macro_f1: dict[str, tuple[float, float]] = field(default_factory=dict)  # cv5 mean, std
    paired: dict[str, dict] = field(default_factory=dict)       # vs the better single modality
    pearson_r: dict[tuple[str, str], str] = field(default_factory=dict)     # (stage, variant)
    dropped: dict[str, int] = field(default_factory=dict)       # reason -> rows
    no_signal: dict[str, int] = field(default_factory=dict)     # reason -> recordings
    seconds: float | None = None                                # the notebooks' time


def _csv(results: Path, name: str) -> pd.DataFrame | None:
    path = results / name
    return pd.read_csv(path) if path.is_file() else None


def _counts(frame: pd.DataFrame | None) -> dict[str, int]:
    return {} if frame is None else dict(zip(frame["reason"], frame["rows"].astype(int)))


def read_headline(results: str | Path) -> Headline:
    """The figures of `results`; a folder without any of their tables is an error."""
    results = Path(results)
    fusion, paired = _csv(results, FUSION_MACRO_F1), _csv(results, FUSION_PAIRED)
    macro_f1, wins = {}, {}
    if fusion is not None:
        fusion = fusion[fusion["protocol"] == PROTOCOL]
        macro_f1 = {r.classifier: (float(r.mean), float(r.std)) for r in fusion.itertuples()}
    if paired is not None:
        paired = paired[(paired["protocol"] == PROTOCOL) & (paired["versus"] == BETTER_SINGLE)]
        wins = {r["classifier"]: r for r in paired.fillna({"supported": ""}).to_dict("records")}
    pearson = {}
    for stage, name in REGRESSOR_TABLES.items():
        frame = _csv(results, name)
        for r in [] if frame is None else frame[frame["protocol"] == PROTOCOL].itertuples():
            pearson[(stage, r.variant)] = str(r.pearson_r)
    timings = results / TIMINGS
    seconds = sum(json.loads(timings.read_text(encoding="utf-8")).values()) \
        if timings.is_file() else None
    found = Headline(macro_f1, wins, pearson, _counts(_csv(results, DROPPED)),
                     _counts(_csv(results, NO_SIGNAL)), seconds)
    if found == Headline():
        raise KoemoInputError(f"{results}: no results of `koemo reproduce` here (none of "
                              f"{FUSION_MACRO_F1}, {FUSION_PAIRED}, {TIMINGS}, ...)")
    return found


# ---------------------------------------------------------------- formatting
def name_of(classifier: str) -> str:
    return NAMES.get(classifier, classifier)


def mean_std(value: tuple[float, float] | None) -> str:
    return MISSING if value is None else f"{value[0]:.3f} ± {value[1]:.3f}"


def wins_of(row: dict | None) -> str:
    return MISSING if row is None else f"{int(row['wins'])} of {int(row['pairs'])}"


def minutes(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds / 60:.1f} min"


def _union(first: dict, second: dict) -> list:
    return list(first) + [k for k in second if k not in first]


def comparison_rows(run: Headline, committed: Headline) -> list[tuple[str, str, str]]:
    """(figure, committed, this run), in the committed folder's order."""
    rows = [(f"macro F1, {name_of(c)} ({PROTOCOL})", mean_std(committed.macro_f1.get(c)),
             mean_std(run.macro_f1.get(c))) for c in _union(committed.macro_f1, run.macro_f1)]
    rows += [(f"{name_of(c)}: folds won against the {BETTER_SINGLE}",
              wins_of(committed.paired.get(c)), wins_of(run.paired.get(c)))
             for c in _union(committed.paired, run.paired)]
    rows += [(f"{stage} regressor Pearson r ({PROTOCOL}, {variant})",
              committed.pearson_r.get((stage, variant), MISSING),
              run.pearson_r.get((stage, variant), MISSING))
             for stage, variant in _union(committed.pearson_r, run.pearson_r)]
    rows.append(("the notebooks' time", minutes(committed.seconds), minutes(run.seconds)))
    return rows


def comparison(run: str | Path, committed: str | Path) -> str:
    """This run beside the committed results: a Markdown table and what to read it with."""
    rows = comparison_rows(read_headline(run), read_headline(committed))
    lines = [f"This run ({run}) beside the committed results ({committed}):", "",
             "| figure | committed | this run |", "|---|---:|---:|"]
    lines += [f"| {figure} | {old} | {new} |" for figure, old, new in rows]
    return "\n".join(lines + ["", _wrap(VARIES)]) + "\n"


# ---------------------------------------------------------------- paper/README.md
INTRO = f"""# paper/

Results written by `koemo reproduce` (the notebooks 1-1 .. 5-3): Markdown + CSV tables in
`tables/`, PNG figures in `figures/`, the page `README.md` that puts our numbers beside the
paper's reported ones, `{RECORD_FILE}` + `{CONFIG_FILE}` (config, seed, library versions) and
`timings.md`.

- `paper/demo/`: the committed output of `make demo-refresh` on the bundled **synthetic** corpus
  with the small CPU config. It demonstrates the pipeline end to end; its numbers say nothing
  about KEMDy20. `make demo` writes its own run to `paper/demo-local/` (git-ignored) and prints
  it beside this one.
- Run `koemo reproduce --config paper --data /path/to/KEMDy20_v1_1 --out paper/kemdy20` on a GPU
  machine for the real tables.

This page is written from the tables of `paper/demo/` by `koemo summary paper/demo --readme
paper/README.md` (koemo.reporting.summary; a test checks that it is): change the code, not the
page.
"""

WHY = """Why fusion can help here, and why that is not written in: the synthetic corpus puts arousal only
in the audio (prosody) and valence only in the transcripts (word choice), so neither modality
alone can tell all five classes apart (audio cannot separate happy/angry/surprise, text cannot
separate neutral/surprise or sad/angry). Nothing tells the classifiers which classes need which
modality: each one learns that, or fails to, from the same frozen regressors and folds.

The synthetic transcripts state valence more plainly than people do (about two evaluative
clauses per utterance, ~95% of them positive at valence 4). With the earlier, vaguer wording the
stand-in text regressor reached only r ~0.33, its text-only classifier barely beat the majority
class, and fusion could not gain from text (`git log src/koemo/synth/sentences.py`).
"""


def _wrap(text: str) -> str:
    """A paragraph (or a `- ` item) wrapped at 96 characters, as the hand-written pages are."""
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(text, 96, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or MISSING


def _corpus_section(h: Headline, name: str = DEMO) -> list[str]:
    return [
        f"## The committed `{name}/` run: what it does and does not show", "",
        _wrap("It ran every notebook on the synthetic corpus with `configs/demo.yaml`. The "
              f"notebooks' own times add up to {minutes(h.seconds)} (`timings.md`); the run "
              f"records neither the machine nor its load (the commit that refreshed `{name}/` "
              "names them), so that time is no measure of `make demo`."), "",
        _wrap("What the corpus carries that real KEMDy20 has: recordings without signal "
        f"({_reasons(h.no_signal)}: `tables/data_no_signal.md`; the faithful variant trains and "
        "scores on them, the corrected variant leaves them out), and rows `koemo prepare` drops, "
        f"each with its reason ({_reasons(h.dropped)}: {sum(h.dropped.values())} in all, "
        "`tables/data_dropped_by_reason.md`)."), ""]


def _training_section(h: Headline) -> list[str]:
    def r_of(stage: str) -> str:
        return " / ".join(f"{h.pearson_r.get((stage, v), MISSING)} {v}" for v in VARIANTS)

    majority = h.macro_f1.get("majority class (ours)", (float("nan"), 0.0))[0]
    models = {c: v for c, v in h.macro_f1.items() if c != "majority class (ours)"}
    below = [name_of(c) for c, (mean, _) in models.items() if not mean > majority]
    beats = ("every classifier beats the majority class on macro F1" if not below else
             f"{len(models) - len(below)} of {len(models)} classifiers beat the majority class "
             f"on macro F1 (not: {', '.join(below)})")
    return [_wrap(f"What training produced ({PROTOCOL} = five session folds, one seed each; "
                  "mean ± std over folds):"),
            _wrap(f"- the audio regressor learns arousal (Pearson r {r_of('audio')});"),
            _wrap(f"- the text regressor learns valence from the stand-in (r {r_of('text')});"),
            _wrap(f"- {beats}."), ""]


def _fusion_section(h: Headline) -> list[str]:
    names = [name_of(c) for c in h.macro_f1]
    table = [_wrap(f"Fusion study (`tables/fusion_fusion.md`), macro F1 on {PROTOCOL} (mean ± "
                   "std over folds):"), "", "| " + " | ".join(names) + " |", "|" + "---|" * len(names),
             "| " + " | ".join(mean_std(v) for v in h.macro_f1.values()) + " |", ""]
    wins = "; ".join(f"{name_of(c)} {wins_of(r)} (mean {r['mean_gain']:+.3f}, smallest "
                     f"{r['min_gain']:+.3f})" for c, r in h.paired.items())
    supported = [name_of(c) for c, r in h.paired.items() if r["supported"]]
    claim = (f"The paired bootstrap interval of the gain excludes zero for "
             f"{', '.join(supported)} only" if supported else
             "For none of them does the paired bootstrap interval of the gain exclude zero")
    return table + [_wrap(
        f"Paired with the {BETTER_SINGLE} of the same fold (`tables/fusion_paired.md`), each "
        f"fused classifier wins on: {wins}. {claim}: the results page's \"What the intervals "
        "support\" section states a gain only there. Five folds of one seed are few, and across "
        "machines the per-fold counts move (docs/reproducibility.md)."), ""]


def _foundation_section(results: Path) -> list[str]:
    """What the KEMDy20 foundation table (notebook 5-4) of the run shows, read from it."""
    from koemo.experiments.foundation import MAJORITY

    table = _csv(results / "tables", "foundation_kemdy20.csv")
    if table is None or "system" not in table:
        return []
    majority = table.loc[table["system"] == MAJORITY, "macro F1"]
    probes = table[table["system"].str.startswith("probe:")]
    zero_shot = table[table["system"].str.startswith("zero-shot:")]
    at_majority = int((probes["macro F1"] == majority.iloc[0]).sum()) if len(majority) else 0
    return [_wrap(
        f"Foundation models (`tables/foundation_kemdy20.md`, notebook 5-4): {len(probes)} probes "
        f"and {len(zero_shot)} zero-shot rows over tiny random upstreams built in the workdir "
        f"(`tiny:<family>`), the same loaders, pooled stores, probes and paired tests as the real "
        f"models. {at_majority} of the {len(probes)} probes score the majority class's macro F1 "
        f"({majority.iloc[0] if len(majority) else 'n/a'}): random weights carry no emotion, so "
        "these rows show the study's mechanics, never how the real models compare."), ""]


def paper_readme(results: str | Path) -> str:
    """paper/README.md, its figures read from the tables of `results` (the committed demo run,
    which the page names `paper/demo/`)."""
    h = read_headline(results)
    lines = [INTRO, *_corpus_section(h), *_training_section(h), *_fusion_section(h),
             *_foundation_section(Path(results))]
    return "\n".join(lines) + "\n" + WHY


def write_paper_readme(results: str | Path, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(paper_readme(results), encoding="utf-8")
    tmp.replace(path)
    return path
