"""Consistency checks of a predictor directory: the three stages must come from one setting,
the classifier's frozen regressors should equal the standalone ones, and the text model must
fit the text regressor."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from koemo.config.schema import Config, feature_keys
from koemo.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from koemo.text.encoder import TextTokenizer

# Feature settings that change the numbers the models see (the backend does not: the torch
# and librosa backends agree within koemo.audio.features.PARITY_TOLERANCE_DB).
FEATURE_KEYS = feature_keys(model_input_only=True)     # marked model_input in the schema
TEXT_KEYS = ("tokenizer", "encoder", "max_length")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and bool((sa[k] == sb[k]).all()) for k in sa)


def same_regressor(standalone: torch.nn.Module, inside: torch.nn.Module) -> bool:
    """True when the classifier's frozen regressor computes exactly what the standalone one
    does (same weights, head count and fix switches)."""
    if standalone is inside:
        return True
    return type(standalone) is type(inside) and standalone.num_heads == inside.num_heads \
        and standalone.fixes == inside.fixes and same_weights(standalone, inside)


def _section_diffs(metas: dict, section: str, keys: Sequence[str], stages: Sequence[str]) -> list[str]:
    first = stages[0]
    diffs = []
    for stage in stages[1:]:
        for key in keys:
            a = metas[first]["config"][section].get(key)
            b = metas[stage]["config"][section].get(key)
            if a != b:
                diffs.append(f"{section}.{key}: {first} {a!r} vs {stage} {b!r}")
    return diffs


def check_stage_metas(metas: dict, stage_dirs: dict) -> None:
    """The three stages must come from one setting: same features for audio and classifier,
    same text model for text and classifier, a classifier that carries its regressors."""
    diffs = _section_diffs(metas, "features", FEATURE_KEYS, ("multimodal", "audio"))
    diffs += _section_diffs(metas, "text", TEXT_KEYS, ("multimodal", "text"))
    d_models = {stage: meta["config"]["models"]["d_model"] for stage, meta in metas.items()}
    if len(set(d_models.values())) > 1:
        diffs.append(f"models.d_model differs: {d_models}")
    if diffs:
        raise CheckpointError(f"{stage_dirs['multimodal'].parent}: the stages come from different "
                              "configs: " + "; ".join(diffs))
    if not metas["multimodal"].get("regressors"):
        raise CheckpointError(f"{stage_dirs['multimodal']}: this classifier checkpoint holds no "
                              "regressors (it only runs on cached hidden states); export one "
                              "saved by `koemo train multimodal`")


def mismatched_regressors(models: dict) -> list[str]:
    """Stages whose standalone weights differ from the frozen copy inside the classifier
    (head counts may differ: the faithful 4-head audio reuse runs the same weights)."""
    inside = {"audio": models["multimodal"].AudioModel, "text": models["multimodal"].TextModel}
    return [stage for stage, model in inside.items() if not same_weights(models[stage], model)]


def check_text_model(tokenizer: TextTokenizer, encoder: Any, cfg: Config, directory: Path) -> None:
    from koemo.config.load import text_input_dim

    hidden, vocab = int(encoder.config.hidden_size), int(encoder.config.vocab_size)
    if hidden != text_input_dim(cfg.models):
        raise CheckpointError(f"{directory}: the text encoder's hidden size {hidden} differs from "
                              f"the text model's input width {text_input_dim(cfg.models)} "
                              "(models.text.input_dim, default models.d_model): wrong text model")
    if tokenizer.vocab_size > vocab:
        raise CheckpointError(f"{directory}: tokenizer has {tokenizer.vocab_size} pieces but the "
                              f"encoder embeds only {vocab}: they do not belong together")


# What a stage's meta.json may ask for, checked before any model is built: a downloaded
# `inner_dim: 1e9` would otherwise try to allocate hundreds of GB. Generous: the paper's
# model is far inside (widths <= 3072, 7 layers, 6 heads, 512 frames of 128 mels).
MAX_LAYERS = 64
MAX_HEADS = 64
MAX_WIDTH = 16384
SIZE_LIMITS = {("features", "n_mels"): 1024, ("features", "n_fft"): 65536,
               ("features", "max_frames"): 65536, ("features", "hop_length"): 65536,
               ("text", "max_length"): 4096}


def _size_limit(key: str) -> int:
    return MAX_LAYERS if "layers" in key else MAX_HEADS if "heads" in key else MAX_WIDTH


def _model_sizes(written: Mapping[str, Any] | None, prefix: str
                 ) -> Iterator[tuple[str, Any, int]]:
    """(dotted key, value, limit) of every size in a `models` section as a meta.json wrote it
    (not parsed yet: this check comes first; dropout is no size)."""
    for key, value in (written or {}).items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            yield from _model_sizes(value, name)
        elif key != "dropout" and not isinstance(value, (str, bool)) and value is not None:
            for item in value if isinstance(value, list) else [value]:
                yield name, item, _size_limit(key)


def check_meta_sizes(meta: dict, stage_dir: Path) -> None:
    """Every size a stage asks for is a whole number within bounds (CheckpointError naming
    meta.json and the key otherwise)."""
    # The config as meta.json wrote it: read before it is parsed, so nothing huge gets built.
    written: dict = meta["config"] if isinstance(meta.get("config"), dict) else {}
    sizes = list(_model_sizes(written.get("models"), "models"))
    sizes += [(f"num_heads.{k}", v, MAX_HEADS) for k, v in (meta.get("num_heads") or {}).items()
              if v is not None]
    sizes += [(".".join(keys), (written.get(keys[0]) or {}).get(keys[1]), limit)
              for keys, limit in SIZE_LIMITS.items()
              if (written.get(keys[0]) or {}).get(keys[1]) is not None]
    check_sizes(Path(stage_dir) / "meta.json", [(key, value, 1, limit) for key, value, limit in sizes])


def check_sizes(path: Path, sizes: Iterable[tuple[str, Any, int, int]]) -> None:
    """Every (key, value, low, high) of `sizes` is a whole number within [low, high]
    (CheckpointError naming `path`, the key and the bound otherwise)."""
    for key, value, low, limit in sizes:
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or not low <= value <= limit:
            raise CheckpointError(f"{path}: {key} = {value!r} is not a size koemo builds (a whole "
                                  f"number {low}-{limit}); refusing to build this model")


# What an encoder folder's config.json (the text encoder; the speech encoder) may ask for,
# checked the same way before transformers builds it: `num_hidden_layers: 100000` grew memory
# for minutes with no output, `hidden_size: 1e9` failed with a 29-line load report. Generous:
# (key, low, high); vocabularies up to 2**20 pieces (XLM-R: 250,002), no type vocabulary (0,
# DeBERTa) allowed.
MAX_VOCAB = 2 ** 20
MAX_POSITIONS = 65536
ENCODER_SIZE_LIMITS = (("num_hidden_layers", 1, MAX_LAYERS), ("num_attention_heads", 1, MAX_HEADS),
                       ("hidden_size", 1, MAX_WIDTH), ("intermediate_size", 1, MAX_WIDTH),
                       ("embedding_size", 1, MAX_WIDTH), ("vocab_size", 1, MAX_VOCAB),
                       ("max_position_embeddings", 1, MAX_POSITIONS),
                       ("type_vocab_size", 0, MAX_POSITIONS))


def check_encoder_config(folder: str | Path) -> None:
    """The sizes an encoder folder's config.json asks for are bounded (ENCODER_SIZE_LIMITS);
    a hub id, or a folder without config.json, is left to its loader."""
    import json

    path = Path(folder) / "config.json"
    if not path.is_file():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt JSON ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    check_sizes(path, [(key, config[key], low, high) for key, low, high in ENCODER_SIZE_LIMITS
                       if config.get(key) is not None])
