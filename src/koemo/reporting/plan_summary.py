"""`koemo plan --summary`: the size and workload of a config's plan, without training anything.

Per part of the plan (main, layer ablation, combinations, fusion: koemo.experiments.plan.plan_parts)
it counts the runs the part adds per stage; a run an earlier part already trains (same run
directory) counts there once, and under `shared` here. The workload is in row-epochs: training
rows x the stage's maximum epochs, summed over the runs. Early stopping can end a run sooner,
so row-epochs are an upper bound of what the runs train.

Training rows come from a prepared workdir (each run's augmented training split, as it trains
it) or, without one, from the expected KEMDy20 size (docs/kemdy20.md, "Plan sizes"): the
paper's augmented training set, 10,043 rows, for every split.

At the paper's shapes the summary adds an H100 estimate: row-epochs x the model-alone epoch
time measured on an H100 (H100_EPOCH_S). It leaves out data loading, validation, testing and
the caches, and assumes every run trains all its epochs: an estimate, not a measurement.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from koemo.config.schema import STAGES, Config
from koemo.experiments import plan as ex


# Model-alone seconds of one training epoch over H100_ROWS rows at the paper's shapes on an
# NVIDIA H100 80GB HBM3, measured by benchmarks/bench_epoch.py on 2026-11-22
# (benchmarks/results/2026-11-22-full-epoch-h100.csv): audio fp32 and bf16 autocast, text over
# cached KoBERT states (fp32), multimodal over cached frozen regressor outputs (fp32).
H100_EPOCH_S = {"audio": {"fp32": 29.16, "bf16": 8.85}, "text": {"fp32": 8.80},
                "multimodal": {"fp32": 33.01}}
H100_ROWS = 10_043
H100_SOURCE = "benchmarks/results/2026-11-22-full-epoch-h100.csv"
# What a budget has to match for the H100 figures to apply (they were measured at these).
PAPER_SHAPES = (("features",), ("models",), ("text", "max_length"))


def expected_train_rows() -> int:
    """The paper's augmented training set (docs/paper.md), the expected size of every split."""
    from koemo.reporting.paper_numbers import SPLIT_SIZES

    return int(SPLIT_SIZES["train_augmented"])


class _Rows:
    """Training rows of a run: its augmented training split in the workdir, or the expected
    size. One count per distinct (split, data and augmentation settings, seed)."""

    def __init__(self, workdir: str | Path | None):
        self.table = None
        if workdir is not None:
            from koemo.reporting.report import load_table

            self.table = load_table(workdir)
        self.cache: dict[str, int] = {}

    def __call__(self, spec: ex.RunSpec) -> int:
        if self.table is None:
            return expected_train_rows()
        from koemo.config.fingerprints import fingerprint
        from koemo.modeling.data import stage_rows

        cfg = spec.cfg
        key = fingerprint([cfg.data, cfg.augment, cfg.fixes, spec.seed])
        if key not in self.cache:
            self.cache[key] = len(stage_rows(self.table, cfg, "train", spec.seed))
        return self.cache[key]


def summarize(cfg: Config, workdir: str | Path | None = None) -> dict:
    """{"parts": one row per part plus `total`, "notes": how the numbers were obtained}."""
    from koemo.modeling.runs import run_dir_for

    if workdir is not None and not (Path(workdir) / "utterances.parquet").is_file():
        from koemo.errors import KoemoInputError
        raise KoemoInputError(f"{workdir}: no utterances.parquet; run `koemo prepare` first, "
                              "or leave --workdir out for the expected KEMDy20 size")
    rows_of = _Rows(workdir)
    rates = h100_seconds_per_row(cfg)
    seen: set[Path] = set()
    parts = []
    for part, specs in ex.plan_parts(cfg, workdir).items():
        row: dict[str, Any] = {"part": part, **{stage: 0 for stage in STAGES}, "runs": 0, "shared": 0,
               **{f"{stage} row-epochs": 0 for stage in STAGES}}
        for spec in specs:
            run_dir = run_dir_for("", spec.cfg, spec.stage, spec.seed, spec.classifier_kind)
            if run_dir in seen:
                row["shared"] += 1
                continue
            seen.add(run_dir)
            row[spec.stage] += 1
            row["runs"] += 1
            row[f"{spec.stage} row-epochs"] += rows_of(spec) * int(cfg.train.stage(spec.stage).epochs)
        parts.append(row)
    total: dict[str, Any] = {"part": "total", **{key: sum(row[key] for row in parts)
                                 for key in parts[0] if key != "part"}}
    parts.append(total)
    for row in parts:
        row["H100 estimate (min)"] = (
            round(sum(row[f"{s} row-epochs"] * rates[s] for s in STAGES) / 60, 1)
            if rates else None)
    foundation = None
    if cfg.reproduce.foundation is not None:     # notebook 5-4 (koemo.experiments.foundation_cost)
        from koemo.experiments.foundation_cost import study_cost
        foundation = study_cost(cfg, workdir)
    return {"config": cfg.name, "workdir": str(workdir) if workdir else None,
            "epochs": {s: int(cfg.train.stage(s).epochs) for s in STAGES},
            "parts": parts, "notes": _notes(cfg, workdir, rates), "foundation": foundation}


def h100_seconds_per_row(cfg: Config) -> dict[str, float] | None:
    """Measured H100 seconds per training row and epoch of each stage for this config's
    precision; None when the config's shapes are not the paper's (the figures do not apply)."""
    from koemo.config.load import load_config

    paper = load_config("paper")
    for path in PAPER_SHAPES:
        ours: Any = cfg.as_dict()                           # the shapes as written
        theirs: Any = paper.as_dict()
        for key in path:
            ours, theirs = ours.get(key), theirs.get(key)
        if ours != theirs:
            return None
    if any(cfg.train.stage(s).batch_size != paper.train.stage(s).batch_size for s in STAGES):
        return None
    mixed = str(cfg.train.precision) in ("bf16", "auto")
    return {s: H100_EPOCH_S[s]["bf16" if mixed and "bf16" in H100_EPOCH_S[s] else "fp32"] / H100_ROWS
            for s in STAGES}


def _notes(cfg: Config, workdir: str | Path | None, rates: dict[str, float] | None) -> list[str]:
    epochs = ", ".join(f"{s} {int(cfg.train.stage(s).epochs)}" for s in STAGES)
    notes = [f"row-epochs = training rows x maximum epochs ({epochs}); early stopping "
             f"(patience {cfg.train.audio.patience or '-'}) can end a run sooner."]
    if workdir is not None:
        notes.append(f"training rows: each run's augmented training split in {workdir}.")
    else:
        notes.append(f"training rows: the expected KEMDy20 size, {expected_train_rows():,} "
                     "augmented training rows per split (docs/kemdy20.md, \"Plan sizes\").")
        if cfg.synthetic:
            notes.append("this config trains on a synthetic corpus: pass --workdir of a prepared "
                         "one for its real sizes.")
    if rates is None:
        notes.append("H100 estimate: none, the H100 figures were measured at the paper's shapes.")
    else:
        precision = cfg.train.precision
        notes.append(f"H100 estimate (train.precision {precision}): row-epochs x model-alone epoch "
                     f"time per row measured on an H100 ({H100_SOURCE}: "
                     + ", ".join(f"{s} {rates[s] * 1000:.2f} s" for s in STAGES)
                     + " per 1,000 rows); without data loading, validation, testing and caches, "
                     "every run at its maximum epochs. An estimate, not a measurement.")
    return notes


def render(summary: dict, fmt: str = "txt") -> str:
    """txt: a Markdown table and its notes; json: the summary as it is."""
    if fmt == "json":
        return json.dumps(summary, indent=2) + "\n"
    parts = summary["parts"]
    keys = [key for key in parts[0] if key != "H100 estimate (min)" or
            parts[0][key] is not None]
    lines = [f"Plan of config `{summary['config']}`"
             + (f" over {summary['workdir']}" if summary["workdir"] else "") + ":", "",
             "| " + " | ".join(keys) + " |",
             "|---|" + "|".join("---:" for _ in keys[1:]) + "|"]
    for row in parts:
        cells = [row[key] if key == "part" else _number(row[key]) for key in keys]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [""] + [f"- {note}" for note in summary["notes"]]
    if summary.get("foundation"):
        lines += [""] + _foundation_lines(summary["foundation"])
    return "\n".join(lines) + "\n"


def _gpu_minutes(study: dict[str, Any]) -> str:
    """How much GPU time the upstreams' passes take, as far as their shapes are known."""
    sized, total = study["upstreams sized"], len(study["upstreams"])
    if not sized:
        return ("GPU-minutes unknown: no upstream's config file is at hand (they are read from "
                "the hub, or from local copies after `koemo fetch`)")
    return (f"{study['GPU-min (estimate)']:,.1f} GPU-minutes estimated for the "
            f"{'' if sized == total else f'{sized} of {total} '}upstreams whose shape is known")


def _foundation_lines(study: dict[str, Any]) -> list[str]:
    """The foundation study (notebook 5-4): its runs, then each upstream's pass over the corpus."""
    lines = [f"Foundation study (notebook 5-4): tables {', '.join(study['tables'])}; "
             f"{study['splits']} splits: {study['probe runs']:,} probe runs, "
             f"{study['zero-shot runs']:,} zero-shot and {study['majority runs']:,} majority-class "
             f"runs; {_gpu_minutes(study)}:", ""]
    keys = list(study["upstreams"][0]) if study["upstreams"] else []
    lines += ["| " + " | ".join(keys) + " |", "|---|---|" + "|".join("---:" for _ in keys[2:]) + "|"]
    for row in study["upstreams"]:
        cells = [_number(row[k]) if isinstance(row[k], (int, float)) else
                 ("unknown" if row[k] is None else row[k]) for k in keys]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines + [""] + [f"- {note}" for note in study["notes"]]


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
