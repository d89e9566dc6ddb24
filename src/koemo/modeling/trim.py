"""Per-batch trimming of time padding (`train.trim_padding: auto | false`), only where it
provably leaves every result unchanged.

Batches are padded to the config's full length (512 frames, 64 tokens), and the GRU/LSTM step
through every padded position. Cutting a batch to its longest valid length changes nothing a
row's result depends on when all of these hold:
- padding is masked out of attention (audio: fixes.length_padding_mask or a speech-encoder
  front-end, which mask from the lengths; text: fixes.text_padding_mask; the classifier's text
  part is masked by the attention mask in either mode) and every row has a valid step (a row
  with none attends to all positions, padding included);
- the recurrent layers read the last valid step (fixes.last_valid_step): the faithful model
  reads the last padded step, so it is never trimmed;
- the cut positions come after every valid one: the classifier's input is [audio; text], so
  only its text tail is cut (its LSTM runs through the audio padding before the text);
- no random draw depends on the padded shape: dropout's masks are drawn per element, so a
  shorter tensor draws other masks. A pass is trimmed only when no dropout is active in it:
  evaluation with fixes.eval_attention_dropout_off (the original kept attention dropout on in
  eval), or training with every dropout rate of the trained model at 0.
Convolutions run over frequency only and every other layer per position, so valid positions
compute the same values (to float rounding of the shorter matrix products: <= 1e-6, tested).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from koemo.config.schema import Config, Fixes, FusionKind, Models, Stage, Train


def _dropout_free(models: Models, fixes: Fixes, stage: Stage, training: bool) -> bool:
    if not training:
        return bool(fixes.eval_attention_dropout_off) or float(models.stage(stage).dropout) == 0
    return float(models.stage(stage).dropout) == 0


def _masks_padding(models: Models, fixes: Fixes, stage: Stage, cached: bool,
                   classifier_kind: FusionKind) -> bool:
    if not fixes.last_valid_step:
        return False
    if stage == "audio":
        mel = (models.audio.frontend or "mel") == "mel"
        return bool(fixes.length_padding_mask) or not mel
    if stage == "text":
        return bool(fixes.text_padding_mask)
    # The classifier from cached outputs (the regressors do not run), the paper's head only.
    return cached and classifier_kind == "attention_lstm"


def trim_setting(train: Train) -> bool:
    """train.trim_padding: auto (trim where exact) or false."""
    return train.trim_padding == "auto"


def trimmed_passes(cfg: Config, stage: Stage, cached: bool = False,
                   classifier_kind: FusionKind = "attention_lstm") -> dict[bool, bool]:
    """{training: trimmed?} for the stage's training and evaluation passes."""
    if not trim_setting(cfg.train) or not _masks_padding(cfg.models, cfg.fixes, stage, cached,
                                                         classifier_kind):
        return {True: False, False: False}
    return {training: _dropout_free(cfg.models, cfg.fixes, stage, training)
            for training in (True, False)}


def _keep(mask: torch.Tensor) -> int:
    """Columns up to the last one any row holds a valid step in (at least 1)."""
    steps = torch.arange(1, mask.size(1) + 1, device=mask.device)
    return max(1, int((mask.bool() * steps).max()))


def trim_batch(batch: dict, stage: Stage) -> dict:
    """The batch cut to its longest valid length along time (unchanged when a row has no valid
    step, or nothing can be cut)."""
    if stage == "audio":
        lengths = torch.as_tensor(batch["lengths"])
        steps = batch["feats"].size(2)
        if int(lengths.min()) < 1 or int(lengths.max()) >= steps:
            return batch
        return {**batch, "feats": batch["feats"][:, :, :int(lengths.max())]}
    if stage == "text":
        mask = batch["attention_mask"]
        if not bool(mask.bool().any(dim=1).all()):
            return batch
        keep = _keep(mask)
        return {**batch, "states": batch["states"][:, :keep], "attention_mask": mask[:, :keep]}
    mask = batch["text_mask"]
    if not bool((batch["audio_mask"].bool().any(dim=1) | mask.bool().any(dim=1)).all()):
        return batch
    keep = _keep(mask)
    return {**batch, "text_hidden": batch["text_hidden"][:, :keep], "text_mask": mask[:, :keep]}


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module under torch.compile's or DDP's wrapper (whose own mode flag is not it)."""
    for attribute in ("_orig_mod", "module"):
        model = getattr(model, attribute, model)
    return model


def trimming_forward(forward: Callable, cfg: Config, stage: Stage, cached: bool = False,
                     classifier_kind: FusionKind = "attention_lstm") -> Callable:
    """`forward(model, batch, device)` that trims the batch in the passes where that is exact
    (the model's train/eval mode says which pass); `forward` itself where none is."""
    passes = trimmed_passes(cfg, stage, cached, classifier_kind)
    if not any(passes.values()):
        return forward

    def trimmed(model: torch.nn.Module, batch: dict, device: Any) -> Any:
        if passes[_unwrapped(model).training]:
            batch = trim_batch(batch, stage)
        return forward(model, batch, device)
    return trimmed
