"""emotion2vec+ (base, large) through FunASR: a frozen upstream and a zero-shot 9-class head.

- As an upstream (`koemo.upstreams.protocol.AudioUpstream`): every layer's states of one
  utterance, 50 frames a second. Layer 0 is the input of the first Transformer block (the CNN
  features after projection, the convolutional position encoder and the "prenet" blocks of
  data2vec 2.0's audio encoder); layers 1..depth are each block's output. The wave is
  normalised as emotion2vec's own inference does it (a layer norm over the whole wave, when
  config.yaml's `model_conf.normalize` says so).
- Zero-shot (`classify`): the released checkpoints' own head (config.yaml's vocabulary of 9
  classes, named in tokens.txt as "生气/angry" ... "<unk>"), through FunASR's
  `generate(granularity="utterance")`: the mean of the last layer's frames -> a linear layer
  -> softmax. The native label is the English half of the token ("angry", ..., "<unk>").

    up = load_emotion2vec_upstream("emotion2vec/emotion2vec_plus_base", "cpu")   # or a directory
    up.layer_states(wave)          # float32 [num_layers, frames, dim]
    up.classify([wave])            # [("neutral", {"angry": 0.01, ...})]
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from koemo.errors import KoemoInputError
from koemo.upstreams.funasr_loader import fingerprint, load_funasr

KIND = "emotion2vec"
MIN_SAMPLES = 400          # the first convolution's kernel (10 ms at 16 kHz: 400 samples -> 1 frame)


def native_name(token: str) -> str:
    """emotion2vec's class token -> its native label: the English half ("生气/angry" -> "angry");
    tokens without one ("<unk>") stay as they are."""
    return token.split("/")[-1].strip()


class Emotion2vecUpstream:
    """A frozen emotion2vec / emotion2vec+ checkpoint loaded by FunASR."""

    def __init__(self, automodel: Any, name: str, fingerprint: str):
        self.automodel, self.model = automodel, automodel.model
        self.name, self.fingerprint = str(name), fingerprint
        self.dim = int(self.model.cfg.get("embed_dim"))
        self.num_layers = len(self.model.blocks) + 1
        audio = self.model.modality_encoders["AUDIO"]
        self.extra_tokens = int(audio.modality_cfg.num_extra_tokens)
        tokenizer = automodel.kwargs.get("tokenizer")
        self.tokens = list(getattr(tokenizer, "token_list", None) or [])
        self.has_head = self.model.proj is not None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _source(self, wave: np.ndarray) -> torch.Tensor:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.shape[0] < MIN_SAMPLES:
            raise KoemoInputError(f"{self.name}: needs a 1-D wave of at least {MIN_SAMPLES} "
                                  f"samples, got shape {wave.shape}")
        source = torch.from_numpy(wave).to(self.device)
        if self.model.cfg.get("normalize"):
            source = torch.nn.functional.layer_norm(source, source.shape)
        return source.view(1, -1)

    def layer_states(self, wave: np.ndarray) -> torch.Tensor:
        """float32 [num_layers, frames, dim] on the CPU (see the module doc for the layers)."""
        states: list[torch.Tensor] = []
        blocks = list(self.model.blocks)
        hooks = [blocks[0].register_forward_pre_hook(lambda _m, args: states.append(args[0]))]
        hooks += [b.register_forward_hook(lambda _m, _args, out: states.append(out[0]))
                  for b in blocks]
        try:
            with torch.inference_mode():
                self.model.extract_features(self._source(wave), padding_mask=None)
        finally:
            for hook in hooks:
                hook.remove()
        stack = torch.stack([s[0, self.extra_tokens:] for s in states], dim=0)
        return stack.float().cpu()

    def classify(self, waves: Sequence[np.ndarray], batch_size: int = 1) -> list[tuple[str, dict[str, float]]]:
        """The checkpoint's own head: (native label with the highest score, {native label:
        score}) per wave. A checkpoint without a head (emotion2vec_base) -> KoemoInputError."""
        if not self.has_head or not self.tokens:
            raise KoemoInputError(f"{self.name}: this emotion2vec checkpoint has no classification "
                                  "head (use emotion2vec+ base or large for zero-shot)")
        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        for wave in waves:
            self._source(wave)                         # the length check, before any work
        results = self.automodel.generate(input=waves, granularity="utterance",
                                          extract_embedding=False, batch_size=int(batch_size),
                                          disable_pbar=True)
        out = []
        for result in results:
            scores = {native_name(t): float(s) for t, s in zip(result["labels"], result["scores"])}
            out.append((max(scores, key=lambda label: scores[label]), scores))
        return out


def load_emotion2vec_upstream(name_or_dir: str, device: str = "cpu") -> Emotion2vecUpstream:
    """emotion2vec(+) from a hub id (emotion2vec/emotion2vec_plus_base, ..._large) or a local
    directory in FunASR's format (koemo.upstreams.funasr_loader), frozen on `device`."""
    automodel, folder = load_funasr(KIND, name_or_dir, device)
    return Emotion2vecUpstream(automodel, str(name_or_dir), fingerprint(folder, KIND))
