"""Emotion classes and the label policies that turn a total-emotion column (KEMDy20's or
KEMDy19's) into labels.

The paper's five classes are the default; `data.classes` may name any of the seven emotions
both corpora annotate (fear and disgust too), in the order that gives their class ids.
Cross-corpus work scores the classes both sides share (`shared_classes`)."""
from __future__ import annotations

from typing import Sequence

# The classes in label-id order (neutral 0, sad 1, happy 2, surprise 3, angry 4; then disgust,
# fear) and the label policies are settings' legal values: koemo.config.schema.
from koemo.config.schema import PAPER_CLASSES, SEVEN_CLASSES, Data, LabelPolicy, label_classes

# KEMDy20 spells disgust `disqust` in the total column and `disgust` in rater columns.
SPELLING_FIXES = {"disqust": "disgust"}


def normalise_label(name: str) -> str:
    name = name.strip().lower()
    return SPELLING_FIXES.get(name, name)


def classes_for(policy: LabelPolicy, configured: Sequence[str] | None = None) -> tuple[str, ...]:
    """data.label_policy's classes in label-id order (data.classes when set; the schema checks
    both: a misspelt or repeated class is refused when the config loads)."""
    return label_classes(policy, configured)


def data_classes(data: Data) -> tuple[str, ...]:
    """The classes of a config's data section in label-id order: what prepare labels its rows
    with, the classifier's outputs and what its scores are named by."""
    return classes_for(data.label_policy, data.classes)


def shared_classes(*class_sets: Sequence[str]) -> tuple[str, ...]:
    """The classes every set holds, in the first set's order: what a model trained on one
    corpus can be scored on in another."""
    first, *others = [tuple(normalise_label(c) for c in classes) for classes in class_sets]
    return tuple(c for c in first if all(c in other for other in others))


def resolve_label(emotion_total: str, policy: LabelPolicy, classes: tuple[str, ...]
                  ) -> tuple[str | None, str]:
    """Return (label, reason). label is None when the row is dropped; reason says why.

    paper5:    keep rows whose total emotion is exactly one of the classes (ties dropped).
    keep_ties: a tie keeps the first of its labels in class order (neutral last resort).
    seven:     single-label rows of all seven emotions.
    """
    raw = (emotion_total or "").strip()
    if not raw:
        return None, "empty total emotion"
    labels = [normalise_label(part) for part in raw.split(";") if part.strip()]
    if policy in ("paper5", "seven"):
        if len(labels) > 1:
            return None, f"tie {raw!r} (label policy {policy})"
        if labels[0] not in classes:
            return None, f"label {raw!r} not in classes (label policy {policy})"
        return labels[0], ""
    if policy == "keep_ties":
        known = [c for c in classes if c in labels and c != "neutral"] or \
                [c for c in classes if c in labels]
        if not known:
            return None, f"label {raw!r} not in classes (label policy {policy})"
        return known[0], ""
    raise ValueError(f"unknown label policy {policy!r}")
