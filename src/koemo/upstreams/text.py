"""Text upstreams: a frozen Korean text encoder giving every layer's states of a transcript.

Loaded as the text front-end loads its encoder (`koemo.text.encoder.load_text_tokenizer` /
`load_text_encoder`): KoBERT (skt/kobert-base-v1, the local stand-in, or a directory with
KoBERT's spiece.model) through koemo's SKT-compatible tokenizer; anything else (klue/roberta-large,
monologg/koelectra-base-v3-discriminator, a local `save_pretrained` directory) through the
transformers Auto classes. Every hidden state is returned: 0 = the embeddings .. N = the last
layer. A transcript is encoded as `<cls> tokens <sep>`, cut to `max_length` tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from koemo.config.fingerprints import fingerprint
from koemo.config.schema import TokenizerKind
from koemo.text.encoder import (TextTokenizer, encoder_fingerprint, load_text_encoder,
                                load_text_tokenizer)


class TextUpstream:
    """A frozen text encoder with its tokenizer: `name`, `num_layers`, `dim`, `fingerprint`."""

    def __init__(self, tokenizer: TextTokenizer, encoder: Any, name: str, max_length: int):
        self.tokenizer, self.model, self.name = tokenizer, encoder, str(name)
        self.max_length = int(max_length)
        config = encoder.config
        self.num_layers, self.dim = int(config.num_hidden_layers) + 1, int(config.hidden_size)
        self.fingerprint = fingerprint({"encoder": encoder_fingerprint(encoder),
                                        "tokenizer": tokenizer.fingerprint,
                                        "max_length": self.max_length})

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) [N, max_length] of the transcripts."""
        encoded = self.tokenizer.batch_encode([str(t) for t in texts], self.max_length)
        return encoded["input_ids"], encoded["attention_mask"]

    def layer_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 [N, num_layers, max_length, dim] states on the CPU and the [N, max_length]
        attention mask (1 on `<cls> tokens <sep>`, 0 on padding)."""
        ids, mask = self.encode(texts)
        device = next(self.model.parameters()).device
        ids_t = torch.as_tensor(ids, device=device)
        mask_t = torch.as_tensor(mask, device=device)
        with torch.inference_mode():
            out = self.model(input_ids=ids_t, attention_mask=mask_t,
                             token_type_ids=torch.zeros_like(ids_t), output_hidden_states=True,
                             return_dict=True)
            stack = torch.stack(out.hidden_states, dim=1).float().cpu()
        return stack, torch.from_numpy(np.asarray(mask))


def load_text_upstream(name: str | Path, device: str = "cpu", max_length: int = 128,
                       kind: TokenizerKind | None = None) -> TextUpstream:
    """A `TextUpstream` from a hub id or local directory (`kind`: kobert | auto, as
    text.tokenizer_kind; None: guessed from the name or the directory's files)."""
    tokenizer = load_text_tokenizer(name, kind)
    encoder = load_text_encoder(name, kind, device=device)
    return TextUpstream(tokenizer, encoder, str(name), max_length)
