"""KoBERT text pipeline: SKT-compatible tokenizer, frozen encoder, on-disk state cache, offline
stand-in and piece-level augmentation. Importing this package loads neither torch nor
transformers; they are imported when an encoder is loaded or states are computed."""
from __future__ import annotations

from koemo.text.augment import random_delete, random_swap
from koemo.text.encoder import (TextPipeline, TextStateCache, encoder_fingerprint, load_kobert,
                                open_text_pipeline)
from koemo.text.standin import build_standin, ensure_standin, resolve_text_source
from koemo.text.tokenizer import KoBERTTokenizer

__all__ = ["KoBERTTokenizer", "TextPipeline", "TextStateCache", "build_standin", "encoder_fingerprint",
           "ensure_standin", "load_kobert", "open_text_pipeline", "random_delete", "random_swap",
           "resolve_text_source"]
