"""The experiment matrix behind `koemo reproduce`: which runs to train and how to collect them.

A *plan* is a list of `RunSpec`s: one training stage, one config variant (faithful/corrected or
an ablation), one split (paper protocol or a cv5 fold) and one seed. `run_plan` trains what is
missing (every stage is resumable and a finished run is skipped), and `collect` reads each
run's test metrics (koemo.modeling.runs.RunDir) back into one table. Notebooks 2-1 .. 5-2 only call these.

A partial corpus leaves some splits without rows (three sessions fill cv5 folds 0-2 only):
given the workdir, the plans leave those splits out with a printed note, `run_plan` drops any
that remain, and the table it returns names them in `attrs["skipped"]` for the reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from koemo.config.load import with_changes
from koemo.config.schema import (CROSS_PROTOCOLS, FOLDED_PROTOCOLS, N_FOLDS, REGRESSOR_STAGES,
                                  STAGES, Config, FusionKind, Stage, not_results_sections)
from koemo.modeling.progress import emit as emit_progress
from koemo.modeling.runs import RunDir, SplitMetrics


@dataclass(frozen=True)
class RunSpec:
    stage: Stage
    variant: str               # faithful | corrected | an ablation name
    split: str                 # paper | cv5_f0 .. cv5_f4
    seed: int
    cfg: Config = field(hash=False, compare=False, repr=False)
    classifier_kind: FusionKind = "attention_lstm"

    @property
    def key(self) -> tuple:
        return (self.stage, self.variant, self.split, self.seed, self.classifier_kind)


def corrected(cfg: Config) -> Config:
    """The same config with every known defect of the original fixed, and (as
    configs/corrected.yaml) recordings without signal left out of training and scoring."""
    return with_changes(cfg, {"data": {"silent_audio": "drop"},
                              "fixes": {name: True for name in cfg.fixes.as_dict()},
                              "name": f"{cfg.name}-corrected"})


def variant_config(cfg: Config, variant: str) -> Config:
    if variant == "faithful":
        return cfg
    if variant == "corrected":
        return corrected(cfg)
    raise ValueError(f"unknown variant {variant!r}: use faithful or corrected")


def split_config(cfg: Config, split: str) -> Config:
    """`paper` or `session` -> that protocol; `cv5_fK` -> protocol cv5, fold K; `kemdy19_cv5_fK`
    -> that corpus' own folds (a workdir holding both corpora); a cross-corpus protocol ->
    itself. The inverse of koemo.modeling.runs.split_name: a config's own split gives it back."""
    protocol, _, fold = split.rpartition("_f")
    data: dict[str, str | int]
    if split in ("paper", "session") or split in CROSS_PROTOCOLS:
        data = {"protocol": split}
    elif protocol in FOLDED_PROTOCOLS and fold.isdigit():
        data = {"protocol": protocol, "fold": int(fold)}
    else:
        raise ValueError(f"unknown split {split!r}: use paper, session, cv5_f0..cv5_f4, a "
                         "cross-corpus protocol or <corpus>_cv5_f0..4")
    return with_changes(cfg, {"data": data})


def protocol_of(split: str) -> str:
    """The protocol a split belongs to: the folds of one protocol pool into it."""
    protocol, _, fold = split.rpartition("_f")
    return protocol if protocol in FOLDED_PROTOCOLS and fold.isdigit() else split


def split_column_of(split: str) -> str:
    """The table column of a split name: `paper` -> split_paper, `cv5_f2` -> split_cv5_2,
    `kemdy19_cv5_f2` -> split_kemdy19_cv5_2, a cross-corpus protocol -> split_<protocol>."""
    protocol, _, fold = split.rpartition("_f")
    if protocol in FOLDED_PROTOCOLS and fold.isdigit():
        return f"split_{protocol}_{fold}"
    return f"split_{split}"


def with_protocol(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with a `protocol` column (the five cv5 folds pool into `cv5`)."""
    return runs.assign(protocol=runs["split"].map(protocol_of))


def splits_for(protocols: Sequence[str], folds: Sequence[int] | None = None) -> list[str]:
    names = []
    for protocol in protocols:
        if protocol == "paper" or protocol in CROSS_PROTOCOLS:
            names.append(protocol)
        elif protocol in FOLDED_PROTOCOLS:
            names += [f"{protocol}_f{k}" for k in (folds if folds is not None else range(N_FOLDS))]
        elif protocol == "session":
            names.append("cv5_f0")   # the session hold-out is cv5 fold 0
        else:
            raise ValueError(f"unknown protocol {protocol!r}")
    return list(dict.fromkeys(names))


def unusable_splits(workdir: str | Path) -> dict[str, str]:
    """Splits (`paper`, `cv5_f0` ..) whose prepared rows cannot train and score a run, with the
    reason; {} when the workdir is not prepared yet (training then says so itself)."""
    from koemo.dataset.splits import split_problem

    path = Path(workdir) / "utterances.parquet"
    if not path.is_file():
        return {}
    table = pd.read_parquet(path)
    columns = {name: split_column_of(name)
               for name in splits_for(["paper", *FOLDED_PROTOCOLS, *CROSS_PROTOCOLS])}
    problems = {name: ("the workdir does not hold both corpora (koemo prepare --data KEMDy19 "
                       "--data KEMDy20)" if column not in table else split_problem(table, column))
                for name, column in columns.items()}
    return {name: why for name, why in problems.items() if why}


def usable(splits: list[str], workdir: str | Path | None) -> list[str]:
    """`splits` less those without rows in `workdir` (each named, with why); all without one."""
    if workdir is None:
        return list(splits)
    skipped = unusable_splits(workdir)
    for split in splits:
        if split in skipped:
            print(f"[koemo] {split} skipped: {skipped[split]}", flush=True)
    return [split for split in splits if split not in skipped]


def main_plan(cfg: Config, stages: Sequence[Stage] = STAGES,
              workdir: str | Path | None = None) -> list[RunSpec]:
    """Every stage x variant x split x seed of the `reproduce:` section; given the workdir,
    splits without train, valid or test rows are left out."""
    rep = cfg.reproduce
    plan = []
    for variant in rep.variants:
        for split in usable(splits_for(rep.protocols, rep.folds), workdir):
            run_cfg = split_config(variant_config(cfg, variant), split)
            for seed in seeds_for(cfg, split):
                plan += [RunSpec(stage, variant, split, seed, run_cfg) for stage in stages]
    return plan


def seeds_for(cfg: Config, split: str) -> list[int]:
    """`reproduce.seeds`, or `reproduce.cv5_seeds` for session folds when set (the CPU demo
    runs one seed per fold and reports mean ± std over the five folds)."""
    rep = cfg.reproduce
    if protocol_of(split) in FOLDED_PROTOCOLS and rep.cv5_seeds:
        return list(rep.cv5_seeds)
    return list(rep.seeds)


def run_config(cfg: Config, variant: str, split: str, stage: Stage | None = None) -> Config:
    """The config of one run of a plan, from the base config, the run's variant, split and
    stage: `faithful`, `corrected`, `<stage>_layers=<n>` (layer ablation) or `audio<a>/text<t>`
    (regressor-depth combination). What `koemo train STAGE --variant V --split S` trains.

    A regressor reads only its own model and training settings, so a combination's audio (text)
    regressor is the layer-ablation run of that depth, or the main run at the config's own
    depth: given `stage`, a combination's regressor gets that run's config (one run dir, trained
    once). The combination's classifier config names those runs in `regressor_runs`
    (koemo.modeling.runs.run_dir_for reads it)."""
    import re

    layers = re.fullmatch(r"(audio|text)_layers=(\d+)", variant)
    combo = re.fullmatch(r"audio(\d+)/text(\d+)", variant)
    if layers is None and combo is None:
        return split_config(variant_config(cfg, variant), split)
    if combo is not None and stage in REGRESSOR_STAGES:
        depth = combo[1] if stage == "audio" else combo[2]
        return run_config(cfg, f"{stage}_layers={depth}", split)
    if layers is not None:
        depths = {layers[1]: int(layers[2])}
        suffix = f"{layers[1]}L{layers[2]}"
    else:
        assert combo is not None                        # one of the two matched (above)
        depths = {"audio": int(combo[1]), "text": int(combo[2])}
        suffix = f"combo-a{combo[1]}t{combo[2]}"
    changes: dict[str, Any] = {"models": {name: {"n_layers": n} for name, n in depths.items()}}
    if any(n != getattr(cfg.models, name).n_layers for name, n in depths.items()):
        # the config's own depth reuses the main run; other depths are runs of their own
        changes["name"] = f"{cfg.name}-{suffix}"
        if combo is not None:
            changes["regressor_runs"] = {
                name: run_config(cfg, f"{name}_layers={n}", split).name
                for name, n in depths.items()}
    return with_changes(split_config(cfg, split), changes)


def layer_ablation_plan(cfg: Config, stage: Stage) -> list[RunSpec]:
    """n_layers ablation of one regressor (paper protocol, faithful, first seed)."""
    seed = cfg.reproduce.seeds[0]
    return [RunSpec(stage, variant, "paper", seed, run_config(cfg, variant, "paper"))
            for variant in (f"{stage}_layers={n}"
                            for n in getattr(cfg.reproduce.ablation, f"{stage}_layers"))]


def combination_plan(cfg: Config) -> list[RunSpec]:
    """Multimodal classifier over regressors of (audio layers, text layers) combinations. Its
    regressors are the layer-ablation (or main) runs of their depth (see run_config)."""
    seed = cfg.reproduce.seeds[0]
    plan = []
    for audio_layers, text_layers in cfg.reproduce.ablation.combos:
        variant = f"audio{audio_layers}/text{text_layers}"
        plan += [RunSpec(stage, variant, "paper", seed, run_config(cfg, variant, "paper", stage))
                 for stage in STAGES]
    return plan


def fusion_plan(cfg: Config, workdir: str | Path | None = None) -> list[RunSpec]:
    """Every fusion kind on the same folds, seeds and frozen regressors (usable folds only,
    given the workdir); none when `reproduce.fusion` is null or has no kinds (the study is
    not one of the paper's tables: configs/paper_budget.yaml leaves it out)."""
    fusion = cfg.reproduce.fusion
    if fusion is None or not fusion.kinds:
        return []
    plan = []
    splits = splits_for([fusion.protocol], cfg.reproduce.folds)
    for split in usable(splits, workdir):
        run_cfg = split_config(variant_config(cfg, fusion.variant), split)
        for seed in fusion.seeds or seeds_for(cfg, split):
            plan += [RunSpec(stage, fusion.variant, split, seed, run_cfg)
                     for stage in REGRESSOR_STAGES]
            plan += [RunSpec("multimodal", fusion.variant, split, seed, run_cfg,
                             classifier_kind=kind) for kind in fusion.kinds]
    return plan


def plan_parts(cfg: Config, workdir: str | Path | None = None) -> dict[str, list[RunSpec]]:
    """The plan of notebooks 2-1 .. 5-2 by part, in the order the notebooks train them (a run
    two parts share is trained by the first)."""
    return {"main": main_plan(cfg, workdir=workdir),
            "layer ablation": layer_ablation_plan(cfg, "audio") + layer_ablation_plan(cfg, "text"),
            "combinations": combination_plan(cfg),
            "fusion": fusion_plan(cfg, workdir)}


# Config keys no training stage reads: they never make two runs different (from the schema).
_NOT_TRAINING = not_results_sections()


def run_identity(spec: RunSpec) -> tuple:
    """What decides a run's result: stage, split, seed, classifier kind and the config as that
    stage reads it (a regressor never reads the other regressor's or the classifier's model and
    training settings). Two specs of one identity should name one run directory."""
    from koemo.config.fingerprints import fingerprint

    cfg = {k: v for k, v in spec.cfg.as_dict().items() if k not in _NOT_TRAINING}
    if spec.stage in REGRESSOR_STAGES:
        others = [s for s in STAGES if s != spec.stage]
        cfg["models"] = {k: v for k, v in cfg["models"].items() if k not in others}
        cfg["train"] = {k: v for k, v in cfg["train"].items() if k not in others}
    kind = spec.classifier_kind if spec.stage == "multimodal" else ""
    return (spec.stage, spec.split, spec.seed, kind, fingerprint(cfg))


def run_plan(plan: list[RunSpec], workdir: str | Path, progress: bool = True,
             parallel_runs: int | None = None) -> pd.DataFrame:
    """Train every run of the plan (regressors before classifiers); finished runs are reused.

    parallel_runs trains that many runs at once in worker processes (koemo.experiments.workers). Default:
    with CUDA GPUs visible, `reproduce.runs_per_device` runs on each (auto: as many as fit its
    free memory; with N >= 2 GPUs each worker is pinned to its GPU); else
    `reproduce.runs_per_device` when a number, else `reproduce.parallel_runs`, else 1. On CPU each worker gets an equal
    share of the threads: small CPU models are bound by per-operation overhead, so two
    one-thread runs finish sooner than two two-thread runs in a row.

    Other workers may train the same workdir at the same time (another `koemo reproduce`, the
    lines of `koemo plan`): each run trains under its run directory's lock (koemo.experiments.runlock), so
    no run trains twice. A run another worker holds is left for later, then waited for.
    """
    from koemo.modeling.resume import run_is_finished
    from koemo.modeling.runs import run_dir_for
    from koemo.experiments.workers import plan_workers, run_threads

    skipped = unusable_splits(workdir)
    protocols = {spec.split.split("_")[0] for spec in plan}
    kept = usable(list(dict.fromkeys(spec.split for spec in plan)), workdir)
    plan = [spec for spec in plan if spec.split in kept]
    if not plan:
        return _with_skipped(pd.DataFrame(columns=RUN_COLUMNS), skipped, protocols)
    run_dirs = {spec: run_dir_for(workdir, spec.cfg, spec.stage, spec.seed, spec.classifier_kind)
                for spec in plan}
    # Specs that name the same run directory (e.g. an ablation at the config's own depth) train
    # once, as the first of them.
    by_dir: dict[Path, RunSpec] = {}
    for spec, run_dir in run_dirs.items():
        by_dir.setdefault(run_dir, spec)
    for group in (REGRESSOR_STAGES, ("multimodal",)):
        todo = [spec for run_dir, spec in by_dir.items() if spec.stage in group
                and not run_is_finished(run_dir, spec.cfg, spec.stage, workdir)]
        if todo:    # `koemo reproduce` numbers the runs it shows from these (koemo.modeling.progress)
            emit_progress(workdir, "plan", runs=len(todo), stages=list(group))
        workers, gpus = plan_workers(plan[0].cfg, parallel_runs,
                                     sorted({spec.stage for spec in todo}), workdir) \
            if todo else (1, [])
        if workers > 1 and len(todo) > 1:
            _train_in_workers(todo, workdir, min(workers, len(todo)), gpus)
        else:
            # A lone run of a parallel plan trains with a worker's threads (as it would in one).
            with run_threads(workers):
                # First pass skips runs another worker holds; the second waits for them.
                held = [spec for spec in todo
                        if _train_locked(spec, workdir, progress, False) == "busy"]
                for spec in held:
                    _train_locked(spec, workdir, progress, True)
    table = pd.DataFrame([_row(spec, run_dirs[spec]) for spec in plan])
    return _with_skipped(table, skipped, protocols)


RUN_COLUMNS = ["stage", "variant", "split", "seed", "classifier", "run_dir"]


def _with_skipped(table: pd.DataFrame, skipped: dict[str, str],
                  protocols: set[str]) -> pd.DataFrame:
    """The runs table, naming the skipped splits of its protocols (the reports' fold notes)."""
    table.attrs["skipped"] = {split: why for split, why in skipped.items()
                              if split.split("_")[0] in protocols}
    return table


def _train(spec: RunSpec, workdir: str | Path, progress: bool) -> Path:
    from koemo.modeling.train import train_stage

    return train_stage(spec.stage, workdir, spec.cfg, spec.seed,
                       classifier_kind=spec.classifier_kind, progress=progress)


def _train_locked(spec: RunSpec, workdir: str | Path, progress: bool, blocking: bool = True) -> str:
    """`_train` under the run directory's lock: `trained`, `finished` or `busy`."""
    from koemo.experiments.runlock import train_once

    status, _ = train_once(spec.stage, workdir, spec.cfg, spec.seed,
                           classifier_kind=spec.classifier_kind, progress=progress,
                           blocking=blocking, train=lambda *a, **k: _train(spec, workdir, progress))
    return status


def _train_in_workers(specs: list[RunSpec], workdir: str | Path, workers: int,
                      gpus: list[str] | None = None) -> None:
    """Train `specs` in `workers` spawned processes (pinned one per GPU when `gpus` is given);
    the first failure is raised with its run."""
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from koemo.experiments.workers import worker_pool

    _prepare_shared_inputs(specs, workdir)
    if gpus:
        print(f"[koemo] {workers} workers, {max(1, workers // len(gpus))} run(s) per GPU "
              f"(CUDA_VISIBLE_DEVICES {', '.join(gpus)})", flush=True)
    with worker_pool(workers, gpus) as pool:
        futures = {pool.submit(_train_locked, spec, workdir, False): spec for spec in specs}
        for done, future in enumerate(as_completed(futures), 1):
            spec = futures[future]
            try:
                future.result()
            except BaseException as err:
                for other in futures:
                    other.cancel()
                hint = ("; a script that calls run_plan with parallel_runs > 1 must guard its "
                        "top level with `if __name__ == '__main__':` (workers re-import it)"
                        if isinstance(err, BrokenProcessPool) else "")
                raise RuntimeError(f"run {spec.stage}/{spec.variant}/{spec.split}/seed{spec.seed}"
                                   f"/{spec.classifier_kind} failed: {err}{hint}") from err
            print(f"[{done}/{len(specs)}] {spec.stage} {spec.variant} {spec.split} "
                  f"seed {spec.seed} {spec.classifier_kind if spec.stage == 'multimodal' else ''}",
                  flush=True)


def _prepare_shared_inputs(specs: list[RunSpec], workdir: str | Path) -> None:
    """Build what runs share (the KoBERT stand-in) before workers race to build it."""
    from koemo.text.encoder import open_text_pipeline

    seen = set()
    for spec in specs:
        if spec.stage == "audio":
            continue
        text = spec.cfg.text
        key = (text.tokenizer, text.encoder, str(text.standin))
        if key not in seen:
            seen.add(key)
            open_text_pipeline(spec.cfg, workdir)


def _row(spec: RunSpec, run_dir: Path) -> dict:
    run = RunDir(run_dir)
    metrics = run.metrics()
    if spec.stage == "multimodal" and metrics.label_set is None:
        metrics = rescore_classifier(run_dir)
    return {"stage": spec.stage, "variant": spec.variant, "split": spec.split, "seed": spec.seed,
            "classifier": spec.classifier_kind if spec.stage == "multimodal" else "",
            "run_dir": str(run_dir), **metrics.scalars()}


LABEL_SET_RESCORE = "averaged over one label set: the classes present in the test set"


def rescore_classifier(run_dir: str | Path) -> SplitMetrics:
    """Re-score a classifier run finished before the averages used one label set (its metrics
    have no `label_set`) from its saved predictions, as a new version of its metrics (the
    run's first stays as it was), so a reused run and a new one are scored by the same rule."""
    from koemo.modeling.metrics import classification_report

    run = RunDir(run_dir)
    metrics, predictions = run.metrics(), run.predictions()
    baseline = metrics.majority()
    majority = baseline.majority_class if baseline.majority_source == "train" else None
    report = classification_report(predictions["true"].to_numpy(), predictions["pred"].to_numpy(),
                                   metrics.class_names(), majority)
    return run.rescore(SplitMetrics.model_validate({**metrics.as_dict(), **report}),
                       because=LABEL_SET_RESCORE)


def load_metrics(run_dir: str | Path) -> SplitMetrics:
    """A run's test metrics (the newest version)."""
    return RunDir(run_dir).metrics()


def mean_std(table: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds (and folds) as `mean ± std` plus numeric columns."""
    grouped = table.groupby(by, sort=False)[metrics]
    mean, std, count = grouped.mean(), grouped.std(ddof=1).fillna(0.0), grouped.size()
    out = pd.DataFrame(index=mean.index)
    for metric in metrics:
        out[metric] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean[metric], std[metric])]
        out[f"{metric}_mean"] = mean[metric]
        out[f"{metric}_std"] = std[metric]
    out["n_runs"] = count
    return out.reset_index()
