"""The foundation-model study of notebook 5-4: frozen upstreams + a probe, and zero-shot
models, on the same folds as the paper's method (`reproduce.foundation`; what trains where:
koemo.experiments.foundation_plan). Per table: probes over pooled upstream states, zero-shot
predictions scored two ways, and the majority class.

Every run is a koemo run directory beside the paper method's runs of the same split
(W/runs/<split>/<config name>/<leaf>/seed<s>/, through koemo.modeling.runs.RunDir: the run
record with config, seed, versions and the run's identity, the test metrics and predictions),
so the reports read them as they read every classifier run. A run whose record holds the same
identity and whose test is scored is reused; anything else is (re)written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from koemo.config.fingerprints import fingerprint
from koemo.config.foundation import ZeroShotModel
from koemo.config.schema import Config
from koemo.dataset.labels import data_classes
from koemo.dataset.splits import SPLITS
from koemo.errors import KoemoInputError
from koemo.modeling.progress import PassReporter, emit
from koemo.experiments.foundation_plan import (METRICS, RUN_COLUMNS, Context, check_names,
                                               contexts, left_out, resolve_name, run_config, run_directory,
                                               slug, study_of, study_seeds)

if TYPE_CHECKING:
    from koemo.upstreams.pooled import PooledStore
    from koemo.upstreams.protocol import AudioUpstream
    from koemo.upstreams.text import TextUpstream

OUTSIDE = "outside the classes"     # the extra class of a zero-shot prediction scored as an error
SCORINGS = ("excluded", "errors")
MAJORITY = "majority class"
ERRORS, EXCLUDED = " (outside predictions as errors)", " (outside predictions excluded)"


@dataclass(frozen=True)
class ProbeSystem:
    name: str                         # the table row
    leaf: str                         # the run directory's name
    inputs: tuple[tuple[str, str], ...]   # (modality, upstream name) per input


def probe_systems(cfg: Config) -> list[ProbeSystem]:
    """One probe per audio upstream, per text upstream and per fused pair, in config order."""
    study = study_of(cfg)
    found = [ProbeSystem(f"probe: {n} (audio)", f"probe-audio-{slug(n)}", (("audio", n),))
             for n in study.audio]
    found += [ProbeSystem(f"probe: {n} (text)", f"probe-text-{slug(n)}", (("text", n),))
              for n in study.text]
    found += [ProbeSystem(f"probe: {p.audio} + {p.text} (fused)",
                          f"probe-fused-{slug(p.audio)}+{slug(p.text)}",
                          (("audio", p.audio), ("text", p.text))) for p in study.fused]
    return found


def zero_shot_name(kind: str, model: str, scoring: str) -> str:
    return f"zero-shot: {model}" + {"excluded": EXCLUDED, "errors": ERRORS}[scoring]


class Stores:
    """The pooled stores of one workdir, each ensured once (koemo.upstreams.pooled)."""

    def __init__(self, cfg: Config, workdir: Path, names_workdir: Path, device: str,
                 progress: bool):
        self.cfg, self.workdir, self.names_workdir = cfg, workdir, names_workdir
        self.device, self.progress = device, progress
        self._stores: dict[tuple[str, str], PooledStore] = {}

    def __call__(self, modality: str, name: str) -> PooledStore:
        if (modality, name) not in self._stores:
            self._stores[modality, name] = self._ensure(modality, name)
        return self._stores[modality, name]

    def _ensure(self, modality: str, name: str) -> PooledStore:
        from koemo.config.workdir import load_utterances
        from koemo.upstreams.pooled import ensure_pooled, pooled_key

        study = study_of(self.cfg)
        folder = resolve_name(name, self.names_workdir, self.cfg)
        if modality == "audio":
            from koemo.upstreams.audio import SAMPLE_RATE, load_audio_upstream
            key = pooled_key(name, modality, folder, sample_rate=SAMPLE_RATE)
            load: Callable[[], AudioUpstream | TextUpstream] = (
                lambda: load_audio_upstream(folder, self.device))
        else:
            from koemo.upstreams.text import load_text_upstream
            key = pooled_key(name, modality, folder, max_length=study.text_max_length)
            load = lambda: load_text_upstream(folder, self.device, study.text_max_length)  # noqa: E731
        return ensure_pooled(load_utterances(self.workdir), self.workdir, key, load,
                             batch_size=study.batch_size, progress=self.progress,
                             report=PassReporter(self.workdir, f"{name} ({modality})"))


# ---------------------------------------------------------------- one table
def context_runs(cfg: Config, context: Context, main_workdir: Path, progress: bool) -> pd.DataFrame:
    """Every run of one table (module doc), trained or reused; one row each (RUN_COLUMNS)."""
    from koemo.config.workdir import load_utterances
    from koemo.modeling.data import split_rows
    from koemo.modeling.precision import resolve_device
    from koemo.modeling.probe import run_identity

    study, skipped = study_of(cfg), left_out(cfg)
    device = str(resolve_device(cfg.train.device))        # where training runs
    table = load_utterances(context.workdir)
    stores = Stores(cfg, context.workdir, main_workdir, device, progress)
    predictions = {entry: zero_shot_predictions(cfg, entry, table, context.workdir, main_workdir,
                                                device)
                   for entry in study.zero_shot if entry.model not in skipped}
    systems = [s for s in probe_systems(cfg) if not skipped.keys() & {n for _, n in s.inputs}]
    jobs = [(run_config(cfg, split), system, seed) for split in context.splits
            for system in systems for seed in study_seeds(cfg, split)]
    pending = [run_identity(run_dir) != identity          # the probes still to train
               for run_dir, identity, _ in (probe_job(context, *job, stores) for job in jobs)]
    emit(context.workdir, "plan", runs=sum(pending))
    rows = []
    for split in context.splits:
        run_cfg = run_config(cfg, split)
        parts = {part: split_rows(table, run_cfg, part) for part in SPLITS}
        for system in systems:
            rows += [probe_run(context, system, stores, parts, run_cfg, seed, device)
                     for seed in study_seeds(cfg, split)]
        for entry, found in predictions.items():
            rows += zero_shot_runs(context, entry, found, parts, run_cfg)
        rows.append(majority_run(context, parts, run_cfg))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _row(context: Context, system: str, kind: str, run_cfg: Config, seed: int,
         run_dir: Path) -> dict:
    from koemo.modeling.runs import RunDir, split_name

    metrics = RunDir(run_dir).metrics().as_dict()
    return {"table": context.table, "system": system, "kind": kind, "split": split_name(run_cfg),
            "seed": seed, "run_dir": str(run_dir), **{m: metrics[m] for m in METRICS},
            "outside": metrics.get("outside", np.nan)}


def _identity(run_cfg: Config, workdir: Path, **parts: Any) -> str:
    from koemo.config.workdir import data_fingerprint

    return fingerprint({"data": run_cfg.data.model_dump(), "classes": list(data_classes(run_cfg.data)),
                        "source": data_fingerprint(workdir), **parts}, length=16)


def probe_job(context: Context, run_cfg: Config, system: ProbeSystem, seed: int,
              stores: Stores) -> tuple[Path, str, list[PooledStore]]:
    """A probe run's directory, identity and input stores (built here when missing)."""
    study = study_of(run_cfg)
    chosen = [stores(modality, name) for modality, name in system.inputs]
    run_dir = run_directory(context.workdir, run_cfg, system.leaf, seed)
    # each store's key and shape (its `source` is the data fingerprint _identity holds)
    identity = _identity(run_cfg, context.workdir, probe=study.probe.model_dump(), seed=seed,
                         inputs=[{k: v for k, v in s.meta.items() if k != "source"} for s in chosen])
    return run_dir, identity, chosen


def probe_run(context: Context, system: ProbeSystem, stores: Stores, parts: dict,
              run_cfg: Config, seed: int, device: str) -> dict:
    from koemo.modeling.probe import ProbeData, run_identity, train_probe

    study = study_of(run_cfg)
    run_dir, identity, chosen = probe_job(context, run_cfg, system, seed, stores)
    if run_identity(run_dir) != identity:
        data = ProbeData(
            arrays={p: [s.rows(parts[p]["segment_id"]) for s in chosen] for p in SPLITS},
            labels={p: parts[p]["label_id"].to_numpy() for p in SPLITS},
            test_ids=parts["test"]["segment_id"].astype(str).tolist(),
            classes=list(data_classes(run_cfg.data)))
        train_probe(run_dir, data, study.probe, seed, run_cfg, device,
                    record={"identity": identity, "system": system.name, "table": context.table,
                            "upstreams": [name for _, name in system.inputs],
                            "layer": study.probe.layer},
                    progress_workdir=context.workdir)
    return _row(context, system.name, "probe", run_cfg, seed, run_dir)


def _majority_id(parts: dict, classes: list[str]) -> int:
    return int(np.bincount(parts["train"]["label_id"].to_numpy(), minlength=len(classes)).argmax())


def _scored_run(run_dir: Path, identity: str, run_cfg: Config, record: dict[str, Any],
                write: Callable[[], object]) -> None:
    """(Re)write a run that trains nothing, unless it is scored with the same identity."""
    from koemo.modeling.probe import run_identity

    from koemo.modeling.runs import RunDir

    if run_identity(run_dir) == identity:
        return
    run = RunDir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run.clear()
    run.write_record(run_cfg, 0, identity=identity, **record)
    write()


def majority_run(context: Context, parts: dict, run_cfg: Config) -> dict:
    """The training rows' most frequent class predicted for every test row."""
    from koemo.modeling.probe import write_test_outputs

    classes = list(data_classes(run_cfg.data))
    majority, test = _majority_id(parts, classes), parts["test"]
    run_dir = run_directory(context.workdir, run_cfg, "majority-class", 0)
    identity = _identity(run_cfg, context.workdir, system=MAJORITY)
    _scored_run(run_dir, identity, run_cfg, {"stage": "majority", "table": context.table},
                lambda: write_test_outputs(
                    run_dir, test["segment_id"].astype(str), test["label_id"].to_numpy(),
                    np.full(len(test), majority), classes, majority))
    return _row(context, MAJORITY, "majority", run_cfg, 0, run_dir)


# ---------------------------------------------------------------- zero-shot
def zero_shot_predictions(cfg: Config, entry: ZeroShotModel, table: pd.DataFrame, workdir: Path,
                          names_workdir: Path, device: str) -> pd.DataFrame:
    """segment_id, native, label of every row of `table` for one zero-shot model, predicted
    once per workdir and model (W/zeroshot/<fingerprint>/predictions.parquet)."""
    import os

    from filelock import FileLock

    from koemo.config.workdir import data_fingerprint
    from koemo.upstreams.pooled import reference_fingerprint

    folder = resolve_name(entry.model, names_workdir, cfg)
    classes = list(data_classes(cfg.data))
    key = {"kind": entry.kind, "model": entry.model, "files": reference_fingerprint(folder),
           "classes": classes, "source": data_fingerprint(workdir)}
    directory = workdir / "zeroshot" / fingerprint(key, length=16)
    path = directory / "predictions.parquet"
    ids = table["segment_id"].astype(str).tolist()
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        if path.is_file() and pd.read_parquet(path, columns=["segment_id"])["segment_id"].tolist() == ids:
            return pd.read_parquet(path)
        from koemo.upstreams.zeroshot import zero_shot_predict

        found = zero_shot_predict(entry.kind, folder, table, classes=classes, device=device,
                                  batch_size=study_of(cfg).batch_size,
                                  report=PassReporter(workdir, f"{entry.model} (zero-shot)"))
        tmp = directory / "predictions.parquet.partial"
        found.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        (directory / "meta.json").write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")
    return found


def zero_shot_runs(context: Context, entry: ZeroShotModel, predictions: pd.DataFrame, parts: dict,
                   run_cfg: Config) -> list[dict]:
    """The model's test predictions scored `excluded` and as `errors` (module doc)."""
    from koemo.modeling.probe import write_test_outputs

    classes = list(data_classes(run_cfg.data))
    test = parts["test"].merge(predictions, on="segment_id", how="left",
                               suffixes=("", "_zero_shot"))
    outside = test["label_zero_shot"].isna().to_numpy()
    lookup = {name: i for i, name in enumerate(classes)}
    pred = np.array([lookup.get(label, len(classes)) for label in test["label_zero_shot"]])
    rows = []
    for scoring in SCORINGS:
        keep = ~outside if scoring == "excluded" else np.ones(len(test), bool)
        if not keep.any():          # every prediction outside the classes: nothing to score
            continue
        scored_classes = classes if scoring == "excluded" else [*classes, OUTSIDE]
        leaf = f"zeroshot-{entry.kind}-{slug(entry.model)}-{scoring}"
        run_dir = run_directory(context.workdir, run_cfg, leaf, 0)
        identity = _identity(run_cfg, context.workdir, zero_shot=entry.model_dump(),
                             scoring=scoring, predictions=fingerprint(predictions.to_dict("list")))
        name = zero_shot_name(entry.kind, entry.model, scoring)
        _scored_run(run_dir, identity, run_cfg,
                    {"stage": "zero-shot", "table": context.table, "system": name},
                    lambda: write_test_outputs(
                        run_dir, test["segment_id"][keep].astype(str),
                        test["label_id"].to_numpy()[keep], pred[keep], scored_classes,
                        _majority_id(parts, classes), columns={"native": test["native"][keep]},
                        extra={"outside": int(outside.sum()), "n_test_rows": len(test),
                               "scoring": scoring, "model": entry.model, "kind": entry.kind}))
        rows.append(_row(context, name, "zero-shot", run_cfg, 0, run_dir))
    return rows


# ---------------------------------------------------------------- the study
def run_study(cfg: Config, main_root: str | Path | None, second_root: str | Path | None,
              workdir: str | Path, progress: bool = True) -> pd.DataFrame | None:
    """Train and score the study (module doc): one row per run (RUN_COLUMNS), or None when the
    config has no foundation study."""
    from koemo.experiments.cross import prepare_cross

    if cfg.reproduce.foundation is None:
        return None
    check_names(cfg)
    workdir = Path(workdir)
    combined = None
    if second_root is not None:
        if main_root is None:
            raise KoemoInputError(f"the foundation study's cross-corpus tables need the main "
                                  f"corpus' folder beside the second one ({second_root})")
        combined = prepare_cross(main_root, second_root, workdir, cfg, progress)
    frames = [context_runs(cfg, context, workdir, progress)
              for context in contexts(cfg, workdir, combined)]
    frames = [f for f in frames if len(f)]
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_COLUMNS)
    runs.attrs["left_out"] = left_out(cfg)
    for name, why in runs.attrs["left_out"].items():
        print(f"[koemo] foundation study: {name} left out: {why}", flush=True)
    return runs
