"""Learning-curve figures from the runs' per-epoch logs, and their place on the results page."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from koemo.config.load import load_config
from koemo.reporting import plots
from koemo.reporting.page import write_paper_page


def _runs(tmp_path, stage="audio", metric="valid_ccc"):
    rows = []
    for variant in ("faithful", "corrected"):
        for split, seed, epochs in (("paper", 1, 3), ("paper", 2, 2), ("cv5_f0", 1, 3)):
            run_dir = tmp_path / variant / split / f"seed{seed}"
            run_dir.mkdir(parents=True)
            pd.DataFrame({"epoch": range(1, epochs + 1),
                          "train_loss": [1.0 / e for e in range(1, epochs + 1)],
                          "valid_loss": [1.2 / e for e in range(1, epochs + 1)],
                          metric: [0.1 * e for e in range(1, epochs + 1)]}
                         ).to_csv(run_dir / "log.csv", index=False)
            rows.append({"stage": stage, "variant": variant, "split": split, "seed": seed,
                         "classifier": "attention_lstm" if stage == "multimodal" else "",
                         "run_dir": str(run_dir)})
    return pd.DataFrame(rows)


def test_learning_curves_pool_runs_by_variant_and_protocol(tmp_path, monkeypatch):
    drawn = {}
    original = plots._save

    def spy(fig, path):
        drawn["lines"] = {ax.get_title(): [(l.get_label(), list(l.get_xdata()), list(l.get_ydata()))
                                           for l in ax.get_lines()] for ax in fig.axes}
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    path = plots.learning_curves(_runs(tmp_path), tmp_path / "figures" / "curves_audio.png",
                                 stage="audio")
    assert path.stat().st_size > 1000
    ccc = drawn["lines"]["validation CCC"]
    labels = [label for label, _, _ in ccc]
    assert labels == ["faithful / paper (2 runs)", "faithful / cv5 (1 run)",
                      "corrected / paper (2 runs)", "corrected / cv5 (1 run)"]
    _, epochs, means = ccc[0]
    assert epochs == [1, 2, 3] and means == pytest.approx([0.1, 0.2, 0.3])
    train = drawn["lines"]["train loss"][0]
    assert train[2] == pytest.approx([1.0, 0.5, 1 / 3])
    plt.close("all")


def test_classifier_curves_show_macro_f1_and_no_runs_give_no_figure(tmp_path):
    runs = _runs(tmp_path, "multimodal", "valid_macro_f1")
    assert plots.learning_curves(runs, tmp_path / "c.png", stage="multimodal").is_file()
    assert plots.learning_curves(runs, tmp_path / "none.png", stage="audio") is None
    assert not (tmp_path / "none.png").exists()


def test_results_page_gathers_the_curves(tmp_path):
    out = tmp_path / "paper"
    plots.learning_curves(_runs(tmp_path), out / "figures" / "curves_audio.png", stage="audio")
    page = write_paper_page(tmp_path, load_config("tiny"), out)
    text = page.read_text(encoding="utf-8")
    assert "## Learning curves" in text and "(figures/curves_audio.png)" in text
    assert "curves_text" not in text
