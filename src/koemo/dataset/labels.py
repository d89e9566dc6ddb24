"""Emotion classes and the label policies that turn KEMDy20's total-emotion column into labels."""
from __future__ import annotations

# Class ids as the original: neutral 0, sad 1, happy 2, surprise 3, angry 4.
PAPER_CLASSES = ("neutral", "sad", "happy", "surprise", "angry")
# KEMDy20 spells disgust `disqust` in the total column and `disgust` in rater columns.
SEVEN_CLASSES = PAPER_CLASSES + ("disgust", "fear")
SPELLING_FIXES = {"disqust": "disgust"}
LABEL_POLICIES = ("paper5", "keep_ties", "seven")


def normalise_label(name: str) -> str:
    name = name.strip().lower()
    return SPELLING_FIXES.get(name, name)


def classes_for(policy: str, configured: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    if policy not in LABEL_POLICIES:
        raise ValueError(f"unknown label policy {policy!r}; choose one of {LABEL_POLICIES}")
    if policy == "seven":
        return SEVEN_CLASSES
    return tuple(configured) if configured else PAPER_CLASSES


def resolve_label(emotion_total: str, policy: str, classes: tuple[str, ...]) -> tuple[str | None, str]:
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
