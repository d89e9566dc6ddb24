"""Metrics over whole sets, checked against hand-computed values and the paper's confusion matrix."""
import math

import numpy as np
import pytest

from koemo.modeling.metrics import (batch_averaged_f1, classification_report, concordance_correlation,
                           regression_report, report_from_confusion)

CLASSES = ["a", "b", "c"]
PAPER_CLASSES = ["neutral", "sad", "happy", "surprise", "angry"]
# Rows true, columns predicted, in the paper's class order (paper.md).
PAPER_CM = [[2198, 2, 12, 11, 7],
            [26, 6, 0, 0, 0],
            [141, 2, 76, 2, 2],
            [25, 0, 2, 3, 0],
            [26, 0, 0, 1, 2]]


def test_classification_report_hand_computed():
    # cm: a [2,1,0] / b [1,1,0] / c [0,0,1]
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 2], CLASSES,
                                   majority_class="a")
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 1) / 6)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert report["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert report["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert report["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert report["confusion_matrix_normalized"][1] == pytest.approx([0.5, 0.5, 0.0])
    base = report["baseline"]
    assert base["majority_class"] == "a" and base["majority_source"] == "train"
    assert base["accuracy"] == pytest.approx(0.5)
    assert base["weighted_f1"] == pytest.approx(0.5 * 2 / 3)
    assert base["macro_f1"] == pytest.approx(2 / 9)
    assert base["uar"] == pytest.approx(1 / 3)


def test_names_and_ids_give_the_same_report():
    by_id = classification_report([0, 1, 2, 2], [0, 2, 2, 1], CLASSES)
    by_name = classification_report(["a", "b", "c", "c"], ["a", "c", "c", "b"], CLASSES)
    assert by_id == by_name
    # Without a train majority the most frequent class of the set is used, and said so.
    assert by_id["baseline"]["majority_class"] == "c"
    assert by_id["baseline"]["majority_source"] == "evaluated set"


def test_unknown_label_name_and_empty_set_are_rejected():
    with pytest.raises(ValueError, match="'z'"):
        classification_report(["a", "z"], ["a", "a"], CLASSES)
    with pytest.raises(ValueError, match="empty"):
        classification_report([], [], CLASSES)


def test_class_absent_from_the_set_has_zero_support_and_normalised_row():
    report = classification_report([0, 0, 1], [0, 1, 1], CLASSES)
    assert report["per_class"]["c"]["support"] == 0
    assert report["confusion_matrix_normalized"][2] == [0.0, 0.0, 0.0]
    # Macro averages over classes that occur (a, b), not counting c as zero.
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_every_average_runs_over_the_classes_present_in_y_true():
    """A model predicting classes absent from the set and the majority baseline average over
    the same classes (those of y_true), so their macro F1 can be compared row by row."""
    classes = PAPER_CLASSES                       # neutral, sad, happy, surprise, angry
    y_true = [0, 0, 0, 0, 2, 2, 4, 4]             # three classes present
    y_pred = [0, 0, 1, 3, 2, 0, 4, 3]             # predicts sad and surprise, absent from y_true
    report = classification_report(y_true, y_pred, classes, majority_class="neutral")
    assert report["label_set"] == ["neutral", "happy", "angry"]
    # f1: neutral p 2/3 r 1/2 -> 4/7; happy p 1 r 1/2 -> 2/3; angry p 1 r 1/2 -> 2/3
    assert report["macro_f1"] == pytest.approx((4 / 7 + 2 / 3 + 2 / 3) / 3)
    assert report["uar"] == pytest.approx(0.5)
    assert report["weighted_f1"] == pytest.approx((4 * 4 / 7 + 2 * 2 / 3 + 2 * 2 / 3) / 8)
    base = report["baseline"]                     # all neutral: f1 neutral 2/3, others 0
    assert base["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert base["uar"] == pytest.approx(1 / 3)
    # The confusion matrix and the per-class table keep all five classes.
    assert len(report["confusion_matrix"]) == 5 and report["per_class"]["sad"]["support"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_with_every_class_present_the_numbers_are_the_scikit_learn_defaults(seed):
    from sklearn import metrics as skm

    rng = np.random.default_rng(seed)
    y_true = np.concatenate([np.arange(5), rng.integers(0, 5, 200)])
    y_pred = np.where(rng.random(205) < 0.6, y_true, rng.integers(0, 5, 205))
    report = classification_report(y_true, y_pred, PAPER_CLASSES, majority_class=0)
    assert report["macro_f1"] == skm.f1_score(y_true, y_pred, average="macro")
    assert report["weighted_f1"] == skm.f1_score(y_true, y_pred, average="weighted")
    assert report["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred), abs=1e-15)
    assert report["label_set"] == PAPER_CLASSES
    base = np.zeros_like(y_true)
    assert report["baseline"]["macro_f1"] == skm.f1_score(y_true, base, average="macro",
                                                          zero_division=0)


def test_paper_confusion_matrix_reproduces_the_reported_numbers():
    report = report_from_confusion(PAPER_CM, PAPER_CLASSES, majority_class="neutral")
    assert report["n"] == 2544
    assert report["accuracy"] == pytest.approx(2285 / 2544)
    assert round(report["accuracy"], 4) == 0.8982
    assert round(report["weighted_f1"], 3) == 0.878
    assert round(report["macro_f1"], 3) == 0.389
    assert round(report["uar"], 3) == 0.337
    recalls = {name: round(row["recall"], 3) for name, row in report["per_class"].items()}
    assert recalls == {"neutral": 0.986, "sad": 0.188, "happy": 0.341, "surprise": 0.1,
                       "angry": 0.069}
    assert report["per_class"]["neutral"]["support"] == 2230
    base = report["baseline"]
    assert base["accuracy"] == pytest.approx(2230 / 2544)
    assert round(base["accuracy"], 3) == 0.877
    assert round(base["weighted_f1"], 3) == 0.819
    assert report["confusion_matrix"] == PAPER_CM


def test_report_from_confusion_rejects_wrong_shape():
    with pytest.raises(ValueError, match="3x3"):
        report_from_confusion([[1, 2], [3, 4]], CLASSES)


def test_batch_averaged_f1_scores_each_batch_alone():
    y_true, y_pred = [0, 0, 1, 1, 0], [0, 0, 1, 0, 0]
    # batches: [0,0]->1.0; [1,1] vs [1,0] -> class 1 f1 2/3 (class 0 has no support); [0]->1.0
    assert batch_averaged_f1(y_true, y_pred, batch_size=2) == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert batch_averaged_f1(y_true, y_pred, batch_size=2, drop_last=True) == \
        pytest.approx((1 + 2 / 3) / 2)
    # One batch holding everything equals the whole-set weighted F1.
    whole = classification_report(y_true, y_pred, CLASSES)["weighted_f1"]
    assert batch_averaged_f1(y_true, y_pred, batch_size=5) == pytest.approx(whole)
    with pytest.raises(ValueError):
        batch_averaged_f1([0], [0], batch_size=2, drop_last=True)


def test_regression_report_hand_computed():
    report = regression_report([1, 2, 3, 4], [1, 2, 3, 5])
    assert report["n"] == 4
    assert report["rmse"] == pytest.approx(0.5)
    assert report["mae"] == pytest.approx(0.25)
    # cov 1.625, var(y) 1.25, var(yhat) 2.1875, mean gap 0.25
    assert report["pearson_r"] == pytest.approx(1.625 / math.sqrt(1.25 * 2.1875))
    assert report["ccc"] == pytest.approx(3.25 / 3.5)


def test_ccc_penalises_bias_that_pearson_ignores():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    shifted = regression_report(y, y + 1)
    assert shifted["pearson_r"] == pytest.approx(1.0)
    assert shifted["ccc"] == pytest.approx(2 * 1.25 / (1.25 + 1.25 + 1.0))
    assert concordance_correlation(y, y) == pytest.approx(1.0)


def test_constant_prediction_gives_nan_correlation_not_an_error():
    report = regression_report([1, 2, 3], [2, 2, 2])
    assert math.isnan(report["pearson_r"])
    assert report["ccc"] == pytest.approx(0.0)
