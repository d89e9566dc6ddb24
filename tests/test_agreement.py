"""Inter-rater agreement (koemo.reporting.agreement) against hand-computed and published values,
and the raters' columns `koemo prepare` keeps for it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from koemo.dataset.raters import rater_columns, soft_targets
from koemo.reporting.agreement import agreement_table, fleiss_kappa, krippendorff_alpha

N = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the example with missing
# data: 4 observers x 12 units; published alpha nominal 0.743, interval 0.849.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]).T
# Three units, two raters: (a, a), (a, b), (b, b).
SMALL = [["a", "a"], ["a", "b"], ["b", "b"]]


def test_alpha_matches_the_published_example():
    assert krippendorff_alpha(KRIPPENDORFF_2011, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPPENDORFF_2011, "interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_and_kappa_by_hand_on_a_small_table():
    # alpha: coincidences o_aa = o_bb = 2, o_ab = o_ba = 1, n_a = n_b = 3, n = 6:
    # 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b) = 1 - 5 * 2 / 18 = 4/9
    assert krippendorff_alpha(SMALL) == pytest.approx(4 / 9)
    # kappa: P_bar = (1 + 0 + 1) / 3, P_e = 0.5^2 + 0.5^2 -> (2/3 - 1/2) / (1 - 1/2) = 1/3
    assert fleiss_kappa(SMALL) == pytest.approx(1 / 3)


def test_perfect_agreement_is_one_and_units_with_one_rating_are_left_out():
    ratings = [[1, 1, 1], [3, 3, N], [5, N, N]]
    assert krippendorff_alpha(ratings, "interval") == pytest.approx(1.0)
    assert krippendorff_alpha(ratings, "nominal") == pytest.approx(1.0)


def small_table() -> pd.DataFrame:
    rows = {"label": ["happy", "neutral", "sad"], "label_id": [2, 0, 1],
            "corpus": ["a", "a", "b"]}
    votes = [["happy", "happy", "neutral"], ["neutral", "neutral", "neutral"], ["sad", "fear", ""]]
    for r in range(3):
        rows[f"rater{r + 1:02d}_emotion"] = [v[r] for v in votes]
        rows[f"rater{r + 1:02d}_valence"] = [4.0, 3.0, 1.0 + r]
        rows[f"rater{r + 1:02d}_arousal"] = [3.0, 3.0, 2.0]
    return pd.DataFrame(rows)


def test_agreement_table_has_a_row_per_corpus_and_all_together():
    frame = agreement_table(small_table())
    assert frame["corpus"].tolist() == ["a", "b", "all"]
    assert frame.set_index("corpus").loc["a", "votes for label"] == pytest.approx((2 / 3 + 1) / 2)
    # corpus b: one row, its empty vote is missing, not a label
    assert frame.set_index("corpus").loc["b", "votes for label"] == pytest.approx(1 / 2)
    assert frame.attrs["notes"]


def test_soft_targets_are_the_vote_shares_over_the_classes():
    classes = ("neutral", "sad", "happy", "surprise", "angry")
    dist = soft_targets(small_table(), classes)
    np.testing.assert_allclose(dist[0], [1 / 3, 0, 2 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(dist[1], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(dist[2], [0, 1, 0, 0, 0])      # fear is not a class: left out
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-6)


def test_prepare_keeps_every_raters_columns(tiny_workdir, tiny_corpus):
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    assert len(rater_columns(table, "emotion")) == 10
    assert len(rater_columns(table, "valence")) == len(rater_columns(table, "arousal")) == 10
    # the total valence is the raters' mean rounded to one decimal (as the corpus writes it)
    mean = table[rater_columns(table, "valence")].mean(axis=1)
    np.testing.assert_allclose(mean, table["valence"], atol=0.051)
    assert set(table["rater01_emotion"]) <= {"neutral", "sad", "happy", "surprise", "angry",
                                             "disgust", "fear", ""}


def test_data_summary_reports_agreement(tiny_workdir, tiny_config):
    from koemo.reporting.report import data_summary

    frame = data_summary(tiny_workdir, tiny_config)["rater_agreement"]
    assert frame["corpus"].tolist() == ["kemdy20"]      # one corpus: no "all" row beside it
    row = frame.iloc[0]
    assert row["utterances"] == len(pd.read_parquet(tiny_workdir / "utterances.parquet"))
    for column in ("emotion alpha (nominal)", "emotion Fleiss kappa", "valence alpha (interval)",
                   "arousal alpha (interval)"):
        assert 0.0 < row[column] < 1.0, column


def test_a_table_prepared_without_rater_columns_is_rebuilt(tiny_corpus, tiny_config, tmp_path):
    from koemo.dataset.prepare import prepare

    first = prepare(tiny_corpus, tmp_path, tiny_config, progress=False, features=False)
    old = first.table.drop(columns=rater_columns(first.table, "emotion"))
    old.to_parquet(tmp_path / "utterances.parquet", index=False)
    again = prepare(tiny_corpus, tmp_path, tiny_config, progress=False, features=False)
    assert not again.reused and rater_columns(again.table, "emotion")
    assert json.loads((tmp_path / "prepare_report.json").read_text())["input_fingerprint"] == \
        first.report["input_fingerprint"]


def test_valence_and_arousal_agreement_is_the_interval_alpha():
    """Ratings on a scale: a rater one point off disagrees less than one four points off, so
    the table's valence and arousal alphas are interval ones (0.849 on Krippendorff's published
    example, where the nominal alpha is 0.743)."""
    units, raters = KRIPPENDORFF_2011.shape
    rows = {"label": ["neutral"] * units, "corpus": ["k"] * units}
    for r in range(raters):
        rows[f"rater{r + 1:02d}_emotion"] = ["neutral"] * units
        rows[f"rater{r + 1:02d}_valence"] = KRIPPENDORFF_2011[:, r]
        rows[f"rater{r + 1:02d}_arousal"] = KRIPPENDORFF_2011[:, r]
    row = agreement_table(pd.DataFrame(rows)).iloc[0]
    assert row["valence alpha (interval)"] == pytest.approx(0.849, abs=5e-4)
    assert row["arousal alpha (interval)"] == pytest.approx(0.849, abs=5e-4)
