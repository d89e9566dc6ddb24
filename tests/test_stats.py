"""Welch ANOVA against the textbook formula and SciPy, eta squared by hand, the paper's format."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from koemo.reporting.stats import class_means_table, emotion_statistics, eta_squared, format_anova, welch_anova


def welch_by_formula(samples):
    """Welch (1951): weights n/s^2, weighted mean, F with df2 from the lambda term."""
    k = len(samples)
    n = np.array([len(s) for s in samples], dtype=float)
    m = np.array([np.mean(s) for s in samples])
    w = n / np.array([np.var(s, ddof=1) for s in samples])
    mw = (w * m).sum() / w.sum()
    lam = (((1 - w / w.sum()) ** 2) / (n - 1)).sum()
    f = ((w * (m - mw) ** 2).sum() / (k - 1)) / (1 + 2 * (k - 2) * lam / (k ** 2 - 1))
    return f, k - 1, (k ** 2 - 1) / (3 * lam)


GROUPS = {"angry": [3.1, 3.9, 4.2, 3.6, 3.8], "happy": [3.0, 3.4, 3.5, 3.9],
          "neutral": [2.9, 3.0, 3.1, 3.2, 3.0, 3.1], "sad": [2.1, 2.9, 2.5]}


def table():
    rows = [(name, v, 6 - v) for name, values in GROUPS.items() for v in values]
    return pd.DataFrame(rows, columns=["label", "arousal", "valence"])


def test_welch_anova_matches_formula_and_scipy():
    result = welch_anova(table(), "arousal")
    f, df1, df2 = welch_by_formula([np.array(v) for v in GROUPS.values()])
    assert result["F"] == pytest.approx(f)
    assert result["df1"] == df1 and result["df2"] == pytest.approx(df2)
    ref = sps.f_oneway(*GROUPS.values(), equal_var=False)
    assert result["F"] == pytest.approx(ref.statistic)
    assert result["p"] == pytest.approx(ref.pvalue)
    assert result["groups"]["sad"] == pytest.approx({"n": 3, "mean": 2.5, "std": 0.4})


def test_eta_squared_by_hand():
    # groups [1,3] and [5,7]: grand mean 4, SS_total 9+1+1+9 = 20, SS_between 2*2^2 + 2*2^2 = 16
    assert eta_squared(np.array([1.0, 3.0, 5.0, 7.0]), np.array(["x", "x", "y", "y"])) == \
        pytest.approx(16 / 20)


def test_identical_groups_have_no_effect_and_separated_groups_a_large_one():
    rng = np.random.default_rng(0)
    same = pd.DataFrame({"label": np.repeat(["a", "b"], 50), "arousal": np.tile(rng.normal(size=50), 2)})
    result = welch_anova(same, "arousal")
    assert result["F"] == pytest.approx(0.0, abs=1e-9) and result["p"] == pytest.approx(1.0)
    apart = same.assign(arousal=same["arousal"] + np.repeat([0.0, 10.0], 50))
    assert welch_anova(apart, "arousal")["eta_squared"] > 0.95


def test_format_matches_the_papers_form():
    text = format_anova({"F": 63.123, "df1": 4.0, "df2": 246.834, "p": 1e-30, "eta_squared": 0.3791})
    assert text == "F(4, 246.83) = 63.12, p < .001, eta^2 = .379"
    assert "p = .042" in format_anova({"F": 3, "df1": 2, "df2": 9.5, "p": 0.0421, "eta_squared": 0.2})


def test_emotion_statistics_covers_both_values_in_the_given_order():
    stats = emotion_statistics(table(), order=["sad", "neutral", "happy", "angry"])
    assert list(stats) == ["arousal", "valence"]
    assert list(stats["arousal"]["groups"]) == ["sad", "neutral", "happy", "angry"]
    # valence = 6 - arousal: same F, mirrored means.
    assert stats["valence"]["F"] == pytest.approx(stats["arousal"]["F"])
    means = class_means_table(stats)
    assert means.loc["valence", "sad"] == pytest.approx(6 - 2.5)
    assert stats["arousal"]["text"].startswith("F(3, ")


def test_too_small_group_is_left_out_by_name_and_the_rest_still_tested():
    small = pd.concat([table(), pd.DataFrame({"label": ["fear"], "arousal": [3.0], "valence": [3.0]})])
    result = welch_anova(small, "arousal")
    reference = welch_anova(table(), "arousal")         # the same test without the fear row
    assert result["computed"] and result["tested"] == ["angry", "happy", "neutral", "sad"]
    assert result["F"] == pytest.approx(reference["F"]) and result["df1"] == 3
    assert result["eta_squared"] == pytest.approx(reference["eta_squared"])
    assert result["left_out"] == {"fear": "group 'fear' has 1 row (needs >= 2)"}
    assert result["note"] == "left out: group 'fear' has 1 row (needs >= 2)"
    assert result["groups"]["fear"] == pytest.approx({"n": 1, "mean": 3.0, "std": np.nan},
                                                     nan_ok=True)
    with pytest.raises(ValueError, match="no column"):
        welch_anova(table(), "dominance")


def test_no_test_with_fewer_than_two_usable_groups_says_why():
    flat = pd.DataFrame({"label": ["neutral"] * 4 + ["sad", "happy", "happy"],
                         "arousal": [3.0, 3.2, 2.9, 3.1, 2.0, 4.0, 4.0]})
    result = welch_anova(flat, "arousal")
    assert not result["computed"] and np.isnan(result["F"]) and result["tested"] == ["neutral"]
    assert result["note"] == ("not computed: needs >= 2 groups with >= 2 rows each; group 'happy' "
                              "has no spread (all 2 rows equal 4); group 'sad' has 1 row (needs >= 2)")
    assert format_anova(result) == result["note"]
    # A class of the order with no rows at all is named too.
    absent = welch_anova(flat, "arousal", order=["neutral", "surprise"])
    assert absent["left_out"] == {"surprise": "group 'surprise' has 0 rows (needs >= 2)"}
