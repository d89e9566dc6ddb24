"""Text encoders other than KoBERT: any encoder with a transformers Auto tokenizer.

`text.tokenizer` / `text.encoder` name KoBERT (`skt/kobert-base-v1`, the local `standin`, or a
directory holding KoBERT's `spiece.model`) -> the SKT-compatible sentencepiece path, unchanged.
Anything else (e.g. `klue/roberta-base`, `monologg/koelectra-base-v3-discriminator`, or a local
directory saved with `save_pretrained`) -> `AutoTextTokenizer` over `AutoTokenizer` and an
`AutoModel` encoder (`koemo.text.encoder.load_text_encoder`). `text.tokenizer_kind:
kobert|auto` overrides the guess.

`AutoTextTokenizer` offers what the pipeline uses of `KoBERTTokenizer`: `tokenize` gives the
tokenizer's own tokens (BPE pieces such as RoBERTa's, WordPiece pieces with `##`), and the
text augmentation (random swap/delete) operates on those tokens, as it operates on KoBERT's
sentencepiece pieces; `encode` wraps them as `<cls> tokens <sep>` (the tokenizer's own
special tokens), truncated and right-padded with its pad token, attention mask by position.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike

from koemo.config.schema import TokenizerKind
from koemo.errors import KoemoInputError
from koemo.text.tokenizer import (CONFIG_FILE as KOBERT_CONFIG_FILE, MODEL_FILE as KOBERT_MODEL_FILE,
                                  hub_is_offline, hub_reachable, looks_like_hub_id,
                                  offline_hub_message, mask_before_trailing_pad,
                                  single_sequence)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model",
                   "added_tokens.json")


def text_model_kind(source: str | Path, configured: TokenizerKind | None = None) -> TokenizerKind:
    """`kobert` or `auto` for a tokenizer/encoder reference (see the module docstring)."""
    if configured:            # text.tokenizer_kind (koemo.config.schema.TokenizerKind)
        return configured
    path = Path(str(source)).expanduser()
    if path.is_dir():
        if (path / KOBERT_CONFIG_FILE).is_file():
            return "kobert"
        hf_files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt")
        if (path / KOBERT_MODEL_FILE).is_file() and not any((path / f).is_file() for f in hf_files):
            return "kobert"
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            if "kobert" in str(config.get("_name_or_path", "")).lower():
                return "kobert"
        return "auto"
    return "kobert" if "kobert" in str(source).lower() else "auto"


def snapshot_folder(hub_id_or_dir: str | Path, patterns: Sequence[str], what: str) -> Path:
    """A local directory, or the hub-cache snapshot of a hub id (only `patterns` fetched);
    offline and not cached -> KoemoInputError at once."""
    path = Path(str(hub_id_or_dir)).expanduser()
    if path.is_dir():
        return path
    if not looks_like_hub_id(str(hub_id_or_dir)):
        raise KoemoInputError(f"{path}: {what} directory not found")
    from huggingface_hub import snapshot_download

    online = not hub_is_offline() and hub_reachable()
    try:
        return Path(snapshot_download(str(hub_id_or_dir), allow_patterns=list(patterns),
                                      local_files_only=not online))
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        if not online:
            raise KoemoInputError(offline_hub_message(str(hub_id_or_dir), what)) from err
        raise KoemoInputError(f"{hub_id_or_dir}: could not fetch the {what}: {err}") from err


def auto_tokenizer_folder(hub_id_or_dir: str | Path) -> Path:
    """Where AutoTextTokenizer.from_pretrained reads (a directory, or a hub id's snapshot)."""
    return snapshot_folder(hub_id_or_dir, [*TOKENIZER_FILES, "config.json"], "tokenizer")


class AutoTextTokenizer:
    """A transformers Auto tokenizer behind KoBERTTokenizer's interface."""

    def __init__(self, hf_tokenizer: Any, folder: Path, source: str):
        self.hf = hf_tokenizer
        self.folder, self.source = Path(folder), str(source)
        missing = [name for name in ("cls_token_id", "sep_token_id", "pad_token_id")
                   if getattr(hf_tokenizer, name) is None]
        if missing:
            raise KoemoInputError(f"{folder}: tokenizer has no {', '.join(missing)}: an encoder "
                                  "tokenizer with [CLS]/[SEP]/[PAD]-style tokens is needed")
        self.cls_token_id, self.sep_token_id = hf_tokenizer.cls_token_id, hf_tokenizer.sep_token_id
        self.pad_token_id = hf_tokenizer.pad_token_id
        self.unk_token_id = hf_tokenizer.unk_token_id
        self.fingerprint = self._compute_fingerprint()

    @classmethod
    def from_pretrained(cls, hub_id_or_dir: str | Path) -> "AutoTextTokenizer":
        folder = auto_tokenizer_folder(hub_id_or_dir)
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError, KeyError) as err:
            raise KoemoInputError(f"{folder}: could not load an Auto tokenizer ({err})") from err
        return cls(hf, folder, str(hub_id_or_dir))

    def save_pretrained(self, directory: str | Path) -> Path:
        self.hf.save_pretrained(str(directory))
        return Path(directory)

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha1(type(self.hf).__name__.encode())
        for name in TOKENIZER_FILES:
            path = self.folder / name
            if path.is_file():
                digest.update(name.encode())
                digest.update(hashlib.sha1(path.read_bytes()).digest())
        return digest.hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def tokenize(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise KoemoInputError(f"tokenize expects a str, got {type(text).__name__}: {text!r}")
        return list(self.hf.tokenize(text)) if text.strip() else []

    @overload     # a str is an Iterable[str] too: this overload wins, as the isinstance below
    def convert_tokens_to_ids(self, tokens: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.hf.convert_tokens_to_ids(tokens)
        return list(self.hf.convert_tokens_to_ids(list(tokens)))

    def encode(self, text_or_pieces: str | Sequence[str], max_length: int = 64) -> dict[str, np.ndarray]:
        """`<cls> tokens <sep>` truncated to max_length, right-padded; a list is taken as tokens."""
        if max_length < 2:
            raise KoemoInputError(f"max_length must be at least 2 (cls and sep), got {max_length}")
        pieces = self.tokenize(text_or_pieces) if isinstance(text_or_pieces, str) else list(text_or_pieces)
        body = self.convert_tokens_to_ids(pieces)[: max_length - 2] if pieces else []
        return single_sequence(body, self.cls_token_id, self.sep_token_id, self.pad_token_id,
                               max_length)

    def attention_mask_for(self, input_ids: ArrayLike) -> np.ndarray:
        """1 up to the last non-pad id (encode's closing sep), 0 on the trailing pad run."""
        return mask_before_trailing_pad(input_ids, self.pad_token_id)

    def batch_encode(self, items: Sequence[str | Sequence[str]], max_length: int = 64) -> dict[str, np.ndarray]:
        keys = ("input_ids", "attention_mask", "token_type_ids")
        encoded = [self.encode(item, max_length) for item in items]
        if not encoded:
            return {k: np.zeros((0, max_length), dtype=np.int64) for k in keys}
        return {k: np.stack([e[k] for e in encoded]) for k in keys}

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def __repr__(self) -> str:
        return (f"AutoTextTokenizer(source={self.source!r}, class={type(self.hf).__name__}, "
                f"vocab_size={self.vocab_size}, fingerprint={self.fingerprint!r})")
