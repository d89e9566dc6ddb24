"""Issue #23: bootstrap intervals over test utterances must be cheap enough to put on every row.

One test fold of KEMDy20's cv5 protocol holds ~2,700 utterances; a row's interval needs 1,000
draws of them. Rows (same draws, same label set, the four classification scores):

- baseline: a loop over draws, scoring each with scikit-learn (koemo.modeling.metrics'
  `_summary`, what the whole-set numbers use), timed on its first 50 draws and scaled;
- candidate: koemo.reporting.uncertainty.classification_scores, every draw from one
  confusion-matrix bincount.
"""
from __future__ import annotations

import numpy as np

SIZES = {"tiny": {"n": 200, "draws": 20}, "full": {"n": 2700, "draws": 1000}}
LOOPED = 50


def run(size: str = "tiny") -> list[dict]:
    from benchmarks.common import make_row, timed
    from koemo.modeling.metrics import _summary
    from koemo.reporting.uncertainty import classification_scores, resample_indices

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    n, draws = SIZES[size]["n"], SIZES[size]["draws"]
    rng = np.random.default_rng(0)
    true = rng.choice(5, size=n, p=[0.85, 0.03, 0.09, 0.015, 0.015])
    pred = np.where(rng.random(n) < 0.8, true, rng.integers(0, 5, n))
    index = resample_indices(n, "bench", draws)
    # the loop costs ~0.1-0.2 s a draw: timed on its first LOOPED draws, scaled to all of them
    looped_index = index[:LOOPED]
    looped, loop_s = timed(lambda: [_summary(true[i], pred[i])["macro_f1"] for i in looped_index])
    baseline_s = loop_s * draws / len(looped_index)
    vectorised, candidate_s = timed(lambda: classification_scores(true, pred, 5, index), repeat=3)
    agree = float(np.mean(np.isclose(looped, vectorised["macro_f1"][:LOOPED])))
    return [make_row(f"{draws} bootstrap draws of {n:,} utterances, 4 scores",
                     "loop of scikit-learn", baseline_s, "one bincount", candidate_s,
                     notes=f"loop timed on {len(looped_index)} draws, scaled to {draws}; macro F1 "
                           f"equal on {agree:.0%} of the draws compared", size=size)]


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "tiny"):
        print(row)
