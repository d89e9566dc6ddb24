"""Building blocks shared by the three models, with the authors' module names so their
state dicts load unchanged (`MHA.{Q,K,V,Out}_fc`, `layerNorm1/2`, `ffn.fc1/fc2`).

Two attention implementations compute the same function:
- "manual": the authors' math (matmul, scale, masked_fill -1e9, softmax, dropout, matmul);
- "sdpa": torch's scaled_dot_product_attention (fused kernels, less memory).
Masks are key-padding masks [B, T] with True = valid, as everywhere in koemo.
"""
from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

AttentionImpl = Literal["sdpa", "manual"]
ATTENTION_IMPLS = get_args(AttentionImpl)
# The authors fill masked scores with -1e9 (not -inf): a sequence with no valid key then
# attends uniformly to all keys instead of producing NaN.
MASKED_SCORE = -1e9


def key_mask_4d(key_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] bool -> [B, 1, 1, T], broadcast over heads and queries."""
    return key_mask.bool()[:, None, None, :]


def manual_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     key_mask: torch.Tensor | None, dropout_p: float) -> torch.Tensor:
    """The authors' Self_Attention on [B, heads, T, head_dim] tensors."""
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if key_mask is not None:
        # -1e9 is -inf in float16, and a row of -inf softmaxes to NaN: clamp to the dtype.
        fill = max(MASKED_SCORE, torch.finfo(scores.dtype).min)
        scores = scores.masked_fill(~key_mask_4d(key_mask), fill)
    weights = F.dropout(F.softmax(scores, dim=-1), p=dropout_p, training=dropout_p > 0)
    return torch.matmul(weights, v)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_mask: torch.Tensor | None, dropout_p: float) -> torch.Tensor:
    """Same function through F.scaled_dot_product_attention.

    SDPA returns zeros for a query with no valid key, the authors' -1e9 fill gives the mean
    of V. Zeroing q and unmasking such samples gives all-equal scores, i.e. that same mean.
    """
    mask = None
    if key_mask is not None:
        key_mask = key_mask.bool()
        has_valid = key_mask.any(dim=-1)
        q = q * has_valid[:, None, None, None].to(q.dtype)
        mask = key_mask_4d(key_mask | ~has_valid[:, None])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class MultiHeadAttention(nn.Module):
    """The authors' MHA: bias-free Q/K/V/Out projections; heads split the d_model columns.

    `num_heads` can be changed after loading weights (the original reused a 6-head audio
    model with 4 heads: same matrices, different split). Attention dropout follows
    `dropout_in_eval`: True reproduces the original, whose dropout stayed on in eval.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.1,
                 dropout_in_eval: bool = True, attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.attention_dropout = dropout
        self.dropout_in_eval = dropout_in_eval
        self.attention_impl = attention_impl
        self.Q_fc = nn.Linear(d_model, d_model, bias=False)
        self.K_fc = nn.Linear(d_model, d_model, bias=False)
        self.V_fc = nn.Linear(d_model, d_model, bias=False)
        self.Out_fc = nn.Linear(d_model, d_model, bias=False)

    @property
    def num_heads(self) -> int:
        return self._num_heads

    @num_heads.setter
    def num_heads(self, value: int) -> None:
        if value < 1 or self.d_model % value:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={value}")
        self._num_heads = int(value)

    @property
    def attention_impl(self) -> AttentionImpl:
        return self._attention_impl

    @attention_impl.setter
    def attention_impl(self, value: AttentionImpl) -> None:
        if value not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, not {value!r}")
        self._attention_impl = value

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        return x.view(batch, steps, self.num_heads, self.d_model // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (self._split_heads(fc(x)) for fc in (self.Q_fc, self.K_fc, self.V_fc))
        active = self.training or self.dropout_in_eval
        dropout_p = self.attention_dropout if active else 0.0
        attend = sdpa_attention if self.attention_impl == "sdpa" else manual_attention
        out = attend(q, k, v, key_mask, dropout_p)
        batch, _, steps, _ = out.shape
        return self.Out_fc(out.transpose(1, 2).reshape(batch, steps, self.d_model))


class FeedForward(nn.Module):
    """fc1 -> ReLU -> dropout -> fc2, plus its own residual (as the authors' FFN)."""

    def __init__(self, d_model: int, inner_dim: int, dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(d_model, inner_dim)
        self.fc2 = nn.Linear(inner_dim, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x)))) + x


class TransformerLayer(nn.Module):
    """Post-LayerNorm layer in the authors' order:
    h = LN1(x + drop(MHA(x))); out = LN2(h + drop(FFN(h))) where FFN(h) already adds h,
    so the second sub-layer carries the residual twice (faithful to the original)."""

    def __init__(self, d_model: int, num_heads: int, inner_dim: int, dropout: float = 0.1,
                 dropout_in_eval: bool = True, attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        self.MHA = MultiHeadAttention(d_model, num_heads, dropout, dropout_in_eval, attention_impl)
        self.layerNorm1 = nn.LayerNorm(d_model)
        self.layerNorm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, inner_dim, dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.layerNorm1(x + self.dropout1(self.MHA(x, key_mask)))
        return self.layerNorm2(h + self.dropout2(self.ffn(h)))


class TransformerStack(nn.Module):
    """n layers in a ModuleList stored under the authors' attribute name
    (`AE1` in AEBlock1, `TE1` in TEBlock1, `MB` in MBA) so keys read e.g. `AEBlock1.AE1.0.*`."""

    def __init__(self, list_name: str, n_layers: int, d_model: int, num_heads: int,
                 inner_dim: int, dropout: float = 0.1, dropout_in_eval: bool = True,
                 attention_impl: AttentionImpl = "sdpa"):
        super().__init__()
        self.list_name = list_name
        setattr(self, list_name, nn.ModuleList(
            TransformerLayer(d_model, num_heads, inner_dim, dropout, dropout_in_eval, attention_impl)
            for _ in range(n_layers)))

    @property
    def layers(self) -> nn.ModuleList:
        return getattr(self, self.list_name)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, key_mask)
        return x


def attention_modules(module: nn.Module) -> list[MultiHeadAttention]:
    return [m for m in module.modules() if isinstance(m, MultiHeadAttention)]


def set_attention_impl(module: nn.Module, impl: AttentionImpl) -> nn.Module:
    """Switch every attention layer inside `module` to "sdpa" or "manual" (weights unchanged)."""
    for mha in attention_modules(module):
        mha.attention_impl = impl
    return module


def length_mask(lengths: torch.Tensor | None, steps: int, batch: int,
                device: torch.device | None = None) -> torch.Tensor:
    """[B, T] True for steps < length; no lengths means every step is valid."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    return torch.arange(steps, device=lengths.device)[None, :] < lengths.reshape(-1, 1)


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True per row ([B, T] -> [B]); 0 for a row with no True."""
    steps = torch.arange(mask.size(1), device=mask.device)
    return (mask.bool().long() * steps).argmax(dim=1)


def pick_step(outputs: torch.Tensor, mask: torch.Tensor | None, last_valid: bool) -> torch.Tensor:
    """RNN outputs [B, T, H] -> [B, H]: the last time step (original) or the last valid one."""
    if not last_valid or mask is None:
        return outputs[:, -1]
    index = last_valid_index(mask)
    return outputs[torch.arange(outputs.size(0), device=outputs.device), index]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid steps: [B, T, D], [B, T] -> [B, D] (an all-padding row gives zeros)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
