"""Paper scale on one GPU, in one short run: what issue #14's targets 1, 2 and 4 need measured.

    python -m benchmarks.paper_scale --size paper --out DIR     # on a GPU (sized for < 9 min)
    python -m benchmarks.paper_scale --size tiny --out DIR      # the same steps in seconds (tests)

Steps, each timed and written to DIR/paper_scale.json + .md as soon as it ends (a run cut
short still leaves what it measured):
1. corpus: a KEMDy20-sized synthetic corpus (40 sessions x 336 utterances, KEMDy20's format),
   prepared with configs/paper.yaml. The text side uses the KoBERT stand-in at KoBERT's width
   (768): the hub is unreachable on the device, and the text regressor sees only the states'
   shape, so its speed is KoBERT's; encoding the states once is the one step a real KoBERT makes
   slower (12 layers instead of the stand-in's 2).
2. train: `train_stage` per stage for two epochs (train.precision auto), as koemo runs it:
   seconds per epoch (log.json) and the fixed cost of a run (building the data, caches, test
   scoring: wall time less the epochs).
3. projection: one paper run (audio 20 + text 30 + multimodal 30 epochs) and every plan of
   configs/ (koemo.experiments.scaleout.full_plan) from those figures: fixed cost + epochs x seconds per
   epoch, for every run of the plan. An upper bound: early stopping can only shorten a run, and
   ablation runs with fewer layers are costed as the 7-layer model. Labelled as a projection.
4. loop: `bench_loop.stage_rows` per stage at paper shapes: the first 150 steps of an epoch,
   the model alone against `koemo train`'s loop with the data resident on the device and
   through the DataLoader.

Steps 2-4 are the `scale` part. The `packing` part (issue #24, `--parts packing`: a call of
its own, also sized for < 9 min on a GPU; benchmarks/packing.py) measures, after the corpus:
5. packing_<stage>: samples per second of 1, 2, 4 and 8 runs at once on the device
   (`reproduce.runs_per_device`), each run's peak memory beside koemo's footprint estimate;
6. trim_<stage>: the corrected config's training steps and evaluation batches, whole and
   trimmed to their longest valid length (`train.trim_padding`), audio and text.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks.bench_loop import prepared_workdir, stage_rows
from benchmarks.common import REPO_ROOT

STAGES = ("audio", "text", "multimodal")
KEMDY20 = {"sessions": 40, "utterances_per_session": 336, "seed": 0, "silent_recordings": 2}
SIZES = {
    # 150 loop steps: ratios over ~40% of an audio epoch, so the whole check fits one call.
    "paper": {"config": "paper", "corpus": KEMDY20, "train_epochs": 2, "loop_repeats": 1,
              "loop_steps": 150, "plans": ["paper", "paper_budget", "corrected"],
              "concurrency": (1, 2, 4, 8), "packing_steps": 30, "packing_warmup": 5,
              "trim_steps": 100},
    "tiny": {"config": "tiny", "corpus": None, "train_epochs": 1, "loop_repeats": 1,
             "loop_steps": None, "plans": ["tiny"],
             "concurrency": (1, 2), "packing_steps": 2, "packing_warmup": 1, "trim_steps": None},
}
PARTS = ("scale", "packing")
# The stand-in instead of the unreachable hub KoBERT; the GPU's own precision.
PAPER_OVERRIDES = ["text.tokenizer=standin", "text.encoder=standin", "train.precision=auto"]


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_cores": __import__("os").cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    else:
        info["gpu"] = "none (CPU)"
    return info


class Record:
    """The results so far, rewritten after every step."""

    def __init__(self, out: Path, size: str):
        self.out, self.data = out, {"size": size, "machine": machine(), "steps": {}}
        out.mkdir(parents=True, exist_ok=True)

    def step(self, name: str, **values) -> None:
        self.data["steps"][name] = values
        (self.out / "paper_scale.json").write_text(json.dumps(self.data, indent=2, default=str))
        (self.out / "paper_scale.md").write_text(render(self.data))
        print(f"[paper_scale] {name}: {json.dumps(values, default=str)[:400]}", flush=True)


def load_cfg(size: str) -> dict:
    from koemo.config.load import load_config, with_changes

    spec = SIZES[size]
    cfg = load_config(spec["config"], PAPER_OVERRIDES if size == "paper" else [])
    if spec["corpus"]:
        cfg = with_changes(cfg, {"synthetic": dict(spec["corpus"])})
    return cfg


def train_figures(workdir: Path, cfg: dict, epochs: int) -> dict:
    """Seconds per epoch and fixed seconds per run of each stage, from real `train_stage` runs
    (the workdir's own run folders: the classifier finds the regressors there)."""
    from koemo.modeling.train import train_stage

    from koemo.config.load import with_changes

    run_cfg = with_changes(cfg, {"train": {stage: {"epochs": epochs} for stage in STAGES}})
    figures = {}
    for stage in STAGES:
        started = time.perf_counter()
        run_dir = train_stage(stage, workdir, run_cfg, seed=1, resume=False, progress=False)
        wall = time.perf_counter() - started
        log = json.loads((run_dir / "log.json").read_text())
        per_epoch = sum(row["seconds"] for row in log) / len(log)
        metrics = json.loads((run_dir / "test_metrics.json").read_text())
        figures[stage] = {"epochs_run": len(log), "seconds_per_epoch": round(per_epoch, 3),
                          "fixed_seconds": round(wall - per_epoch * len(log), 3),
                          "wall_seconds": round(wall, 3), "precision": metrics.get("precision")}
    return figures


def projection(figures: dict, cfg: dict) -> dict:
    """Seconds of one run of each stage at the config's epoch budgets (no early stopping)."""
    return {stage: figures[stage]["fixed_seconds"]
            + cfg.train.stage(stage).epochs * figures[stage]["seconds_per_epoch"]
            for stage in STAGES}


def plan_projections(figures: dict, plans: list[str]) -> dict:
    from koemo.config.load import load_config
    from koemo.experiments.scaleout import full_plan

    out = {}
    for name in plans:
        try:
            cfg = load_config(name)
        except Exception as err:            # a plan config this checkout does not have
            out[name] = {"error": str(err)}
            continue
        runs = full_plan(cfg)
        per_run = projection(figures, cfg)
        counts = {stage: sum(spec.stage == stage for spec in runs) for stage in STAGES}
        seconds = sum(per_run[spec.stage] for spec in runs)
        out[name] = {"runs": len(runs), "runs_per_stage": counts,
                     "projected_gpu_minutes": round(seconds / 60, 1)}
    return out


def run(size: str, out: Path, workdir_root: Path | None = None, parts=PARTS) -> dict:
    from koemo.modeling.precision import resolve_device

    spec = SIZES[size]
    record = Record(out, size)
    cfg = load_cfg(size)
    device = resolve_device(cfg.train.device)
    root = workdir_root or REPO_ROOT / "data" / "bench" / f"paper-scale-{size}"
    started = time.perf_counter()
    workdir = prepared_workdir(cfg, root)
    from koemo.config.workdir import load_utterances
    record.step("corpus", seconds=round(time.perf_counter() - started, 1),
                utterances=len(load_utterances(workdir)), workdir=str(workdir))

    if "scale" in parts:
        scale(spec, cfg, workdir, root, device, record)
    if "packing" in parts:
        packing(spec, cfg, workdir, root, device, record)
    return record.data


def scale(spec: dict, cfg: dict, workdir: Path, root: Path, device, record: Record) -> None:
    # Training first: the paper-run time and the plan projections matter most if time runs out.
    figures = train_figures(workdir, cfg, spec["train_epochs"])
    record.step("train", stages=figures)
    per_run = projection(figures, cfg)
    record.step("projection",
                one_paper_run_minutes=round(sum(per_run.values()) / 60, 1),
                per_stage_minutes={k: round(v / 60, 2) for k, v in per_run.items()},
                plans=plan_projections(figures, spec["plans"]),
                note="projection from the measured epochs: fixed cost + epochs x seconds per "
                     "epoch per run, without early stopping (an upper bound)")

    rows = []
    for stage in STAGES:
        stage_started = time.perf_counter()
        rows += stage_rows(stage, workdir, cfg, root / "bench-runs" / stage, device,
                           spec["loop_repeats"], warmup=3, max_steps=spec["loop_steps"])
        record.step(f"loop_{stage}", seconds=round(time.perf_counter() - stage_started, 1),
                    rows=[{k: r[k] for k in ("benchmark", "baseline_s", "candidate_s",
                                             "loop_over_model", "notes")}
                          for r in rows if r["benchmark"].startswith(f"loop: {stage}")])


def packing(spec: dict, cfg: dict, workdir: Path, root: Path, device, record: Record) -> None:
    """Several runs per device, then trimmed batches (benchmarks/packing.py)."""
    from benchmarks.packing import concurrency_rows, packing_pool, trim_rows

    pool, manager = packing_pool(spec["concurrency"])
    with pool, manager:
        for stage in STAGES:
            started = time.perf_counter()
            rows = concurrency_rows(stage, cfg, spec["concurrency"], spec["packing_steps"],
                                    spec["packing_warmup"], pool, manager)
            record.step(f"packing_{stage}", seconds=round(time.perf_counter() - started, 1), **rows)
    for stage in ("audio", "text"):
        started = time.perf_counter()
        rows = trim_rows(stage, workdir, cfg, root / "trim-runs" / stage, device, spec["trim_steps"])
        record.step(f"trim_{stage}", seconds=round(time.perf_counter() - started, 1), **rows)


def render(data: dict) -> str:
    lines = [f"# Paper scale ({data['size']})", "", "| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in data["machine"].items()]
    for name, values in data["steps"].items():
        lines += ["", f"## {name}", "", "```json", json.dumps(values, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir-root", type=Path, default=None)
    parser.add_argument("--parts", default="scale", help="scale, packing or scale,packing "
                        "(each part is sized for one < 9 min call on a GPU)")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",")]
    if not set(parts) <= set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}, not {args.parts!r}")
    run(args.size, args.out, args.workdir_root, parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
