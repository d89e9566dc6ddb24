"""FunASR models (emotion2vec+, SenseVoice-Small) from a local directory or a hub id.

FunASR is an optional extra (`pip install "koemo[foundation]"`), never part of the core
install: it pulls modelscope, hydra/omegaconf, oss2 and the Aliyun SDK, umap-learn, jieba and
more, none of which koemo needs elsewhere (docs/foundation.md lists what it adds and what it was
measured to leave alone). Everything here fails with a one-line KoemoInputError, never a
traceback: FunASR missing, a directory without the released files, a hub id offline.

A model is the released repository's own directory (FunASR's local-directory format):

    config.yaml          model class (`model:`) and its settings (`model_conf:` / `encoder_conf:`)
    model.pt             the weights: a state dict (torch.load, weights_only)
    configuration.json   optional: which file is which (FunASR's `file_path_metas`)
    + the class's own files (MODEL_FILES): tokens.txt (emotion2vec's class names), or the
      sentencepiece model and am.mvn (SenseVoice's tokenizer and feature normalisation)

A hub id is fetched file by file into the Hugging Face cache first (the hub ids are
Hugging Face's: emotion2vec/emotion2vec_plus_base, emotion2vec/emotion2vec_plus_large,
FunAudioLLM/SenseVoiceSmall); FunASR then only ever sees a local directory, so it never
reaches ModelScope or a hub by itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any, Iterator

from koemo.errors import KoemoInputError

EXTRA = 'pip install "koemo[foundation]"'
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.pt"
OPTIONAL_FILES = ("configuration.json",)
# kind -> (the `model:` class in config.yaml, the files besides config.yaml and model.pt)
MODEL_FILES = {
    "emotion2vec": ("Emotion2vec", ("tokens.txt",)),
    "sensevoice": ("SenseVoiceSmall", ("chn_jpn_yue_eng_ko_spectok.bpe.model", "am.mvn")),
}
HUB_IDS = {
    "emotion2vec": ("emotion2vec/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_large"),
    "sensevoice": ("FunAudioLLM/SenseVoiceSmall",),
}


def funasr_installed() -> bool:
    """Whether the optional extra is installed (without importing it: its import is slow)."""
    import importlib.util

    return importlib.util.find_spec("funasr") is not None


def required_files(kind: str) -> tuple[str, ...]:
    """The files a `kind` model directory must hold (for the asset pre-flight too)."""
    if kind not in MODEL_FILES:
        raise KoemoInputError(f"unknown FunASR model kind {kind!r}; choose one of "
                              f"{', '.join(MODEL_FILES)}")
    return (CONFIG_FILE, WEIGHTS_FILE) + MODEL_FILES[kind][1]


def model_files(kind: str, reference: str | Path) -> list[Path | str]:
    """What a reference needs: for a local directory the paths of its required files (present
    or not), for a hub id `hub_id/file` names -- the list an asset pre-flight checks."""
    names = required_files(kind)
    path = Path(str(reference)).expanduser()
    if path.exists() or not _looks_like_hub_id(str(reference)):
        return [path / name for name in names]
    return [f"{reference}/{name}" for name in names]


def config_model_class(folder: Path) -> str | None:
    """The `model:` line of a directory's config.yaml (None without one)."""
    import yaml

    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return config.get("model") if isinstance(config, dict) else None


def is_kind(kind: str, reference: str | Path) -> bool:
    """True when `reference` names a `kind` model: a directory whose config.yaml says its
    class, or one of the kind's known hub ids. Reads no weights and reaches no hub."""
    path = Path(str(reference)).expanduser()
    if path.is_dir():
        return config_model_class(path) == MODEL_FILES[kind][0]
    return str(reference) in HUB_IDS[kind]


def model_directory(kind: str, reference: str | Path) -> Path:
    """A local `kind` directory checked for its files, or a hub id fetched into the hub cache
    (offline and not cached: KoemoInputError within seconds)."""
    expected, _ = MODEL_FILES[kind]
    names = required_files(kind)
    path = Path(str(reference)).expanduser()
    if path.is_dir():
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise KoemoInputError(f"{path}: {kind} model directory without {', '.join(missing)} "
                                  f"(a {kind} directory holds {', '.join(names)})")
        found = config_model_class(path)
        if found != expected:
            raise KoemoInputError(f"{path / CONFIG_FILE}: says model: {found}, not {expected} "
                                  f"(not a {kind} model)")
        return path
    if path.exists():
        raise KoemoInputError(f"{path}: expected a {kind} model directory, found a file")
    if not _looks_like_hub_id(str(reference)):
        raise KoemoInputError(f"{path}: {kind} model directory not found (give a directory or a "
                              f"hub id such as {HUB_IDS[kind][0]})")
    from koemo.text.tokenizer import fetch_hub_files, hub_is_offline

    try:
        return fetch_hub_files(str(reference), names, OPTIONAL_FILES, what=f"{kind} model")
    except KoemoInputError as err:
        if not (hub_is_offline() or "not reachable" in str(err)):
            raise
        raise KoemoInputError(
            f"{kind} model '{reference}' is not a local directory, and the Hugging Face hub is not "
            "reachable (offline mode HF_HUB_OFFLINE=1, or no network). Download it where the hub "
            f"is reachable (huggingface_hub.snapshot_download('{reference}', local_dir=DIR)), "
            "copy DIR here and name DIR instead of the hub id") from err


def _looks_like_hub_id(name: str) -> bool:
    from koemo.text.tokenizer import looks_like_hub_id

    return looks_like_hub_id(name)


def fingerprint(folder: Path, kind: str) -> str:
    """sha1 over the directory's required files: same files -> same cached states."""
    from koemo.text.tokenizer import file_sha1

    digest = hashlib.sha1()
    for name in required_files(kind):
        digest.update(f"{name}:{file_sha1(folder / name)}\n".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def quiet_funasr() -> Iterator[None]:
    """FunASR's import and AutoModel configure the root logger (a handler at INFO), print an
    ffmpeg notice and warn about pydub: silence them and leave the root logger, torch's thread
    count (AutoModel's `ncpu`) and the warning filters as they were."""
    import warnings

    import torch

    root = logging.getLogger()
    level, handlers, threads = root.level, list(root.handlers), torch.get_num_threads()
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(None), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
        torch.set_num_threads(threads)


def import_funasr() -> Any:
    """`funasr.AutoModel`, or a KoemoInputError saying how to install the extra."""
    try:
        with quiet_funasr():
            from funasr import AutoModel
    except ImportError as err:
        raise KoemoInputError(f"emotion2vec+ and SenseVoice load through FunASR, which is not "
                              f"installed ({err}); install the optional extra: {EXTRA}") from err
    return AutoModel


def load_funasr(kind: str, reference: str | Path, device: str = "cpu") -> tuple[Any, Path]:
    """(FunASR AutoModel of the `kind` model, its local directory), frozen, in eval mode
    (quiet_funasr: the process's logging and thread count are left as they were)."""
    folder = model_directory(kind, reference)          # before importing FunASR: fast errors
    AutoModel = import_funasr()
    import torch

    try:
        with quiet_funasr():
            model = AutoModel(model=str(folder), hub="hf", device=str(device),
                              ncpu=torch.get_num_threads(), disable_update=True,
                              disable_pbar=True, disable_log=True, log_level="ERROR")
    except (OSError, ValueError, RuntimeError, KeyError, AssertionError) as err:
        raise KoemoInputError(f"{folder}: FunASR could not load this {kind} model ({err})") from err
    model.model.requires_grad_(False)
    model.model.eval()
    return model, folder
