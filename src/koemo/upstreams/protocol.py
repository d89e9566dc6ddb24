"""What an audio upstream of the probe study gives: every layer's states of one utterance.

Every audio upstream (wav2vec2 / HuBERT / WavLM / XLS-R, Whisper's encoder, emotion2vec+)
implements `AudioUpstream`; the pooled-state cache and the probe read nothing else.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class AudioUpstream(Protocol):
    """A frozen audio foundation model.

    - `name`: the hub id or local directory it was loaded from.
    - `num_layers`: how many hidden-state layers `layer_states` returns (the embedding /
      CNN-feature output included when the model gives one).
    - `dim`: the width of each layer's states.
    - `layer_states(wave)`: a 16 kHz mono float32 wave -> float32 [num_layers, frames, dim] on
      the CPU, computed frozen without gradients; frames cover the utterance only (no padding).
    """
    name: str
    num_layers: int
    dim: int

    def layer_states(self, wave: np.ndarray) -> torch.Tensor: ...
