"""Figures for paper/ (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from koemo.config.schema import Config  # noqa: E402

from koemo.modeling.runs import RunDir  # noqa: E402
from koemo.reporting import paper_numbers as P  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _matrix(ax: Axes, cm: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Row-normalised colours (recall), raw counts written in the cells."""
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count:g}", ha="center", va="center",
                color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def confusion_matrices(runs: pd.DataFrame, classes: Sequence[str], path: str | Path) -> Path | None:
    """The paper's reported matrix beside ours (summed over seeds) for each protocol/variant."""
    from koemo.experiments.plan import with_protocol

    multimodal = runs[runs["stage"] == "multimodal"]
    if multimodal.empty:
        return None
    groups = list(with_protocol(multimodal).groupby(["protocol", "variant"], sort=False))
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(3.6 * (len(groups) + 1), 3.6))
    _matrix(axes[0], np.array(P.CONFUSION), P.CLASSES, "paper (reported), KEMDy20")
    for ax, ((protocol, variant), group) in zip(axes[1:], groups):
        cm = np.sum([np.array(RunDir(d).metrics().confusion_matrix) for d in group["run_dir"]],
                    axis=0)
        _matrix(ax, cm, classes, f"ours: {protocol}, {variant}\n(sum over {len(group)} runs)")
    return _save(fig, path)


def duration_histogram(table: pd.DataFrame, path: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(table["duration"], bins=40, color="0.4")
    ax.set_xlabel("utterance duration (s)")
    ax.set_ylabel("utterances")
    return _save(fig, path)


def fusion_figure(summary: pd.DataFrame, path: str | Path) -> Path | None:
    """Macro F1 (mean ± std) of each fusion kind and the majority baseline; None (no file)
    without fusion runs."""
    if summary.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    labels = summary["classifier"].astype(str) + " (" + summary["protocol"].astype(str) + ")"
    ax.barh(labels, summary["mean"], xerr=summary["std"], color="0.5")
    ax.set_xlabel("macro F1")
    ax.invert_yaxis()
    return _save(fig, path)


def augmentation_examples(workdir: str | Path, cfg: Config, path: str | Path) -> Path:
    """One training utterance before and after frequency masking (mel channel)."""
    from koemo.dataset.augment import frequency_mask
    from koemo.audio.feature_store import open_feature_store

    store = open_feature_store(workdir, cfg)
    index = int(np.argmax(store.n_frames))
    feat, frames = store.get(index), int(store.n_frames[index])
    masked = frequency_mask(feat, frames, np.random.default_rng(cfg.seed), cfg.augment,
                            spectrogram_only=cfg.fixes.mask_spectrogram_only)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
    for ax, data, title in zip(axes, (feat, masked), ("mel (dB)", "frequency-masked")):
        ax.imshow(data[0, :frames].T, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("mel bin")
    return _save(fig, path)


CURVE_METRICS = {"audio": ("valid_ccc", "validation CCC"), "text": ("valid_ccc", "validation CCC"),
                 "multimodal": ("valid_macro_f1", "validation macro F1")}


def learning_curves(runs: pd.DataFrame, path: str | Path, stage: str | None = None,
                    by: tuple[str, ...] = ("variant", "protocol")) -> Path | None:
    """Per-epoch curves of a notebook's runs (each run's log): train loss, validation loss
    and the validation metric (CCC for the regressors, macro F1 for the classifier). Runs are
    pooled by `by` (plus the classifier for multimodal runs): the line is the mean over the
    runs (seeds, folds) still training at that epoch, the band their min-max range.
    None when no run has a log."""
    from koemo.experiments.plan import with_protocol

    if stage is not None:
        runs = runs[runs["stage"] == stage]
    if runs.empty:
        return None
    runs = with_protocol(runs)
    stage = stage or str(runs["stage"].iloc[0])
    keys = list(by) + (["classifier"] if stage == "multimodal" and "classifier" in runs else [])
    metric, metric_label = CURVE_METRICS.get(stage, ("valid_loss", "validation loss"))
    columns = [("train_loss", "train loss"), ("valid_loss", "validation loss"), (metric, metric_label)]
    groups = []
    for key, group in runs.groupby(keys, sort=False):
        logs = [run.log() for run in map(RunDir, dict.fromkeys(group["run_dir"])) if run.has_log()]
        if logs:
            label = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            groups.append((f"{label} ({len(logs)} run{'s' * (len(logs) > 1)})", pd.concat(logs)))
    if not groups:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for label, logs in groups:
        for ax, (column, _) in zip(axes, columns):
            if column not in logs:
                continue
            stats = logs.groupby("epoch")[column].agg(["mean", "min", "max"])
            line, = ax.plot(stats.index, stats["mean"], marker=".", label=label)
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.15,
                            color=line.get_color())
    for ax, (_, title) in zip(axes, columns):
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel(stage)
    axes[-1].legend(fontsize=7)
    return _save(fig, path)
