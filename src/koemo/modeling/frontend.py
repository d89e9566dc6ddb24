"""The audio regressor's input stage for a speech-encoder front-end.

`models.audio.frontend: encoder` feeds cached encoder states [B, K, T, H] (K chosen layers)
instead of mel+delta [B, 2, T, F]. `EncoderStatesExtractor` takes the place of the conv
extractor: one layer is used as it is; several are combined by a learned softmax-weighted sum
(SUPERB style, `pooling: weighted`, weights start equal) or a fixed mean (`pooling: mean`);
then a bias-free linear projection to d_model when the encoder's width differs (zero padding
frames stay zero). Everything after it (attention layers, GRU, the classifier) is unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from koemo.config.schema import Pooling


class EncoderStatesExtractor(nn.Module):
    """[B, K, T, H] encoder states -> [B, T, d_model]."""

    def __init__(self, n_layers: int, input_dim: int, d_model: int, pooling: Pooling = "weighted"):
        super().__init__()
        self.n_layers, self.pooling = int(n_layers), pooling
        if self.n_layers > 1 and pooling == "weighted":
            self.layer_weights = nn.Parameter(torch.zeros(self.n_layers))
        if input_dim != d_model:
            self.proj = nn.Linear(input_dim, d_model, bias=False)
            nn.init.xavier_uniform_(self.proj.weight)

    def mixing_weights(self) -> torch.Tensor:
        """The weight of each chosen layer (sums to 1)."""
        if hasattr(self, "layer_weights"):
            return torch.softmax(self.layer_weights, dim=0)
        return torch.full((self.n_layers,), 1.0 / self.n_layers)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.dim() != 4 or states.size(1) != self.n_layers:
            raise ValueError(f"expected encoder states [B, {self.n_layers}, T, H], got "
                             f"{tuple(states.shape)}: does the state cache match the config?")
        if self.n_layers == 1:
            x = states[:, 0]
        else:
            weights = self.mixing_weights().to(states.dtype).to(states.device)
            x = (states * weights.view(1, -1, 1, 1)).sum(dim=1)
        return self.proj(x) if hasattr(self, "proj") else x
