"""Writes the numbered notebooks from the cell lists below, so they share one header and stay thin.
Which notebooks there are, and their order, is koemo.reporting.reproduce.NOTEBOOK_ORDER (the
order `koemo reproduce` runs them in); a notebook here that it does not name is an error.

Run `python notebooks/build_notebooks.py` after editing; `tests/test_notebooks.py` fails when a
committed notebook differs from what this script writes. Notebooks are committed without outputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from koemo.reporting.reproduce import NOTEBOOK_ORDER

HERE = Path(__file__).resolve().parent

PARAMETERS = '''\
# Parameters (papermill overrides these; `koemo reproduce` passes absolute paths)
CONFIG = "paper"          # a name in configs/ or a path to a YAML file; on one GPU session:
                          # "paper_budget" (every paper table, paper protocol, one seed)
DATA_ROOT = ""            # your KEMDy20 copy: the folder holding annotation/ and wav/
WORKDIR = "data/work"     # prepared table, feature/text caches, training runs
OUT = "paper"             # tables, figures and the run record
SYNTHETIC = False         # True: use the bundled synthetic KEMDy20-format corpus instead
KEMDY19_ROOT = ""         # your KEMDy19 copy, for the cross-corpus study (5-3); empty: none
# config overrides, one string each, such as "train.audio.epochs=2"; on a GPU:
# "train.precision=auto" (bf16, or fp16 with a gradient scaler on a T4)
OVERRIDES = []
PROGRESS = True           # progress bars
# Colab only: where to install koemo from (a clone of this repo on Drive, or its git URL)
KOEMO_SOURCE = "/content/drive/MyDrive/koemo"
MOUNT_DRIVE = True'''

SETUP = '''\
import sys, subprocess
if "google.colab" in sys.modules:  # Colab: mount Drive, install koemo (keeps Colab's torch)
    if MOUNT_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")
    spec = KOEMO_SOURCE if KOEMO_SOURCE.startswith("git+") else ["-e", KOEMO_SOURCE]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    *([spec] if isinstance(spec, str) else spec)], check=True)
    if isinstance(spec, list):  # the checkout on Drive: relative WORKDIR/OUT land there too
        sys.path.insert(0, f"{KOEMO_SOURCE}/src")

from IPython.display import Markdown, display
import koemo.reporting.notebook
ctx = koemo.reporting.notebook.start(CONFIG, WORKDIR, OUT, DATA_ROOT, SYNTHETIC, OVERRIDES,
                                     KEMDY19_ROOT)
cfg = ctx.cfg
print(f"config {cfg.name}: workdir {ctx.workdir}, outputs {ctx.out}")'''


NOTEBOOKS: dict[str, tuple[str, list[str]]] = {
    "1-1_data_aggregation": (
        "Read KEMDy20 (annotations, transcripts, wavs), pair them by Segment ID, apply the label "
        "policy, compute mel + delta features, and report every dropped row. Also the paper's "
        "statistics (Welch ANOVA of arousal and valence by emotion) and how far the raters "
        "agree with each other (`rater_agreement`: the human ceiling for every model score).",
        [
            "from koemo.dataset.prepare import prepare\nimport koemo.reporting.report\n"
            "result = prepare(ctx.corpus_root(), ctx.workdir, cfg, progress=PROGRESS)\n"
            "table = result.table  # every dropped row: prepare_report.md in the workdir",
            "summary = koemo.reporting.report.data_summary(ctx.workdir, cfg)\n"
            "koemo.reporting.report.save_tables(summary, ctx.tables, prefix='data_')\n"
            "for name, frame in summary.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
            "statistics = koemo.reporting.report.welch_tables(table, cfg)\n"
            "koemo.reporting.report.save_tables(statistics, ctx.tables, prefix='statistics_')\n"
            "for name, frame in statistics.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
            "import koemo.reporting.plots\nkoemo.reporting.plots.duration_histogram(table, ctx.figures / 'durations.png')",
        ],
    ),
    "1-2_augmentation_split": (
        "The three protocols (the paper's random utterance split, a speaker-independent session "
        "hold-out, and five session folds), their sizes beside the paper's, and the minority-class "
        "augmentation of the training set (text swap/delete, frequency masking).",
        [
            "import koemo.reporting.report\n"
            "splits = koemo.reporting.report.split_tables(ctx.workdir, cfg)\n"
            "koemo.reporting.report.save_tables(splits, ctx.tables, prefix='splits_')\n"
            "for name, frame in splits.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
            "import koemo.reporting.plots\n"
            "koemo.reporting.plots.augmentation_examples(ctx.workdir, cfg, ctx.figures / 'augmentation.png')",
        ],
    ),
    "1-3_biosignal_analysis": (
        "The original's bio-signal step in Python: per-utterance TEMP and EDA series, DTW k-means "
        "(k = 5 and k = 2..10 with silhouettes), and whether clusters or levels relate to emotion. "
        "The conclusion is computed from the data. A KEMDy20 copy without the EDA/TEMP/IBI "
        "folders (audio + text only) is recorded as \"not available\" and the pipeline goes on.",
        [
            "from koemo import biosignals\nimport koemo.reporting.report\n"
            "outcome = biosignals.analyse_and_write(ctx.corpus_root(), ctx.out, cfg.biosignals,\n"
            "                                       seed=cfg.seed, data=cfg.data)\n"
            "display(Markdown(outcome.summary))",
            "if outcome.available:\n"
            "    report = outcome.report\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(biosignals.coverage_summary(report.coverage))))\n"
            "    for signal, result in report.results.items():\n"
            "        display(Markdown(f'**{signal}: silhouette by k**'))\n"
            "        display(Markdown(koemo.reporting.report.markdown_table(result.silhouette)))",
        ],
    ),
    "2-1_audio_arousal": (
        "Train the audio regressor (mel + delta -> arousal) for every protocol, variant "
        "(faithful / corrected) and seed in the config, plus the n_layers ablation.",
        [
            "import koemo.experiments.plan as ex, koemo.reporting.report, koemo.reporting.plots\n"
            "runs = ex.run_plan(ex.main_plan(cfg, ['audio'], ctx.workdir), ctx.workdir, progress=PROGRESS)\n"
            "ablation = ex.run_plan(ex.layer_ablation_plan(cfg, 'audio'), ctx.workdir, progress=PROGRESS)",
            "tables = koemo.reporting.report.regressor_tables(runs, ablation, 'audio')\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables, prefix='audio_')\n"
            "koemo.reporting.plots.learning_curves(runs, ctx.figures / 'curves_audio.png', stage='audio')\n"
            "for name, frame in tables.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
        ],
    ),
    "3-1_text_valence": (
        "Train the text regressor (frozen KoBERT states -> valence). KoBERT runs once per text: "
        "its states are cached on disk. Same protocols, variants, seeds and ablation as 2-1.",
        [
            "import koemo.experiments.plan as ex, koemo.reporting.report, koemo.reporting.plots\n"
            "runs = ex.run_plan(ex.main_plan(cfg, ['text'], ctx.workdir), ctx.workdir, progress=PROGRESS)\n"
            "ablation = ex.run_plan(ex.layer_ablation_plan(cfg, 'text'), ctx.workdir, progress=PROGRESS)",
            "tables = koemo.reporting.report.regressor_tables(runs, ablation, 'text')\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables, prefix='text_')\n"
            "koemo.reporting.plots.learning_curves(runs, ctx.figures / 'curves_text.png', stage='text')\n"
            "for name, frame in tables.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
        ],
    ),
    "4-1_multimodal_classifier": (
        "Train the multimodal classifier (attention + LSTM over both regressors' frozen attention "
        "outputs) for every protocol, variant and seed, plus the audio/text n_layers combinations.",
        [
            "import koemo.experiments.plan as ex, koemo.reporting.report, koemo.reporting.plots\n"
            "runs = ex.run_plan(ex.main_plan(cfg, workdir=ctx.workdir), ctx.workdir, progress=PROGRESS)\n"
            "combos = ex.run_plan(ex.combination_plan(cfg), ctx.workdir, progress=PROGRESS)\n"
            "koemo.reporting.report.save_runs(runs, ctx.tables / 'runs_main.csv', ctx.workdir)\n"
            "koemo.reporting.report.save_runs(combos, ctx.tables / 'runs_combinations.csv', ctx.workdir)",
            "tables = koemo.reporting.report.classifier_tables(runs, combos)\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables, prefix='multimodal_')\n"
            "koemo.reporting.plots.learning_curves(runs, ctx.figures / 'curves_multimodal.png', stage='multimodal')\n"
            "for name, frame in tables.items():\n    display(Markdown(f'**{name}**'))\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frame)))",
        ],
    ),
    "5-1_paper_tables": (
        "The paper's tables with the paper's reported numbers beside ours: final test metrics "
        "(batch-averaged the paper's way and over the whole set), per-class recall and precision, "
        "confusion matrices, regressors, ablations, statistics and the majority-class baseline, "
        "each score with its 95% bootstrap interval; the page states \"A beats B\" only where a "
        "paired test's interval excludes 0.",
        [
            "import koemo.reporting.page\n"
            "page = koemo.reporting.page.write_paper_page(ctx.workdir, cfg, ctx.out)\n"
            "display(Markdown(page.read_text(encoding='utf-8')))",
        ],
    ),
    "5-2_fusion_study": (
        "Fusion ablation on the same folds and frozen regressors: audio-only, text-only, early "
        "fusion, late fusion, merge by sum, tensor fusion and the paper's attention + LSTM fusion.",
        [
            "import koemo.experiments.plan as ex, koemo.reporting.report, koemo.reporting.plots\n"
            "runs = ex.run_plan(ex.fusion_plan(cfg, ctx.workdir), ctx.workdir, progress=PROGRESS)\n"
            "koemo.reporting.report.save_runs(runs, ctx.tables / 'runs_fusion.csv', ctx.workdir)",
            "tables = koemo.reporting.report.fusion_tables(runs, cfg)  # notes only when the plan has no fusion study\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables, prefix='fusion_')\n"
            "koemo.reporting.plots.fusion_figure(tables['fusion_macro_f1'], ctx.figures / 'fusion.png')\n"
            "koemo.reporting.plots.learning_curves(runs, ctx.figures / 'curves_fusion.png', stage='multimodal')\n"
            "display(Markdown(koemo.reporting.report.markdown_table(tables['fusion'])))",
            "# paired by fold: does each fused classifier beat the single modalities of its own fold?\n"
            "display(Markdown(koemo.reporting.report.markdown_table(tables['paired'])))",
            "# front-ends side by side (reproduce.frontends: other configs, e.g. ssl_wavlm_koelectra)\n"
            "if cfg.reproduce.frontends:\n"
            "    import koemo.experiments.frontends as fe\n"
            "    study = fe.run_frontend_study(fe.frontend_configs(cfg, OVERRIDES), ctx.workdir,\n"
            "                                  progress=PROGRESS)\n"
            "    koemo.reporting.report.save_runs(study, ctx.tables / 'runs_frontends.csv', ctx.workdir)\n"
            "    frontends = {'frontends': fe.frontend_fusion_table(study)}\n"
            "    koemo.reporting.report.save_tables(frontends, ctx.tables, prefix='fusion_')\n"
            "    display(Markdown(koemo.reporting.report.markdown_table(frontends['frontends'])))",
            "# the results page (written by 5-1) gains the fusion table and figure\n"
            "import koemo.reporting.page\n"
            "page = koemo.reporting.page.write_paper_page(ctx.workdir, cfg, ctx.out)",
        ],
    ),
    "5-3_cross_corpus": (
        "Cross-corpus evaluation: train on KEMDy19 and test on KEMDy20 and the other way round, "
        "beside each corpus' own session folds, for the single modalities and the fusion "
        "classifiers (`reproduce.cross_corpus`), with the test corpus' majority class as the "
        "baseline and a second score without test utterances whose text the model met in "
        "training. Needs a KEMDy19 copy (`KEMDY19_ROOT`; synthetic runs write one when the "
        "config's `synthetic.kemdy19` asks for it); without one the page says so.",
        [
            "import koemo.experiments.cross as cross, koemo.reporting.cross_corpus as cc\n"
            "import koemo.reporting.report\n"
            "study = cross.run_study(cfg, ctx.corpus_root(), ctx.second_corpus_root(), ctx.workdir,\n"
            "                        progress=PROGRESS)",
            "if study is None:\n"
            "    tables = cc.not_run()\n"
            "else:\n"
            "    koemo.reporting.report.save_runs(study['in_corpus'], ctx.tables / 'runs_cross_in_corpus.csv', ctx.workdir)\n"
            "    koemo.reporting.report.save_runs(study['cross'], ctx.tables / 'runs_cross.csv', ctx.workdir)\n"
            "    tables = cc.cross_corpus_tables(study['in_corpus'], study['cross'],\n"
            "                                    leakage_free=cfg.reproduce.leakage_free)\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables)\n"
            "display(Markdown(koemo.reporting.report.markdown_table(tables['cross_corpus'])))",
            "# the results page gains the cross-corpus tables\n"
            "import koemo.reporting.page\n"
            "page = koemo.reporting.page.write_paper_page(ctx.workdir, cfg, ctx.out)",
        ],
    ),
    "5-4_foundation_models": (
        "Foundation models on the same folds (`reproduce.foundation`): frozen audio upstreams "
        "(WavLM, HuBERT, Whisper's encoder, XLS-R, emotion2vec+) and Korean text encoders (KLUE "
        "RoBERTa, KoELECTRA, KoBERT), each read by a small probe trained per fold (EmoBox's, over "
        "every layer's mean over time), a fused audio + text probe, and emotion2vec+ and "
        "SenseVoice zero-shot, beside the paper's attention + LSTM and the best fusion kind "
        "(their runs from 5-2 and 5-3) and the majority class: one table per corpus and "
        "direction, each row paired against the paper's method on the same test utterances. "
        "With a KEMDy19 copy (`KEMDY19_ROOT`, or `synthetic.kemdy19`) also KEMDy19's folds and "
        "both cross-corpus directions.",
        [
            "import koemo.experiments.foundation as fd, koemo.reporting.foundation as fr\n"
            "import koemo.reporting.report\n"
            "runs = fd.run_study(cfg, ctx.corpus_root(), ctx.second_corpus_root(), ctx.workdir,\n"
            "                    progress=PROGRESS)",
            "if runs is None:\n"
            "    tables = fr.not_run()\n"
            "else:\n"
            "    koemo.reporting.report.save_runs(runs, ctx.tables / 'runs_foundation.csv', ctx.workdir)\n"
            "    tables = fr.foundation_tables(runs, fr.paper_runs(ctx.tables, ctx.workdir),\n"
            "                                  leakage_free=cfg.reproduce.leakage_free)\n"
            "koemo.reporting.report.save_tables(tables, ctx.tables, prefix='foundation_')\n"
            "for name, table in tables.items():\n"
            "    display(Markdown(f'### {name}\\n\\n' + koemo.reporting.report.markdown_table(table)))",
            "# the results page gains the foundation tables and what their intervals support\n"
            "import koemo.reporting.page\n"
            "page = koemo.reporting.page.write_paper_page(ctx.workdir, cfg, ctx.out)",
        ],
    ),
}


def build(name: str, intro: str, cells: list[str]) -> nbformat.NotebookNode:
    title = name.replace("_", " ", 1).replace("_", " ")
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(new_markdown_cell(
        f"# {title}\n\n{intro}\n\nRun locally (`koemo reproduce` runs every notebook in order) "
        "or on Colab (set `KOEMO_SOURCE` and `DATA_ROOT` below). All work happens in the "
        "`koemo` package; this notebook only calls it."))
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells += [params, new_code_cell(SETUP)]
    nb.cells += [new_code_cell(source) for source in cells]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:3]}-{index}"  # stable ids: rebuilding gives identical files
    return nb


def render(name: str) -> str:
    intro, cells = NOTEBOOKS[name]
    return nbformat.writes(build(name, intro, cells)) + "\n"


def main(check: bool = False) -> int:
    unlisted = sorted(set(NOTEBOOKS) ^ set(NOTEBOOK_ORDER))
    if unlisted:
        print("cells without a place in koemo.reporting.reproduce.NOTEBOOK_ORDER, or a place "
              "without cells:", ", ".join(unlisted))
        return 1
    stale = []
    for name in NOTEBOOK_ORDER:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
