"""`koemo summary` (koemo.reporting.summary): a run's headline figures beside the committed
ones, on two small results folders written as `koemo reproduce` writes its tables; and the
committed paper/README.md is exactly what the committed paper/demo/ gives."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from koemo.cli import main
from koemo.reporting.report import save_tables
from koemo.reporting.summary import comparison_rows, paper_readme, read_headline

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["audio_only", "text_only", "early", "attention_lstm", "majority class (ours)"]


def results_folder(path: Path, macro_f1: list[float], wins: int, r: str, seconds: dict,
                   regressors: bool = True) -> Path:
    """A results folder with the tables the summary reads, in reproduce's own layout."""
    fusion = pd.DataFrame({"protocol": "cv5", "classifier": KINDS, "mean": macro_f1,
                           "std": [0.03, 0.02, 0.04, 0.01, 0.0], "n_runs": 5})
    paper_rows = pd.DataFrame({"protocol": ["paper"], "classifier": ["early"], "mean": [0.9],
                               "std": [0.0], "n_runs": [3]})        # another protocol: not read
    paired = pd.DataFrame([
        {"protocol": "cv5", "classifier": c, "versus": versus, "pairs": 5,
         "wins": wins if c == "attention_lstm" else 2, "mean_gain": 0.05, "min_gain": -0.01,
         "95% CI": "[0.010, 0.090]", "p": 0.01, "supported": c if c == "attention_lstm" else ""}
        for c in ("early", "attention_lstm") for versus in ("audio_only", "better single modality")])
    save_tables({"fusion_macro_f1": pd.concat([fusion, paper_rows], ignore_index=True),
                 "paired": paired}, path / "tables", prefix="fusion_")
    if regressors:
        for stage in ("audio", "text"):
            save_tables({"test_metrics": pd.DataFrame({
                "protocol": ["paper", "cv5"], "variant": "faithful", "rmse": "0.4 ± 0.1",
                "pearson_r": ["0.999 ± 0.000", r], "n_folds": [1, 5], "n_runs": [3, 5]})},
                path / "tables", prefix=f"{stage}_")
    save_tables({"dropped_by_reason": pd.DataFrame({"reason": ["label_tie", "broken_link"],
                                                    "rows": [45, 1]})}, path / "tables",
                prefix="data_")
    (path / "timings.json").write_text(json.dumps(seconds), encoding="utf-8")
    return path


@pytest.fixture
def two_runs(tmp_path):
    committed = results_folder(tmp_path / "committed", [0.26, 0.31, 0.29, 0.39, 0.157], 5,
                               "0.701 ± 0.032", {"1-1": 600.0, "2-1": 870.0})
    run = results_folder(tmp_path / "run", [0.25, 0.30, 0.30, 0.37, 0.157], 4, "0.690 ± 0.040",
                         {"1-1": 300.0, "2-1": 420.0}, regressors=False)
    return committed, run


def test_the_comparison_puts_each_figure_of_the_run_beside_the_committed_one(two_runs):
    committed, run = two_runs
    rows = {figure: (old, new) for figure, old, new in
            comparison_rows(read_headline(run), read_headline(committed))}
    assert rows["macro F1, attention + LSTM (paper) (cv5)"] == ("0.390 ± 0.010", "0.370 ± 0.010")
    assert rows["macro F1, early (cv5)"] == ("0.290 ± 0.040", "0.300 ± 0.040")   # cv5, not paper
    assert rows["macro F1, majority (cv5)"] == ("0.157 ± 0.000", "0.157 ± 0.000")
    assert rows["attention + LSTM (paper): folds won against the better single modality"] == \
        ("5 of 5", "4 of 5")
    # the run wrote no regressor tables: shown as missing, never as a number
    assert rows["audio regressor Pearson r (cv5, faithful)"] == ("0.701 ± 0.032", "-")
    assert rows["the notebooks' time"] == ("24.5 min", "12.0 min")
    assert len(rows) == len(KINDS) + 2 + 2 + 1


def test_koemo_summary_prints_the_comparison_and_what_to_read_it_with(two_runs, capsys):
    committed, run = two_runs
    assert main(["summary", str(run), "--against", str(committed)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"This run ({run}) beside the committed results ({committed}):")
    assert "| macro F1, text only (cv5) | 0.310 ± 0.020 | 0.300 ± 0.020 |" in out
    assert "differ from machine to machine" in out and "README.md" in out


def test_a_folder_without_results_is_one_line(tmp_path, capsys):
    assert main(["summary", str(tmp_path), "--against", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no results of `koemo reproduce` here" in err
    assert main(["summary", str(tmp_path)]) == 1
    assert "--against" in capsys.readouterr().err


def test_the_page_says_which_classifiers_miss_the_majority_class(two_runs, tmp_path):
    committed, _ = two_runs
    low = results_folder(tmp_path / "low", [0.10, 0.31, 0.29, 0.39, 0.157], 5, "0.7 ± 0.0", {})
    assert "- every classifier beats the majority class on macro F1." in paper_readme(committed)
    page = " ".join(paper_readme(low).split())          # prose is wrapped at 96 characters
    assert "3 of 4 classifiers beat the majority class on macro F1 (not: audio only)" in page
    assert "excludes zero for attention + LSTM (paper) only" in page
    assert "label_tie 45, broken_link 1: 46 in all" in page


def test_the_committed_paper_readme_is_what_the_committed_demo_gives(tmp_path):
    """paper/README.md describes the run committed in paper/demo/ (`make demo-refresh` writes
    both); regenerate it with `koemo summary paper/demo --readme paper/README.md`."""
    written = tmp_path / "README.md"
    assert main(["summary", str(ROOT / "paper" / "demo"), "--readme", str(written)]) == 0
    assert (ROOT / "paper" / "README.md").read_text(encoding="utf-8") == \
        written.read_text(encoding="utf-8")


def test_the_page_counts_the_probes_at_the_majority_class(two_runs):
    """The foundation paragraph is read from tables/foundation_kemdy20.csv of the run."""
    committed, _ = two_runs
    assert "Foundation models" not in paper_readme(committed)      # a run without 5-4's table
    pd.DataFrame({"system": ["attention + LSTM (the paper's method)", "probe: a (audio)",
                             "probe: b (text)", "zero-shot: c (outside predictions as errors)",
                             "majority class"],
                  "macro F1": ["0.40 ± 0.01", "0.157 ± 0.001", "0.20 ± 0.02", "0.05 ± 0.01",
                               "0.157 ± 0.001"]}).to_csv(committed / "tables" / "foundation_kemdy20.csv",
                                                         index=False)
    page = " ".join(paper_readme(committed).split())
    assert "2 probes and 1 zero-shot rows" in page
    assert "1 of the 2 probes score the majority class's macro F1 (0.157 ± 0.001)" in page
