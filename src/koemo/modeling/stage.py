"""One stage's datasets, model and forward call, assembled for the training loop
(koemo.modeling.train) and for scoring again (koemo.modeling.evaluate): `build_stage` reads the
prepared table, the feature store or speech-encoder cache and the text-state cache, and for the
classifier the frozen regressors (with cache_frozen, their outputs cached per split)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader

from koemo.config.fingerprints import fingerprint
from koemo.config.schema import REGRESSOR_STAGES, STAGES, Config, FusionKind, Stage
from koemo.config.workdir import load_utterances
from koemo.dataset.labels import data_classes
from koemo.dataset.splits import Split
from koemo.errors import KoemoInputError
from koemo.modeling import data as D
from koemo.modeling.resume import resume_fingerprint
from koemo.modeling.runs import RunDir, run_dir_for
from koemo.modeling.trim import trimming_forward

if TYPE_CHECKING:
    from koemo.modeling.models import FrozenRegressors

# (model, batch, device) -> predictions [B] (regressors) | logits [B, C] (the classifier)
Forward = Callable[[torch.nn.Module, dict[str, Any], torch.device], torch.Tensor]


@dataclass(frozen=True)
class StageJob:
    """Everything the loop needs for one stage: the module to train, data and how to call it.
    Frozen: a job for other inputs (on the device, trimmed) is a new one (`on_device`)."""
    stage: Stage
    model: torch.nn.Module                      # what gets checkpointed
    datasets: Mapping[str, Any]                 # split -> Dataset
    rows: Mapping[str, pd.DataFrame]            # split -> rows (row order = dataset order)
    forward: Forward
    classes: Sequence[str] = ()
    majority_class: str | None = None
    # The classifier's batches are the frozen regressors' cached outputs (cache_frozen):
    # `cached_forward`, the regressors never run. False: raw features through `raw_forward`.
    from_cache: bool = False

    @property
    def is_classifier(self) -> bool:
        return self.stage == "multimodal"

    @property
    def runs_regressors(self) -> bool:
        """The classifier runs its frozen regressors on raw inputs in every batch."""
        return self.is_classifier and not self.from_cache


def on_device(job: StageJob, cfg: Config, device: torch.device, classifier_kind: FusionKind,
              resident: bool = True) -> StageJob:
    """The job as the loop runs it: its inputs kept on the device where train.resident says
    (`resident`: False under accelerate, which shards a DataLoader), its batches trimmed of
    padding where that is exact (train.trim_padding, koemo.modeling.trim)."""
    datasets = resident_datasets(job.datasets, cfg, device) if resident else job.datasets
    forward = trimming_forward(job.forward, cfg, job.stage, job.from_cache, classifier_kind)
    return replace(job, datasets=datasets, forward=forward)


def regressor_forward(model: torch.nn.Module, batch: dict[str, Any],
                      device: torch.device) -> torch.Tensor:
    if "feats" in batch:
        return model(batch["feats"].to(device), batch["lengths"].to(device))["pred"]
    return model(batch["states"].to(device), batch["attention_mask"].to(device))["pred"]


def cached_forward(model: torch.nn.Module, batch: dict[str, Any],
                   device: torch.device) -> torch.Tensor:
    # float16 from the cache: moved as is, widened on the device.
    return model(batch["audio_hidden"].to(device, non_blocking=True).float(),
                 batch["audio_mask"].to(device, non_blocking=True),
                 batch["text_hidden"].to(device, non_blocking=True).float(),
                 batch["text_mask"].to(device, non_blocking=True))["logits"]


def raw_forward(model: torch.nn.Module, batch: dict[str, Any],
                device: torch.device) -> torch.Tensor:
    # The classifier (FrozenRegressors), or a wrapper (torch.compile) that forwards attributes.
    forward_raw = getattr(model, "forward_raw")
    return forward_raw(batch["feats"].to(device), batch["lengths"].to(device),
                       batch["states"].to(device), batch["attention_mask"].to(device))["logits"]


def _feature_store(workdir: str | Path, cfg: Config, progress: bool = False) -> Any:
    # mel+delta FeatureStore, or the speech-encoder state cache (models.audio.frontend).
    from koemo.audio.encoder_store import open_audio_store
    return open_audio_store(workdir, cfg, progress=progress)


def build_stage(stage: Stage, workdir: str | Path, cfg: Config, seed: int, *, run_dir: Path,
                device: torch.device, classifier_kind: FusionKind = "attention_lstm",
                splits: Sequence[Split] = D.SPLITS, model: torch.nn.Module | None = None,
                cache_frozen: bool | None = None, augment: bool = True,
                progress: bool = False, scratch: Path | None = None) -> StageJob:
    """Datasets and model for one stage. `model` (e.g. from a checkpoint) replaces a fresh one;
    augment=False gives the training split without augmented copies. `scratch`: where frozen
    outputs the run's own cache lacks are written instead of `run_dir` (evaluation never
    writes into a run)."""
    if stage not in STAGES:
        raise KoemoInputError(f"stage must be one of {STAGES}, not {stage!r}")
    if stage == "multimodal" and model is None:     # first: missing regressors fail fast
        model = build_classifier_from_regressors(workdir, cfg, seed, classifier_kind)
    table = load_utterances(workdir)
    rows: dict[str, pd.DataFrame] = {split: D.stage_rows(table, cfg, split, seed, augment)
                                     for split in splits}
    train_rows = D.split_rows(table, cfg, "train")
    majority = train_rows["label"].value_counts().idxmax() if "label" in train_rows else None
    if stage == "audio":
        from koemo.modeling.models import AudioRegressor
        store = _feature_store(workdir, cfg)
        datasets: dict[str, Any] = {s: D.AudioDataset(r, D.AudioFeatures(r, store, cfg))
                                    for s, r in rows.items()}
        return StageJob(stage, model or AudioRegressor(cfg.models, cfg.fixes), datasets, rows,
                        regressor_forward, majority_class=majority)
    from koemo.text.encoder import open_text_pipeline
    # The frozen encoder fills the state cache on the training device (a GPU encodes KoBERT's
    # ~17,000 paper-scale sequences in seconds, a CPU in minutes); cached states are reused.
    text = open_text_pipeline(cfg, workdir, device=str(device))
    texts = {s: D.TextStates(r, text.tokenizer, text.cache, cfg) for s, r in rows.items()}
    D.ensure_states(list(texts.values()), progress)
    if stage == "text":
        from koemo.modeling.models import TextRegressor
        datasets = {s: D.TextDataset(r, texts[s]) for s, r in rows.items()}
        return StageJob(stage, model or TextRegressor(cfg.models, cfg.fixes), datasets, rows,
                        regressor_forward, majority_class=majority)
    store = _feature_store(workdir, cfg)
    raw: dict[str, D.MultimodalDataset] = {s: D.MultimodalDataset(r, D.AudioFeatures(r, store, cfg), texts[s],
                                  D.classifier_target(r, cfg) if s == "train" else None)
           for s, r in rows.items()}
    if cache_frozen is None:
        cache_frozen = bool(cfg.train.multimodal.cache_frozen)
    from koemo.modeling.models import FrozenRegressors
    assert isinstance(model, FrozenRegressors)      # the classifier: built first, above
    if not cache_frozen:
        return StageJob(stage, model, raw, rows, raw_forward, classes=data_classes(cfg.data),
                        majority_class=majority)
    cached = frozen_datasets(raw, model.to(device), cfg, seed, RunDir(run_dir).frozen, device,
                             progress, scratch)
    return StageJob(stage, model, cached, rows, cached_forward, classes=data_classes(cfg.data),
                    majority_class=majority, from_cache=True)


def frozen_datasets(raw: Mapping[str, Any], model: FrozenRegressors, cfg: Config, seed: int,
                    root: Path, device: torch.device, progress: bool = False,
                    scratch: Path | None = None) -> dict[str, Any]:
    """split -> the frozen regressors' outputs of `raw`'s rows, cached under root/<split> (or
    under `scratch` when given and root's cache is not current). Each split's outputs are drawn
    from `seed` (`seeded`), so a cache written again holds the same draw."""
    key = {"regressors": regressor_fingerprint(model), "seed": seed,
           "cfg": resume_fingerprint(cfg, "multimodal")}     # more epochs keep the cache
    batch_size = cfg.train.multimodal.batch_size
    missing = D.frozen_cache_missing(root, key, raw)
    if missing and scratch is not None:
        root = Path(scratch)
    source = resident_datasets(raw, cfg, device) if missing else raw
    datasets = {}
    for split, ds in raw.items():
        with seeded(seed, device):
            folder = D.cache_frozen_outputs(ds, model, root / split, {**key, "split": split},
                                            batch_size, device, progress,
                                            loader=make_loader(source[split], batch_size, device, 0))
        datasets[split] = D.FrozenOutputsDataset(folder, ds.target)
    return datasets


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Every torch draw inside (attention dropout the faithful model keeps on in eval) from
    `seed`, in a forked RNG: the same draw on every call, the caller's RNG state untouched.
    Test scoring, `koemo evaluate`, the frozen-output cache and the predictor use it."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def resident_datasets(datasets: Mapping[str, Any], cfg: Config,
                      device: torch.device) -> Mapping[str, Any]:
    """The datasets (split -> dataset) on the device when train.resident (auto: when they fit)
    says so, else as they are."""
    from koemo.modeling.resident import make_resident, wants_resident

    if int(cfg.train.num_workers) > 0 and cfg.train.resident == "auto":
        return datasets                 # workers asked for: the DataLoader path
    if not wants_resident(cfg.train.resident, datasets, device):
        return datasets
    return make_resident(datasets, device)


def regressor_fingerprint(classifier: torch.nn.Module) -> str:
    """Hash of the frozen regressors' weights: cached outputs are valid only for these."""
    digest = [[float(t.float().sum()), float(t.float().abs().sum()), list(t.shape)]
              for prefix in ("AudioModel", "TextModel")
              for t in getattr(classifier, prefix).state_dict().values()]
    return fingerprint(digest)


def build_classifier_from_regressors(workdir: str | Path, cfg: Config, seed: int,
                                     classifier_kind: FusionKind) -> torch.nn.Module:
    """The classifier over the BEST regressor checkpoints of the same split/config/seed."""
    from koemo.modeling.checkpoint import build_from_checkpoint
    from koemo.modeling.fusion import build_classifier
    from koemo.modeling.models import AudioRegressor, TextRegressor

    regressors = {}
    for stage in REGRESSOR_STAGES:
        best = RunDir(run_dir_for(workdir, cfg, stage, seed)).best
        if not best.is_dir():
            raise KoemoInputError(
                f"{best}: no trained {stage} regressor for this split/config/seed; run "
                f"`koemo train {stage}` with the same --config/--seed/--set first")
        regressors[stage] = build_from_checkpoint(best, expect_stage=stage)
    audio, text = regressors["audio"], regressors["text"]
    assert isinstance(audio, AudioRegressor) and isinstance(text, TextRegressor)   # their stages
    return build_classifier(classifier_kind, cfg.models, cfg.fixes, cfg.data, audio, text)


def make_loader(dataset: Any, batch_size: int, device: torch.device, num_workers: int,
                shuffle_seed: int | None = None) -> Any:
    """Training loaders shuffle with their own seeded generator; evaluation keeps every row
    in table order (no drop_last). A device-resident dataset gives its batches in the order
    the DataLoader would (koemo.modeling.resident)."""
    from koemo.modeling.resident import ResidentBatches, ResidentDataset

    if isinstance(dataset, ResidentDataset):
        return ResidentBatches(dataset, batch_size, shuffle_seed)
    generator = None
    if shuffle_seed is not None:
        generator = torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle_seed is not None,
                      generator=generator, drop_last=False, num_workers=num_workers,
                      pin_memory=device.type == "cuda", collate_fn=D.collate)
