"""One colour per emotion class, in every chart of a prediction: the page's probability bars
and valence-arousal point (koemo.inference.app) and the timeline's bands and stacked
probabilities (koemo.inference.segments: `koemo predict --segments --plot`, the page)."""
from __future__ import annotations

from typing import Sequence

# The seven emotions koemo knows (koemo.dataset.labels.SEVEN_CLASSES).
CLASS_COLOURS = {"neutral": "#8c8c8c", "sad": "#3b6fb6", "happy": "#e3a21a",
                 "surprise": "#8e5bb5", "angry": "#c8372d", "disgust": "#4f8f3a",
                 "fear": "#2f9c9c"}
# Classes of another label set, in their order.
OTHER_COLOURS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#1f77b4")


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """{class: hex colour} for `classes`: the palette's colour, else the next of OTHER_COLOURS."""
    others = iter(OTHER_COLOURS * (len(classes) // len(OTHER_COLOURS) + 1))
    return {name: CLASS_COLOURS.get(name) or next(others) for name in classes}
