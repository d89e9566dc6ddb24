"""Numbers the reference paper reports (docs/paper.md), for "paper vs ours" tables.

Everything here is quoted from the paper and its slides, never measured by koemo. Tables mark
these values as "paper (reported)".
"""
from __future__ import annotations

from koemo.config.schema import PAPER_CLASSES

# The paper's five classes in the original's label-id order: the schema's, not a copy.
CLASSES = PAPER_CLASSES

# Final multimodal test confusion matrix (rows true, columns predicted, CLASSES order).
CONFUSION = (
    (2198, 2, 12, 11, 7),
    (26, 6, 0, 0, 0),
    (141, 2, 76, 2, 2),
    (25, 0, 2, 3, 0),
    (26, 0, 0, 1, 2),
)

FINAL_TEST = {
    "accuracy": 0.8982,
    "weighted_f1_batch_mean": 0.8694,   # the paper's own figure: mean of per-batch weighted F1
    # Derived from the confusion matrix above (whole-set metrics the paper did not print):
    "weighted_f1": 0.878,
    "macro_f1": 0.389,
    "uar": 0.337,
}
RECALL = {"neutral": 0.986, "sad": 0.188, "happy": 0.341, "surprise": 0.100, "angry": 0.069}
ALL_NEUTRAL = {"accuracy": 0.877, "weighted_f1": 0.819}

# Regressor validation RMSE by number of transformer layers.
AUDIO_VALID_RMSE = {3: 0.22, 4: 0.21, 5: 0.215, 7: 0.207}
TEXT_VALID_RMSE = {5: 0.425}

# Multimodal test weighted F1 (batch-averaged) by (audio layers, text layers).
COMBINATION_WEIGHTED_F1 = {(6, 6): 0.8754, (7, 6): 0.8760, (7, 5): 0.8693}

# Welch ANOVA by emotion, and class means (angry, happy, neutral, sad, surprise order in the paper).
WELCH = {
    "arousal": {"F": 63.12, "df1": 4, "df2": 246.83, "eta_sq": 0.379},
    "valence": {"F": 422.26, "df1": 4, "df2": 245.75, "eta_sq": 0.702},
}
CLASS_MEANS = {
    "arousal": {"angry": 3.560, "happy": 3.583, "neutral": 3.213, "sad": 2.939, "surprise": 3.380},
    "valence": {"angry": 2.212, "happy": 3.824, "neutral": 2.995, "sad": 2.508, "surprise": 3.093},
}

SPLIT_SIZES = {"train": 9161, "valid": 1018, "test": 2545, "train_augmented": 10043}

RUNTIME = {"text_s_per_epoch": 45, "multimodal_s_per_epoch": 300, "mel_extraction_s": 322}
