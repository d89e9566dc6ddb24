"""Which corpus a data root holds: KEMDy19 or KEMDy20, told apart by their annotation files.

`data.corpus` (auto | kemdy19 | kemdy20; `koemo prepare --corpus`) forces the choice; `auto`
(the default) looks at the names under `annotation/`: `SessionNN_F_res.csv` is KEMDy19's,
`SessNN_eval.csv` KEMDy20's.
"""
from __future__ import annotations

from pathlib import Path

from koemo.config.schema import Data
from koemo.dataset import kemdy19, kemdy20
from koemo.errors import KoemoInputError

AUTO = "auto"


def detect_corpus(data_root: Path) -> str:
    """The corpus whose annotation file names `data_root/annotation` holds (KEMDy20 when it
    holds neither, so its reader names what is missing)."""
    folder = Path(data_root) / "annotation"
    names = [p.name for p in folder.glob("*.csv")] if folder.is_dir() else []
    found = [name for name, pattern in (("kemdy19", kemdy19.ANNOTATION_FILE_RE),
                                        ("kemdy20", kemdy20.ANNOTATION_FILE_RE))
             if any(pattern.match(n) for n in names)]
    if len(found) == 2:
        raise KoemoInputError(f"{folder}: holds both KEMDy19 (SessionNN_F_res.csv) and KEMDy20 "
                              "(SessNN_eval.csv) annotation files; choose one with --corpus")
    return found[0] if found else "kemdy20"


def corpus_of(data_root: Path, data_cfg: Data) -> str:
    """`data.corpus` when it names a corpus (koemo.config.schema.Corpus), else the one
    detected from the files."""
    chosen = data_cfg.corpus or AUTO
    return detect_corpus(data_root) if chosen == AUTO else chosen
