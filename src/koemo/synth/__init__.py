"""Synthetic corpus in KEMDy20's exact on-disk format (for tests, the demo and benchmarks).

Audio carries arousal (speech.py), text carries valence (sentences.py), EDA follows arousal
while TEMP does not (biosignals.py); corpus.py ties them together and writes the files.
"""
from koemo.synth.corpus import CLASS_TARGETS, DEFAULT_CLASS_PROBS, write_corpus

__all__ = ["CLASS_TARGETS", "DEFAULT_CLASS_PROBS", "write_corpus"]
