"""Consistency checks of a predictor directory: the three stages must come from one setting,
the classifier's frozen regressors should equal the standalone ones, and the text model must
fit the text regressor."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from koemo.config.schema import feature_keys
from koemo.errors import CheckpointError

# Feature settings that change the numbers the models see (the backend does not: the torch
# and librosa backends agree within koemo.audio.features.PARITY_TOLERANCE_DB).
FEATURE_KEYS = feature_keys(model_input_only=True)     # marked model_input in the schema
TEXT_KEYS = ("tokenizer", "encoder", "max_length")


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and bool((sa[k] == sb[k]).all()) for k in sa)


def same_regressor(standalone, inside) -> bool:
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


def check_text_model(tokenizer, encoder, cfg: dict, directory: Path) -> None:
    from koemo.config.load import text_input_dim

    hidden, vocab = int(encoder.config.hidden_size), int(encoder.config.vocab_size)
    if hidden != text_input_dim(cfg):
        raise CheckpointError(f"{directory}: the text encoder's hidden size {hidden} differs from "
                              f"the text model's input width {text_input_dim(cfg)} "
                              "(models.text.input_dim, default models.d_model): wrong text model")
    if tokenizer.vocab_size > vocab:
        raise CheckpointError(f"{directory}: tokenizer has {tokenizer.vocab_size} pieces but the "
                              f"encoder embeds only {vocab}: they do not belong together")
