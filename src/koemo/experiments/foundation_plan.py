"""The plan of the foundation-model study (notebook 5-4, `reproduce.foundation`): its tables,
where each trains, its seeds, run directories and upstream names; koemo.experiments.foundation
trains and scores it.

Tables (one per corpus and direction, koemo.reporting.foundation):
- `kemdy20`: KEMDy20's five session folds; `kemdy19`: KEMDy19's; `kemdy19_to_kemdy20` and
  `kemdy20_to_kemdy19`: every row of one corpus trains (10% validating), every row of the
  other is test.
With a second corpus (KEMDy19) the study works in `<workdir>/cross` (the cross-corpus study's
combined workdir, koemo.experiments.cross), where each corpus' rows are pooled once for all
four tables (splits `kemdy20_cv5_fK`, `kemdy19_cv5_fK` and the two directions: KEMDy20's folds
there are its own workdir's, row for row). Without one, KEMDy20's folds in the main workdir.

Per table and split (fold), for each seed: one probe run per audio upstream, per text
upstream and per fused pair (koemo.modeling.probe over koemo.upstreams.pooled stores, built
once per workdir and upstream); per zero-shot model two scored runs of its predictions (made
once per workdir and model): `excluded` (test rows whose prediction maps outside the study's
classes left out) and `errors` (those rows kept, their prediction an extra class that is never
right); and the majority class of the training rows. Rows: those of the paper's runs the
tables compare with (`study_variant`: the cross-corpus study's variant, else the fusion
study's; corrected leaves recordings without signal out). The upstreams run on `train.device`.

Names: a hub id or local directory; `tiny:<family>` builds a tiny random upstream of that
family in `<workdir>/tiny-upstreams/` once (koemo.synth.encoders; emotion2vec and sensevoice:
koemo.synth.zeroshot), `standin` is the workdir's KoBERT stand-in: the demo and the tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from koemo.config.fingerprints import fingerprint
from koemo.config.foundation import TINY, FoundationStudy
from koemo.config.schema import CROSS_PROTOCOLS, Config
from koemo.experiments.plan import split_config, splits_for, usable, variant_config
from koemo.text.standin import STANDIN_KEYWORD as STANDIN
from koemo.upstreams.funasr_loader import funasr_installed

TINY_DIR = "tiny-upstreams"
METRICS = ["accuracy", "uar", "macro_f1", "weighted_f1"]
RUN_COLUMNS = ["table", "system", "kind", "split", "seed", "run_dir", *METRICS, "outside"]


# ---------------------------------------------------------------- names
def study_of(cfg: Config) -> FoundationStudy:
    from koemo.errors import KoemoInputError

    if cfg.reproduce.foundation is None:
        raise KoemoInputError("reproduce.foundation is null: this config has no foundation study")
    return cfg.reproduce.foundation


def is_hub_id(name: str) -> bool:
    from koemo.text.tokenizer import looks_like_hub_id

    return (not name.startswith(TINY) and name != STANDIN and not Path(name).expanduser().exists()
            and looks_like_hub_id(name))


def slug(name: str) -> str:
    """A directory-name form of an upstream name (hub id, tiny:<family>, path)."""
    path = Path(name).expanduser()
    if path.is_absolute() or name.startswith("."):
        return f"{path.name}-{fingerprint(str(path), length=6)}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name.replace("/", "--")).strip("-")


def resolve_name(name: str, workdir: Path, cfg: Config) -> str:
    """A loadable hub id or directory for `name` (tiny: and standin built here, once)."""
    if name == STANDIN:
        from koemo.text.standin import ensure_standin

        return str(ensure_standin(workdir, cfg)[0])
    if not name.startswith(TINY):
        return name
    family = name[len(TINY):]
    target = workdir / TINY_DIR / family
    marker = target / "built.json"
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not marker.is_file():
            _build_tiny(family, target, workdir)
            marker.write_text('{"complete": true}\n', encoding="utf-8")
    return str(target)


TINY_FAMILIES = {"audio": ("wavlm", "hubert", "xlsr", "wav2vec2", "whisper", "emotion2vec"),
                 "text": ("roberta", "electra"), "emotion2vec": ("emotion2vec",),
                 "sensevoice": ("sensevoice",)}


def check_names(cfg: Config) -> None:
    """Every upstream and zero-shot name usable before anything is computed: a tiny: family
    of its kind, `standin` for text only, an existing directory or a hub id; all problems in
    one KoemoInputError."""
    from koemo.errors import KoemoInputError
    from koemo.text.tokenizer import looks_like_hub_id

    study, problems = study_of(cfg), []
    named = [*((n, "audio") for n in study.audio), *((n, "text") for n in study.text),
             *((p.audio, "audio") for p in study.fused), *((p.text, "text") for p in study.fused),
             *((e.model, e.kind) for e in study.zero_shot)]
    for name, kind in dict.fromkeys(named):
        if name.startswith(TINY):
            if name[len(TINY):] not in TINY_FAMILIES[kind]:
                problems.append(f"{name}: no tiny {kind} model of that family (one of "
                                f"{', '.join(TINY + f for f in TINY_FAMILIES[kind])})")
        elif name == STANDIN:
            if kind != "text":
                problems.append(f"{name}: the KoBERT stand-in is a text upstream, not {kind}")
        elif not Path(name).expanduser().exists() and not looks_like_hub_id(name):
            problems.append(f"{name}: neither a directory nor a hub id")
    if problems:
        raise KoemoInputError("reproduce.foundation: " + "; ".join(problems))


def _build_tiny(family: str, target: Path, workdir: Path) -> None:
    import shutil

    shutil.rmtree(target, ignore_errors=True)
    if family in ("emotion2vec", "sensevoice"):
        from koemo.synth import zeroshot

        getattr(zeroshot, f"build_{family}_standin")(target)
        return
    from koemo.config.workdir import load_utterances
    from koemo.synth.encoders import build_tiny_upstream

    build_tiny_upstream(family, target, load_utterances(workdir)["text"].astype(str))


def left_out(cfg: Config) -> dict[str, str]:
    """Models the study cannot run here, with why: emotion2vec+ and SenseVoice load through
    FunASR, an optional extra; without it their probes and zero-shot rows are left out (named
    in the tables' notes), and everything else runs."""
    from koemo.upstreams.audio import is_emotion2vec
    from koemo.upstreams.funasr_loader import EXTRA

    study = study_of(cfg)
    if funasr_installed():
        return {}
    names = [n for n in study.audio if is_emotion2vec(n)] + [e.model for e in study.zero_shot]
    names += [p.audio for p in study.fused if is_emotion2vec(p.audio)]
    why = f"FunASR is not installed (the optional extra: {EXTRA})"
    return {name: why for name in dict.fromkeys(names)}


# ---------------------------------------------------------------- what is trained where
@dataclass(frozen=True)
class Context:
    table: str          # kemdy20 | kemdy19 | kemdy19_to_kemdy20 | kemdy20_to_kemdy19
    workdir: Path
    splits: tuple[str, ...]


def contexts(cfg: Config, workdir: str | Path, combined: Path | None) -> list[Context]:
    """The study's tables and where they train (module doc); splits without rows left out."""
    folds = cfg.reproduce.folds
    if combined is None:
        return [Context("kemdy20", Path(workdir), tuple(usable(splits_for(["cv5"], folds), workdir)))]
    found = [Context(corpus, combined, tuple(usable(splits_for([f"{corpus}_cv5"], folds), combined)))
             for corpus in ("kemdy20", "kemdy19")]
    found += [Context(name, combined, tuple(usable([name], combined))) for name in CROSS_PROTOCOLS]
    return [c for c in found if c.splits]


def study_seeds(cfg: Config, split: str) -> list[int]:
    from koemo.experiments.cross import study_seeds as cross_seeds

    return list(study_of(cfg).seeds or cross_seeds(cfg, split))


def study_variant(cfg: Config) -> str:
    """The rows the study trains and scores: those of the paper's runs it is compared with
    (the cross-corpus study's variant, else the fusion study's, else corrected)."""
    rep = cfg.reproduce
    study = rep.cross_corpus if rep.cross_corpus is not None else rep.fusion
    return study.variant if study is not None else "corrected"


def run_config(cfg: Config, split: str) -> Config:
    return split_config(variant_config(cfg, study_variant(cfg)), split)


def run_directory(workdir: Path, run_cfg: Config, leaf: str, seed: int) -> Path:
    """W/runs/<split>/<config name>/<leaf>/seed<s>, beside the paper method's runs."""
    from koemo.modeling.runs import split_name

    return workdir / "runs" / split_name(run_cfg) / run_cfg.name / leaf / f"seed{seed}"
