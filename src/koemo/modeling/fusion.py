"""Fusion baselines for the fusion study, all on the SAME cached frozen-regressor outputs
and with EmoClassifier.forward's signature:
    forward(audio_hidden[B,T,D], audio_mask[B,T], text_hidden[B,L,D], text_mask[B,L]) -> dict(logits)

kinds:
- audio_only / text_only: the paper's head (transformer layers + LSTM, multimodal sizes) on
  one modality.
- early:  [masked-mean(audio); masked-mean(text)] -> MLP.
- sum:    relu(proj(masked-mean(audio))) + relu(proj(masked-mean(text))) -> MLP. The frozen
          regressors' coordinates mean different things, so each modality gets its own
          learned projection into a shared space before the element-wise sum.
- tensor: Tensor Fusion (Zadeh et al. 2017): outer product of [proj(audio);1] and
  [proj(text);1] (small ReLU projections) -> MLP.
- late:   average of an audio-only and a text-only classifier's class probabilities; the
  returned "logits" are log-probabilities, so cross-entropy on them trains both branches
  jointly (default); `LateFusionClassifier.from_unimodal` instead combines two separately
  trained unimodal classifiers without further training.
- attention_lstm: the paper's intermediate fusion, EmoClassifier.

The frozen regressors are optional for the baselines (needed only for `forward_raw`);
EmoClassifier always holds them, as the original did.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from typing import Literal

from koemo.config.schema import (FUSION_KINDS, REGRESSOR_STAGES, UNIMODAL_KINDS, Data, Fixes,
                                 FusionKind, Models, RegressorStage)
from koemo.modeling.layers import AttentionImpl, masked_mean
from koemo.modeling.models import (AttentionLSTMHead, AudioRegressor, EmoClassifier,
                                   FrozenRegressors, TextRegressor, num_classes)


class UnimodalClassifier(AttentionLSTMHead):
    """The paper's attention+LSTM head on one modality's hidden states."""

    def __init__(self, models: Models, fixes: Fixes, data: Data, modality: RegressorStage,
                 audio_model: AudioRegressor | None = None, text_model: TextRegressor | None = None,
                 attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        if modality not in REGRESSOR_STAGES:
            raise ValueError(f"modality must be audio or text, not {modality!r}")
        self.modality = modality
        self.attach_regressors(models, fixes, audio_model, text_model)
        self.build_head(models, fixes, num_classes(data), attention_impl)

    def forward(self, audio_hidden: torch.Tensor, audio_mask: torch.Tensor,
                text_hidden: torch.Tensor, text_mask: torch.Tensor) -> dict:
        if self.modality == "audio":
            return self.classify(audio_hidden, audio_mask.bool())
        return self.classify(text_hidden, text_mask.bool())


def _mlp(in_dim: int, models: Models, n_classes: int) -> nn.Sequential:
    spec = models.multimodal
    return nn.Sequential(nn.Linear(in_dim, spec.rnn_hidden), nn.ReLU(),
                         nn.Dropout(spec.dropout), nn.Linear(spec.rnn_hidden, n_classes))


def _projection(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU())


PooledKind = Literal["early", "sum", "tensor"]


class PooledFusionClassifier(FrozenRegressors):
    """early / sum / tensor fusion of the two masked-mean pooled modalities."""

    def __init__(self, models: Models, fixes: Fixes, data: Data, kind: PooledKind,
                 audio_model: AudioRegressor | None = None, text_model: TextRegressor | None = None):
        super().__init__()
        if kind not in ("early", "sum", "tensor"):
            raise ValueError(f"pooled fusion kind must be early, sum or tensor, not {kind!r}")
        self.kind = kind
        self.attach_regressors(models, fixes, audio_model, text_model)
        d_model, n_classes = models.d_model, num_classes(data)
        if kind == "early":
            self.mlp = _mlp(2 * d_model, models, n_classes)
        elif kind == "sum":
            self.audio_proj, self.text_proj = _projection(d_model, d_model), _projection(d_model, d_model)
            self.mlp = _mlp(d_model, models, n_classes)
        else:
            dim = models.fusion.tensor_dim
            self.audio_proj, self.text_proj = _projection(d_model, dim), _projection(d_model, dim)
            self.mlp = _mlp((dim + 1) ** 2, models, n_classes)

    def fuse(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if self.kind == "early":
            return torch.cat([audio, text], dim=-1)
        if self.kind == "sum":
            return self.audio_proj(audio) + self.text_proj(text)
        ones = audio.new_ones(audio.size(0), 1)
        a = torch.cat([self.audio_proj(audio), ones], dim=-1)
        t = torch.cat([self.text_proj(text), ones], dim=-1)
        # The appended 1s keep the unimodal terms next to the bimodal products.
        return torch.bmm(a.unsqueeze(2), t.unsqueeze(1)).flatten(1)

    def forward(self, audio_hidden: torch.Tensor, audio_mask: torch.Tensor,
                text_hidden: torch.Tensor, text_mask: torch.Tensor) -> dict:
        dtype = next(self.mlp.parameters()).dtype
        audio = masked_mean(audio_hidden.to(dtype), audio_mask.bool())
        text = masked_mean(text_hidden.to(dtype), text_mask.bool())
        return {"logits": self.mlp(self.fuse(audio, text))}


class LateFusionClassifier(FrozenRegressors):
    """Mean of the class probabilities of an audio-only and a text-only classifier.
    `logits` = log of that mean (a valid input to cross-entropy)."""

    def __init__(self, models: Models, fixes: Fixes, data: Data,
                 audio_model: AudioRegressor | None = None, text_model: TextRegressor | None = None,
                 attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        self.attach_regressors(models, fixes, audio_model, text_model)
        self.audio_branch = UnimodalClassifier(models, fixes, data, "audio",
                                               attention_impl=attention_impl)
        self.text_branch = UnimodalClassifier(models, fixes, data, "text",
                                              attention_impl=attention_impl)

    @classmethod
    def from_unimodal(cls, models: Models, fixes: Fixes, data: Data, audio_clf: UnimodalClassifier,
                      text_clf: UnimodalClassifier, audio_model: AudioRegressor | None = None,
                      text_model: TextRegressor | None = None) -> "LateFusionClassifier":
        """Combine two trained unimodal classifiers (their heads only) without retraining."""
        late = cls(models, fixes, data, audio_model, text_model)
        late.audio_branch.load_state_dict(_head_state(audio_clf))
        late.text_branch.load_state_dict(_head_state(text_clf))
        return late

    def forward(self, audio_hidden: torch.Tensor, audio_mask: torch.Tensor,
                text_hidden: torch.Tensor, text_mask: torch.Tensor) -> dict:
        args = (audio_hidden, audio_mask, text_hidden, text_mask)
        audio = torch.log_softmax(self.audio_branch(*args)["logits"], dim=-1)
        text = torch.log_softmax(self.text_branch(*args)["logits"], dim=-1)
        # log((p_a + p_t) / 2) in log space: no -inf when both probabilities underflow.
        return {"logits": torch.logsumexp(torch.stack([audio, text]), dim=0) - math.log(2.0)}


def _head_state(clf: UnimodalClassifier) -> dict:
    return {k: v for k, v in clf.state_dict().items()
            if not k.startswith(("AudioModel.", "TextModel."))}


def build_classifier(kind: FusionKind, models: Models, fixes: Fixes, data: Data,
                     audio_model: AudioRegressor | None = None,
                     text_model: TextRegressor | None = None,
                     attention_impl: AttentionImpl = "sdpa") -> FrozenRegressors:
    """One factory for every fusion kind (see the module docstring), built from the model
    shapes, the fix switches and the data section (its classes)."""
    if kind == "attention_lstm":
        if audio_model is None or text_model is None:
            raise ValueError("attention_lstm (EmoClassifier) needs both frozen regressors")
        return EmoClassifier(models, fixes, data, audio_model, text_model, attention_impl)
    if kind in UNIMODAL_KINDS:
        modality = next(m for m in REGRESSOR_STAGES if kind == f"{m}_only")
        return UnimodalClassifier(models, fixes, data, modality, audio_model, text_model,
                                  attention_impl)
    if kind == "late":
        return LateFusionClassifier(models, fixes, data, audio_model, text_model, attention_impl)
    if kind == "early" or kind == "sum" or kind == "tensor":
        return PooledFusionClassifier(models, fixes, data, kind, audio_model, text_model)
    raise ValueError(f"unknown fusion kind {kind!r}; choose one of {FUSION_KINDS}")


def fusion_kind(model: nn.Module) -> str:
    """The build_classifier kind that builds a model like `model`."""
    if isinstance(model, EmoClassifier):
        return "attention_lstm"
    if isinstance(model, UnimodalClassifier):
        return f"{model.modality}_only"
    if isinstance(model, LateFusionClassifier):
        return "late"
    if isinstance(model, PooledFusionClassifier):
        return model.kind
    raise ValueError(f"{type(model).__name__} is not a koemo classifier")
