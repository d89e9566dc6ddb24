"""The paper's three models, faithful by default, each known defect fixed behind a `fixes` switch.

Each is built from the config sections it reads: `models` (its shape), `fixes` (the switches),
and for the classifiers `data` (the number of classes).

- AudioRegressor: conv extractor [B,2,T,F] -> [B,T,D], transformer layers, GRU -> arousal.
- TextRegressor: cached KoBERT states [B,L,H] -> transformer layers, GRU -> valence.
- EmoClassifier: frozen regressors' layer outputs concatenated [B,T+L,D] -> transformer
  layers, LSTM -> class logits. It trains from cached regressor outputs (`forward`) or runs
  the regressors itself (`forward_raw`).

Module and parameter names are the authors' (see docs/architecture.md), so their state
dicts load with strict=True (KoBERT, `kobert.*` in their text file, lives outside).
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from koemo.config.load import text_input_dim
from koemo.config.schema import Data, Fixes, Models, Stage
from koemo.text.encoder import last_hidden_states
from koemo.errors import CheckpointError
from koemo.dataset.labels import data_classes
from koemo.modeling.layers import (AttentionImpl, TransformerStack, attention_modules,
                                   length_mask, pick_step)

log = logging.getLogger(__name__)


def num_classes(data: Data) -> int:
    return len(data_classes(data))


def _stack(models: Models, fixes: Fixes, stage: Stage, list_name: str,
           attention_impl: AttentionImpl, num_heads: int | None = None) -> TransformerStack:
    spec = models.stage(stage)
    return TransformerStack(
        list_name, spec.n_layers, models.d_model,
        num_heads or spec.num_heads, spec.inner_dim, spec.dropout,
        dropout_in_eval=not fixes.eval_attention_dropout_off,
        attention_impl=attention_impl)


def _recurrent(kind: type[nn.GRU] | type[nn.LSTM], d_model: int, hidden: int,
               dropout: float) -> nn.GRU | nn.LSTM:
    # Bias-free, 2 layers, batch first: the authors' GRU/LSTM (zero initial states).
    return kind(input_size=d_model, hidden_size=hidden, num_layers=2, bias=False,
                batch_first=True, dropout=dropout)


class _HeadCount(nn.Module):
    """Head count of every attention layer of a model (they are equal by construction)."""

    @property
    def num_heads(self) -> int:
        return attention_modules(self)[0].num_heads

    def set_num_heads(self, num_heads: int) -> None:
        for mha in attention_modules(self):
            mha.num_heads = num_heads


class AudioExtractor(nn.Module):
    """Four bias-free Conv2d over frequency only: F -> F/2 -> F/2 -> F/4 -> F/4;
    [B, 2, T, F] -> [B, C, T, F/4] -> [B, T, C * F/4] (channel-major feature order)."""

    def __init__(self, channels: tuple[int, int] | list[int]):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(2, c1, kernel_size=(1, 4), stride=(1, 2), padding=(0, 1), bias=False)
        self.conv2 = nn.Conv2d(c1, c1, kernel_size=(1, 7), padding=(0, 3), bias=False)
        self.conv3 = nn.Conv2d(c1, c2, kernel_size=(1, 4), stride=(1, 2), padding=(0, 1), bias=False)
        self.conv4 = nn.Conv2d(c2, c2, kernel_size=(1, 7), padding=(0, 3), bias=False)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(feats))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = self.conv4(x)
        batch, _, steps, _ = x.shape
        return x.transpose(1, 2).reshape(batch, steps, -1)


class AudioRegressor(_HeadCount):
    """Mel+delta [B,2,T,F] -> arousal. forward -> dict(pred[B], hidden[B,T,D], mask[B,T]).

    Masks (True = valid). Original: the layers mask frames whose extractor output is zero in
    every feature, and the classifier masks frames whose mel bins (channel 0) are not all
    non-zero; `mask` returns the latter because the classifier consumes it. With
    fixes.length_padding_mask both come from `lengths` (None: every frame valid).
    """

    def __init__(self, models: Models, fixes: Fixes, attention_impl: AttentionImpl = "sdpa",
                 num_heads: int | None = None):
        super().__init__()
        spec = models.audio
        self.fixes = fixes
        # frontend: encoder reads cached speech-encoder states; padding follows the lengths.
        self.frontend = spec.frontend or "mel"
        self.Extractor: nn.Module
        if self.frontend == "mel":
            self.Extractor = AudioExtractor(spec.conv_channels)
        else:
            from koemo.modeling.frontend import EncoderStatesExtractor
            from koemo.audio.speech_encoder import encoder_layout
            layers, input_dim, pooling = encoder_layout(models)
            self.Extractor = EncoderStatesExtractor(len(layers), input_dim, models.d_model, pooling)
        self.AEBlock1 = _stack(models, fixes, "audio", "AE1", attention_impl, num_heads)
        self.gru = _recurrent(nn.GRU, models.d_model, spec.rnn_hidden, spec.dropout)
        self.fc = nn.Linear(spec.rnn_hidden, 1)
        nn.init.xavier_uniform_(self.fc.weight)

    def masks(self, feats: torch.Tensor, extracted: torch.Tensor,
              lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask for the layers, mask handed to the classifier)."""
        if self.fixes.length_padding_mask or (self.frontend != "mel" and lengths is not None):
            mask = length_mask(lengths, extracted.size(1), extracted.size(0), extracted.device)
            return mask, mask
        return (extracted != 0).all(dim=-1), (feats[:, 0] != 0).all(dim=-1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
        feats = feats.to(self.fc.weight.dtype)
        extracted = self.Extractor(feats)
        layer_mask, out_mask = self.masks(feats, extracted, lengths)
        hidden = self.AEBlock1(extracted, layer_mask)
        outputs, _ = self.gru(hidden)
        step_mask = layer_mask if lengths is None else length_mask(
            lengths, hidden.size(1), hidden.size(0), hidden.device)
        step = pick_step(outputs, step_mask, self.fixes.last_valid_step)
        return {"pred": self.fc(step).squeeze(-1), "hidden": hidden, "mask": out_mask}


class TextRegressor(_HeadCount):
    """Cached KoBERT states [B,L,H] + attention mask -> valence; same output dict.

    Original: the layers' mask is "states not all zero", which never masks (KoBERT outputs
    at pads are non-zero); fixes.text_padding_mask uses the attention mask. `mask` is the
    attention mask either way: the original classifier used it.
    KoBERT (`encoder`) is frozen and kept out of the state dict; `encode`/`forward_tokens`
    run it for raw-token inference.
    """

    def __init__(self, models: Models, fixes: Fixes, encoder: nn.Module | None = None,
                 attention_impl: AttentionImpl = "sdpa", num_heads: int | None = None):
        super().__init__()
        spec = models.text
        self.fixes = fixes
        self.d_model = models.d_model
        self.input_dim = text_input_dim(models)
        if self.input_dim != self.d_model:
            # Only when the encoder is wider than the models (the demo's stand-in): the paper's
            # KoBERT states enter the layers as they are, and its state dict has no such key.
            self.input_proj = nn.Linear(self.input_dim, self.d_model)
        self.TEBlock1 = _stack(models, fixes, "text", "TE1", attention_impl, num_heads)
        self.gru = _recurrent(nn.GRU, self.d_model, spec.rnn_hidden, spec.dropout)
        self.fc = nn.Linear(spec.rnn_hidden, 1)
        self.encoder = encoder

    def __setattr__(self, name: str, value: Any) -> None:
        # nn.Module.__setattr__ registers any Module value as a submodule before a property
        # setter could run; `encoder` must go through the setter below instead.
        if name == "encoder":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def encoder(self) -> nn.Module | None:
        return self._encoder_box[0]

    @encoder.setter
    def encoder(self, encoder: nn.Module | None) -> None:
        # A tuple hides KoBERT from nn.Module registration: not in state_dict/parameters(),
        # so the authors' text checkpoints (KoBERT set aside) load strictly with or without it.
        if encoder is not None:
            encoder.eval().requires_grad_(False)
        self._encoder_box = (encoder,)

    @torch.no_grad()
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids [B, L] -> frozen KoBERT last hidden states [B, L, H]."""
        if self.encoder is None:
            raise ValueError("TextRegressor has no encoder: pass encoder=load_kobert(...) to encode tokens")
        self.encoder.to(input_ids.device).eval()
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids)
        return last_hidden_states(out)

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       token_type_ids: torch.Tensor | None = None) -> dict:
        return self(self.encode(input_ids, attention_mask, token_type_ids), attention_mask)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        if states.size(-1) != self.input_dim:
            raise ValueError(f"text states have width {states.size(-1)} but the text model expects "
                             f"{self.input_dim} (models.text.input_dim, default models.d_model): "
                             "the encoder's hidden size must match")
        states = states.to(self.fc.weight.dtype)
        mask = attention_mask.bool()
        layer_mask = mask if self.fixes.text_padding_mask else (states != 0).all(dim=-1)
        if self.input_dim != self.d_model:
            states = self.input_proj(states)
        hidden = self.TEBlock1(states, layer_mask)
        outputs, _ = self.gru(hidden)
        step = pick_step(outputs, mask, self.fixes.last_valid_step)
        return {"pred": self.fc(step).squeeze(-1), "hidden": hidden, "mask": mask}


def audio_heads_for_classifier(models: Models, fixes: Fixes) -> int:
    """Head count the audio regressor runs with inside the classifier."""
    if fixes.consistent_heads:
        return models.audio.num_heads
    return models.multimodal.reuse_audio_num_heads


def reuse_audio_model(audio_model: AudioRegressor, models: Models, fixes: Fixes) -> AudioRegressor:
    """The audio regressor as the classifier will run it.

    Original: the 6-head model was rebuilt with 4 heads and its weights loaded silently
    (same matrices, split into 4 heads of D/4). Faithful mode does that explicitly, on a
    copy, with a warning; fixes.consistent_heads refuses any head-count change.
    """
    target = audio_heads_for_classifier(models, fixes)
    if audio_model.num_heads == target:
        return audio_model
    if fixes.consistent_heads:
        raise CheckpointError(
            f"audio regressor has {audio_model.num_heads} attention heads but the config "
            f"(models.audio.num_heads, fixes.consistent_heads=true) asks for {target}; "
            "use a matching config or convert explicitly")
    log.warning("faithful head reuse: the %d-head audio regressor runs with %d heads inside "
                "the classifier, as the original (fixes.consistent_heads=false)",
                audio_model.num_heads, target)
    reused = copy.deepcopy(audio_model)
    reused.set_num_heads(target)
    return reused


class FrozenRegressors(nn.Module):
    """Holds the frozen audio/text regressors (`AudioModel`, `TextModel`) of a classifier and
    runs them on raw inputs. They follow the classifier's train/eval mode, as the original."""

    has_regressors: bool = False

    def attach_regressors(self, models: Models, fixes: Fixes, audio_model: AudioRegressor | None,
                          text_model: TextRegressor | None) -> None:
        if audio_model is None or text_model is None:
            if (audio_model is None) != (text_model is None):
                raise ValueError("pass both regressors or neither")
            self.has_regressors = False
            return
        self.has_regressors = True
        # Frozen in place, as the original froze its loaded regressors.
        audio_model.requires_grad_(False)
        self.AudioModel = reuse_audio_model(audio_model, models, fixes)
        self.TextModel = text_model.requires_grad_(False)

    @property
    def audio_num_heads(self) -> int | None:
        return self.AudioModel.num_heads if self.has_regressors else None

    @torch.no_grad()
    def frozen_features(self, feats: torch.Tensor, lengths: torch.Tensor | None,
                        states: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Run both regressors: the inputs of `forward` plus their predictions."""
        if not self.has_regressors:
            raise ValueError(f"{type(self).__name__} was built without regressors: "
                             "it only runs on cached hidden states")
        audio = self.AudioModel(feats, lengths)
        text = self.TextModel(states, attention_mask)
        return {"audio_hidden": audio["hidden"], "audio_mask": audio["mask"],
                "text_hidden": text["hidden"], "text_mask": text["mask"],
                "arousal": audio["pred"], "valence": text["pred"]}

    def forward_raw(self, feats: torch.Tensor, lengths: torch.Tensor | None,
                    states: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Frozen regressors, then the classifier: dict(logits, arousal, valence)."""
        frozen = self.frozen_features(feats, lengths, states, attention_mask)
        out = self(frozen["audio_hidden"], frozen["audio_mask"],
                   frozen["text_hidden"], frozen["text_mask"])
        return {**out, "arousal": frozen["arousal"], "valence": frozen["valence"]}


class AttentionLSTMHead(FrozenRegressors):
    """Transformer layers (`MBA.MB.{i}`) -> LSTM -> step -> Linear (`fc`, xavier)."""

    def build_head(self, models: Models, fixes: Fixes, n_classes: int,
                   attention_impl: AttentionImpl) -> None:
        spec = models.multimodal
        self.fixes = fixes
        self.MBA = _stack(models, fixes, "multimodal", "MB", attention_impl)
        self.LSTM = _recurrent(nn.LSTM, models.d_model, spec.rnn_hidden, spec.dropout)
        self.fc = nn.Linear(spec.rnn_hidden, n_classes)
        nn.init.xavier_uniform_(self.fc.weight)

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> dict:
        hidden = self.MBA(x.to(self.fc.weight.dtype), mask)
        outputs, _ = self.LSTM(hidden)
        return {"logits": self.fc(pick_step(outputs, mask, self.fixes.last_valid_step))}


class EmoClassifier(AttentionLSTMHead):
    """The paper's intermediate fusion: [audio hidden; text hidden] with mask
    [audio mask; text mask] -> 4 transformer layers -> LSTM -> logits[B, C].

    The regressors are frozen (excluded from trainable parameters). `num_heads` is the
    fusion layers' head count; `audio_num_heads` the audio regressor's as run here.
    """

    def __init__(self, models: Models, fixes: Fixes, data: Data, audio_model: AudioRegressor,
                 text_model: TextRegressor, attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        self.attach_regressors(models, fixes, audio_model, text_model)
        self.build_head(models, fixes, num_classes(data), attention_impl)

    @property
    def num_heads(self) -> int:
        return attention_modules(self.MBA)[0].num_heads

    def forward(self, audio_hidden: torch.Tensor, audio_mask: torch.Tensor,
                text_hidden: torch.Tensor, text_mask: torch.Tensor) -> dict:
        x = torch.cat([audio_hidden, text_hidden], dim=1)
        mask = torch.cat([audio_mask.bool(), text_mask.bool()], dim=1)
        return self.classify(x, mask)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def set_eval_attention_dropout(model: nn.Module, off: bool) -> nn.Module:
    """A built model switched to `fixes.eval_attention_dropout_off` = `off` (every attention
    layer, the classifier's frozen regressors included): the one fix that changes how a trained
    model runs in eval and not what it learned, so `koemo evaluate` can honour it."""
    for mha in attention_modules(model):
        mha.dropout_in_eval = not off
    for module in model.modules():
        fixes = getattr(module, "fixes", None)
        if isinstance(fixes, Fixes):
            setattr(module, "fixes", fixes.model_copy(update={"eval_attention_dropout_off": bool(off)}))
    return model
