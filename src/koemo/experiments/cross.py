"""The cross-corpus study of notebook 5-3: in-corpus session folds beside training on one ETRI
corpus and testing on the other.

The main workdir holds the paper's corpus (KEMDy20); the study prepares `<workdir>/cross`, a
workdir holding both corpora (koemo.dataset.combine), and trains there:

- KEMDy19 in-corpus: its own five session folds (`kemdy19_cv5_f0..4`, KEMDy20 rows unused);
- `kemdy19_to_kemdy20` and `kemdy20_to_kemdy19`: every row of the source trains (10% of them
  validating), every row of the target is test.

KEMDy20 in-corpus is the main workdir's session folds (`cv5_f0..4`) with the same variant,
kinds and seeds: with the fusion study's settings (the defaults) these are its runs, reused,
not trained again. Each direction trains its own audio and text regressors, then every
classifier kind over them (`reproduce.cross_corpus`: kinds, variant, seeds; null kinds: the
fusion study's).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from koemo.config.schema import (CROSS_PROTOCOLS, REGRESSOR_STAGES, Config, CrossCorpusStudy,
                                 FusionKind)
from koemo.experiments.plan import (RunSpec, run_plan, seeds_for, split_config, splits_for, usable,
                                    variant_config)

CROSS_WORKDIR = "cross"
SECOND_CORPUS = "kemdy19"        # the main workdir is KEMDy20's (the paper's corpus)
DEFAULT_KINDS: tuple[FusionKind, ...] = ("audio_only", "text_only", "attention_lstm")


def cross_workdir(workdir: str | Path) -> Path:
    return Path(workdir) / CROSS_WORKDIR


def study_kinds(cfg: Config) -> list[FusionKind]:
    """The classifier kinds of the study: its own, else the fusion study's, else the paper's
    classifier beside the two single modalities."""
    study = cfg.reproduce.cross_corpus
    if study is not None and study.kinds:
        return list(study.kinds)
    fusion = cfg.reproduce.fusion
    return list(fusion.kinds) if fusion is not None and fusion.kinds else list(DEFAULT_KINDS)


def study_seeds(cfg: Config, split: str) -> list[int]:
    """The study's seeds, else the fusion study's (so KEMDy20 in-corpus reuses its runs), else
    the plan's seeds for that split."""
    study, fusion = cfg.reproduce.cross_corpus, cfg.reproduce.fusion
    if study is not None and study.seeds:
        return list(study.seeds)
    if fusion is not None and fusion.seeds:
        return list(fusion.seeds)
    return seeds_for(cfg, split)


def _specs(cfg: Config, study: CrossCorpusStudy, splits: list[str]) -> list[RunSpec]:
    plan = []
    for split in splits:
        run_cfg = split_config(variant_config(cfg, study.variant), split)
        for seed in study_seeds(cfg, split):
            plan += [RunSpec(stage, study.variant, split, seed, run_cfg)
                     for stage in REGRESSOR_STAGES]
            plan += [RunSpec("multimodal", study.variant, split, seed, run_cfg,
                             classifier_kind=kind) for kind in study_kinds(cfg)]
    return plan


def in_corpus_plan(cfg: Config, workdir: str | Path) -> list[RunSpec]:
    """The main corpus' session folds (usable ones, given the main workdir)."""
    study = cfg.reproduce.cross_corpus
    if study is None:
        return []
    return _specs(cfg, study, usable(splits_for(["cv5"], cfg.reproduce.folds), workdir))


def cross_plan(cfg: Config, workdir: str | Path) -> list[RunSpec]:
    """The second corpus' own folds and both cross-corpus directions, in `workdir` (the
    combined one); splits without train, valid or test rows there are left out, named."""
    study = cfg.reproduce.cross_corpus
    if study is None:
        return []
    splits = splits_for([f"{SECOND_CORPUS}_cv5"], cfg.reproduce.folds) + list(CROSS_PROTOCOLS)
    return _specs(cfg, study, usable(splits, workdir))


def prepare_cross(main_root: str | Path, second_root: str | Path, workdir: str | Path,
                  cfg: Config, progress: bool = True) -> Path:
    """Prepare `<workdir>/cross` from both corpora (idempotent, as every prepare); its path."""
    from koemo.dataset.combine import prepare_corpora

    target = cross_workdir(workdir)
    prepare_corpora([second_root, main_root], target, cfg, progress=progress)
    return target


def run_study(cfg: Config, main_root: str | Path, second_root: str | Path | None,
              workdir: str | Path, progress: bool = True) -> dict[str, pd.DataFrame] | None:
    """Prepare and train the study; {"in_corpus": runs in the main workdir, "cross": runs in the
    combined one}, or None when there is no second corpus or the study is off."""
    if second_root is None or cfg.reproduce.cross_corpus is None:
        return None
    combined = prepare_cross(main_root, second_root, workdir, cfg, progress)
    return {"in_corpus": run_plan(in_corpus_plan(cfg, workdir), workdir, progress=progress),
            "cross": run_plan(cross_plan(cfg, combined), combined, progress=progress)}
