"""The results page: `<out>/README.md`, assembled from the tables and figures the notebooks
saved (written by 5-1 and rewritten by 5-2 and 5-3 as their tables appear)."""
from __future__ import annotations

import re
from pathlib import Path

from koemo.config.schema import Config
from koemo.dataset.labels import data_classes
from koemo.modeling.runs import LOG_CSV, RECORD_FILE
from koemo.reporting import claims as C
from koemo.reporting import plots
from koemo.reporting.foundation import TABLES as FOUNDATION_TABLES
from koemo.reporting.report import load_runs

PAGE_SECTIONS = (
    ("Final multimodal test", "multimodal_test_metrics",
     "Mean ± std over seeds (and the cv5 folds; `n_folds` says how many); `95% CI`: bootstrap "
     "interval of that mean over the test utterances. `weighted_f1_batch_mean` is the paper's "
     "way (mean of per-batch F1); every other metric is computed over the whole test set."),
    ("Final multimodal test per fold", "multimodal_per_fold", ""),
    ("Per-class recall and precision", "multimodal_per_class",
     "The paper's slides print precision under the name of per-class accuracy; its recall comes "
     "from its confusion matrix."),
    ("Audio/text n_layers combinations", "multimodal_layer_combinations", ""),
    ("Audio regressor (arousal)", "audio_test_metrics", ""),
    ("Audio regressor n_layers ablation", "audio_layer_ablation", ""),
    ("Text regressor (valence)", "text_test_metrics", ""),
    ("Text regressor n_layers ablation", "text_layer_ablation", ""),
    ("Welch ANOVA by emotion", "statistics_welch_anova", ""),
    ("Class means", "statistics_class_means", ""),
    ("Split sizes", "splits_sizes", ""),
    ("Speaker overlap between train and test", "splits_speaker_overlap",
     "The paper's random utterance split puts the same speakers in train and test."),
    ("Data", "data_class_counts", ""),
    ("Inter-rater agreement: the human ceiling", "data_rater_agreement",
     "How far the corpus' raters agree with each other; read every model score above "
     "against it."),
    ("Dropped rows", "data_dropped_by_reason",
     "Rows `koemo prepare` left out, and files it could not use, per reason "
     "(every row: `prepare_report.md` in the workdir)."),
    ("Recordings without signal (kept in the table)", "data_no_signal", ""),
    ("Bio-signals and emotion (step 1-3)", "biosignals",
     "Do wrist TEMP/EDA relate to emotion? Computed by notebook 1-3 from the corpus's bio-signal "
     "files; \"not available\" when the corpus has none."),
    ("Fusion study", "fusion_fusion",
     "Every classifier reads the same frozen regressors on the same folds; mean ± std over "
     "folds and seeds, majority-class baseline last. ![fusion](figures/fusion.png)"),
    ("Fusion against single modalities, paired by fold", "fusion_paired",
     "Each fused classifier against the audio-only and text-only classifiers of the same fold "
     "and seed (and the better of the two on that fold): pairs won on macro F1 and the "
     "difference, with a paired bootstrap interval and p-value over the same utterances. "
     "Pairing removes the fold-to-fold spread that the ± above includes."),
    ("Cross-corpus evaluation (KEMDy19, KEMDy20)", "cross_corpus",
     "Each classifier trained on one corpus and tested on the other, beside the test corpus' "
     "own session folds (notebook 5-3)."),
    ("Cross-corpus: fusion against single modalities", "cross_paired",
     "As the fusion study's paired table, within each train -> test direction."),
    *((f"Foundation models: {title}", f"foundation_{name}",
       "" if i else "Frozen upstreams with a probe trained per fold, zero-shot models and the "
       "majority class beside the paper's attention + LSTM on the same folds (notebook 5-4); "
       "each row paired against the paper's method on the same test utterances.")
      for i, (name, title) in enumerate(FOUNDATION_TABLES.items())),
)


# figures/curves_<name>.png written by notebooks 2-1, 3-1, 4-1 and 5-2 (koemo.reporting.plots.learning_curves)
CURVE_FIGURES = {"audio": "audio regressor", "text": "text regressor",
                 "multimodal": "multimodal classifier", "fusion": "fusion study classifiers"}


def write_paper_page(workdir: str | Path, cfg: Config, out: str | Path) -> Path:
    """Assemble out/README.md from the tables the notebooks saved, plus the confusion matrices."""
    out = Path(out)
    tables = out / "tables"
    runs_csv = tables / "runs_main.csv"
    lines = [f"# Results: config `{cfg.name}`", "",
             "Numbers marked *paper (reported)* are quoted from the reference paper; every other "
             f"number was measured by this run (config, seed and library versions in `{RECORD_FILE}`). "
             "Averages over classes (macro F1, UAR, weighted F1) run over the classes present in "
             "each test set, the same set for every row of a table; notes under a table say when "
             "a statistic or a fold could not be computed.", ""]
    if runs_csv.is_file():
        runs = load_runs(runs_csv, workdir)
        figure = plots.confusion_matrices(runs, data_classes(cfg.data), out / "figures" / "confusion.png")
        lines += ["![confusion matrices](figures/confusion.png)", ""] if figure else []
    for title, stem, note in PAGE_SECTIONS:
        path = tables / f"{stem}.md"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            # a table that could not be computed is its note alone: no description above it
            note = "" if text.startswith("Note: ") else _drop_missing_figures(note, out)
            lines += [f"## {title}", ""] + ([note, ""] if note else []) + [text]
    lines += C.page_claims(tables)
    curves = [(name, out / "figures" / f"curves_{name}.png") for name in CURVE_FIGURES]
    curves = [(name, path) for name, path in curves if path.is_file()]
    if curves:
        lines += ["## Learning curves", "",
                  f"Per epoch, from each run's {LOG_CSV}: mean over the seeds and folds of each "
                  "variant and protocol, band = min-max over them (written by the notebook that "
                  "trains the stage).", ""]
        lines += [f"![{CURVE_FIGURES[name]}](figures/{path.name})" for name, path in curves] + [""]
    page = out / "README.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    return page


def _drop_missing_figures(note: str, out: Path) -> str:
    """A section note without links to figures this run did not draw (e.g. no fusion study)."""
    return re.sub(r"\s*!\[[^\]]*\]\((figures/[^)]+)\)",
                  lambda m: m[0] if (out / m[1]).is_file() else "", note).strip()
