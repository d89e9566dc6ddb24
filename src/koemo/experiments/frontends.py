"""Front-ends side by side: the fusion study of several configs in one table.

Each config (paper.yaml's mel + KoBERT, configs/ssl_*.yaml's pretrained encoders, ...) runs its
own fusion study (`koemo.experiments.plan.fusion_plan`: every `reproduce.fusion.kinds` on the same
session folds and seeds); `frontend_fusion_table` puts them in one table, one row per front-end
pair, one column per fusion kind, each cell `mean ± std` over folds and seeds, plus the
majority-class baseline on the same test sets.

    from koemo.experiments.frontends import run_frontend_study, frontend_fusion_table
    runs = run_frontend_study(["paper", "ssl_wav2vec2_klue", "ssl_wavlm_koelectra"], WORKDIR)
    frontend_fusion_table(runs)

A config may list the others in `reproduce.frontends` (names or paths): `frontend_configs(cfg)`
returns it followed by those, with the same command-line overrides applied to each.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd

if TYPE_CHECKING:
    from koemo.config.schema import Config

MAJORITY = "majority class"


def frontend_label(cfg: Config) -> str:
    """`mel + skt/kobert-base-v1`, `wav2vec2-xls-r-300m[8,16] + klue/roberta-base`, ..."""
    from koemo.audio.speech_encoder import encoder_settings, uses_speech_encoder

    if uses_speech_encoder(cfg):
        spec = encoder_settings(cfg)
        audio = f"{Path(spec.name).name}[{','.join(str(x) for x in spec.layers)}]"
    else:
        audio = "mel"
    text = cfg.text.encoder
    text = text if text == "standin" or not Path(str(text)).is_absolute() else Path(text).name
    return f"{audio} + {text}"


def frontend_configs(cfg_or_names: Config | Iterable[str | Path],
                     overrides: Iterable[str] = ()) -> list[Config]:
    """Configs of the study: a config and its `reproduce.frontends`, or a list of names/paths."""
    from koemo.config.load import load_config
    from koemo.config.schema import Config

    if isinstance(cfg_or_names, Config):
        others = cfg_or_names.reproduce.frontends
        return [cfg_or_names] + [load_config(name, list(overrides)) for name in others]
    return [load_config(name, list(overrides)) for name in cfg_or_names]


def run_frontend_study(configs: Iterable[Config | str | Path], workdir: str | Path,
                       progress: bool = False,
                       parallel_runs: int | None = None) -> pd.DataFrame:
    """Train (or reuse) every config's fusion-study runs; one row per run with a `frontend`
    column. `configs`: typed configs or names/paths."""
    from koemo.config.load import load_config
    from koemo.config.schema import Config
    from koemo.experiments.plan import fusion_plan, run_plan

    tables, labels = [], set()
    for given in configs:
        cfg = given if isinstance(given, Config) else load_config(given)
        label = frontend_label(cfg)
        if label in labels:
            raise ValueError(f"two configs of the study have the same front-ends ({label})")
        labels.add(label)
        runs = run_plan(fusion_plan(cfg, workdir), workdir, progress=progress,
                        parallel_runs=parallel_runs)
        tables.append(runs.assign(frontend=label, config=cfg.name))
    return pd.concat(tables, ignore_index=True)


def frontend_fusion_table(runs: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """Front-end pair x fusion kind, `mean ± std` of `metric` over folds and seeds, and the
    majority-class baseline (mean over the first seed's test sets) as the last column."""
    from koemo.experiments.plan import load_metrics, mean_std

    classifiers = runs[runs["stage"] == "multimodal"]
    summary = mean_std(classifiers, ["frontend", "classifier"], [metric])
    table = summary.pivot(index="frontend", columns="classifier", values=metric)
    kinds = list(dict.fromkeys(classifiers["classifier"]))
    table = table[kinds]
    baseline = {}
    for label, group in classifiers.groupby("frontend", sort=False):
        first = group[group["seed"] == group["seed"].min()].drop_duplicates("split")
        scores = [load_metrics(d).majority().score(metric) for d in first["run_dir"]]
        baseline[label] = f"{sum(scores) / len(scores):.3f}"
    table[MAJORITY] = pd.Series(baseline)
    order = list(dict.fromkeys(classifiers["frontend"]))
    counts = classifiers.groupby("frontend")["split"].nunique()
    table.insert(0, "folds", counts)
    return table.loc[order].reset_index()
