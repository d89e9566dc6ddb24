"""What every numbered notebook does first: resolve paths, load the config, find the corpus.

Notebooks stay thin: their parameters cell sets CONFIG, DATA_ROOT, WORKDIR, OUT, SYNTHETIC and
OVERRIDES, then `ctx = koemo.reporting.notebook.start(...)` gives them everything else.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from koemo.config import assets
from koemo.config.load import load_config
from koemo.config.schema import Config, Synthetic
from koemo.modeling.runs import save_run_record
from koemo.errors import KoemoInputError


def find_repo_root(start: Path | None = None) -> Path | None:
    """The koemo checkout containing `start` (notebooks run from notebooks/), if any."""
    return assets.find_repo_root(start)


_WARNED: set[Path] = set()


def path_base() -> tuple[Path, str]:
    """What relative paths are taken from, and why: the checkout holding the current folder;
    else the checkout koemo is installed from (on Colab: KOEMO_SOURCE on Drive, installed
    editable, so WORKDIR/OUT land on Drive and survive a disconnect); else the current folder."""
    root = find_repo_root()
    if root is not None:
        return root, "checkout"
    root = assets.source_checkout()
    if root is not None:
        return root, "installed checkout"
    return Path.cwd().resolve(), "current folder"


def resolve_path(path: str | Path, root: Path | None = None) -> Path:
    """Relative paths are taken from the repository root, so they mean the same thing whether
    a notebook runs from notebooks/, from papermill or from the CLI. Without any checkout (a
    wheel install) they are taken from the current folder, and a warning says where they went
    (on Colab that folder, /content, is wiped when the runtime disconnects)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    if root is not None:
        return (root / path).resolve()
    base, why = path_base()
    resolved = (base / path).resolve()
    if why == "current folder" and resolved not in _WARNED:
        _WARNED.add(resolved)
        volatile = str(resolved).startswith("/content/") and \
            not str(resolved).startswith("/content/drive/")
        print(f"koemo: WARNING: relative path {str(path)!r} -> {resolved} (no koemo checkout "
              "here or installed: taken from the current folder)"
              + ("; /content is wiped when the Colab runtime disconnects: give an absolute "
                 "path on Drive, e.g. /content/drive/MyDrive/koemo-work" if volatile else ""),
              file=sys.stderr, flush=True)
    return resolved


@dataclass
class Context:
    cfg: Config
    workdir: Path
    out: Path
    data_root: Path | None
    synthetic: bool
    kemdy19_root: Path | None = None

    @property
    def tables(self) -> Path:
        return _mkdir(self.out / "tables")

    @property
    def figures(self) -> Path:
        return _mkdir(self.out / "figures")

    def corpus_root(self) -> Path:
        """The KEMDy20 root; for SYNTHETIC runs the bundled generator writes it (idempotent)."""
        if self.synthetic:
            return ensure_synthetic_corpus(self.workdir, self.cfg)
        if self.data_root is None:
            raise KoemoInputError("DATA_ROOT is not set: point it at your KEMDy20 copy "
                                  "(the folder holding annotation/ and wav/), or set SYNTHETIC=True")
        if not (self.data_root / "annotation").is_dir():
            raise KoemoInputError(f"{self.data_root}: no annotation/ folder here; DATA_ROOT must be "
                                  "the KEMDy20 root (e.g. .../KEMDy20_v1_1)")
        return self.data_root


    def second_corpus_root(self) -> Path | None:
        """The KEMDy19 root of the cross-corpus study (notebook 5-3), or None when there is
        none: for SYNTHETIC runs the generator writes one when the config's recipe
        (`synthetic.kemdy19`) asks for it."""
        if self.synthetic:
            return ensure_synthetic_kemdy19(self.workdir, self.cfg)
        if self.kemdy19_root is None:
            return None
        if not (self.kemdy19_root / "annotation").is_dir():
            raise KoemoInputError(f"{self.kemdy19_root}: no annotation/ folder here; KEMDY19_ROOT "
                                  "must be the KEMDy19 root (the folder holding annotation/ and wav/)")
        return self.kemdy19_root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_synthetic_corpus(workdir: Path, cfg: Config) -> Path:
    """Write the synthetic KEMDy20 corpus once, with the recipe's faults planted; a complete
    one (marked by a stamp file naming its arguments and the generator version) is reused."""
    from koemo.synth import write_corpus
    from koemo.synth.faults import parse_faults

    recipe = cfg.synthetic or Synthetic()
    synth = recipe.as_dict()                                     # the stamp: as written
    synth.pop("kemdy19", None)                                   # the other corpus' recipe
    if "faults" in synth:   # the names `all` stands for today, so a changed `all` rewrites it
        synth["faults"] = parse_faults(synth["faults"])
    faults = ",".join(synth.get("faults", []))
    return _written_once(workdir / "corpus" / "KEMDy20_v1_1", synth,
                         lambda root: write_corpus(
                             root, recipe.sessions, recipe.seed, recipe.utterances_per_session,
                             mean_duration=recipe.mean_duration,
                             silent_recordings=recipe.silent_recordings, overwrite=True,
                             faults=faults))


def ensure_synthetic_kemdy19(workdir: Path, cfg: Config) -> Path | None:
    """Write the synthetic KEMDy19 corpus of `synthetic.kemdy19` once; None without a recipe."""
    from koemo.synth.kemdy19 import write_corpus

    recipe = cfg.synthetic.kemdy19 if cfg.synthetic else None
    if recipe is None:
        return None
    return _written_once(workdir / "corpus" / "KEMDy19", recipe.as_dict(),
                         lambda root: write_corpus(
                             root, recipe.sessions, recipe.seed, recipe.utterances_per_session,
                             mean_duration=recipe.mean_duration, overwrite=True))


def _written_once(root: Path, recipe: dict, write: Callable[[Path], object]) -> Path:
    from koemo.synth.corpus import GENERATOR_VERSION

    stamp = root / ".koemo-synth.json"
    wanted = repr(sorted(recipe.items()) + [("generator_version", GENERATOR_VERSION)])
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return root
    write(root)
    stamp.write_text(wanted, encoding="utf-8")
    return root


def start(config: str, workdir: str, out: str, data_root: str | None = None,
          synthetic: bool = False, overrides: Sequence[str] = (),
          kemdy19_root: str | None = None) -> Context:
    """Load the config, make the folders, record config + versions next to the outputs."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(resolve_path(config) if Path(config).suffix else config, overrides)
    ctx = Context(cfg=cfg, workdir=_mkdir(resolve_path(workdir)), out=_mkdir(resolve_path(out)),
                  data_root=resolve_path(data_root) if data_root else None, synthetic=synthetic,
                  kemdy19_root=resolve_path(kemdy19_root) if kemdy19_root else None)
    save_run_record(ctx.out, cfg, synthetic=synthetic,
                    data_root=str(ctx.data_root) if ctx.data_root else None)
    print(f"koemo: WORKDIR {ctx.workdir}, OUT {ctx.out} (relative paths are taken from the "
          f"{path_base()[1]})", flush=True)
    return ctx
