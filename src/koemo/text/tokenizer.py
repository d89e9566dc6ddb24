"""A KoBERT tokenizer built directly on `sentencepiece`, giving the ids of SKT's tokenizer.

SKT's `kobert_tokenizer.KoBERTTokenizer` subclasses transformers' XLNetTokenizer, which breaks on
transformers 5 and is not on the package registry. It is a thin layer over a sentencepiece model,
so this module re-implements that layer and depends on no transformers tokenizer class:

- text preprocessing as XLNetTokenizer with SKT's settings (remove_space=True, keep_accents=False,
  do_lower_case=False): whitespace collapsed, two backquotes / two single quotes -> `"`, NFKD with
  combining marks removed (accents stripped; Hangul syllables decompose into jamo here and the
  sentencepiece normaliser (NFKC) composes them again);
- XLNet's rule that re-splits a piece ending in "<digit>," so the comma becomes its own piece;
- special tokens written literally in the text ("[MASK]") kept whole, as transformers does;
- ids from the sentencepiece model: [UNK]=0 [PAD]=1 [CLS]=2 [SEP]=3 [MASK]=4 (8002 in KoBERT);
- single sequence `[CLS] x [SEP]`, truncated to max_length, right-padded with [PAD] (id 1), token
  type ids all 0 (SKT's fix of XLNet's segment id 2), attention mask 1 on every position up to
  [SEP] and 0 on the padding added after it (a [PAD] typed in the text is a token: mask 1, as
  transformers gives it).
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import shutil
import socket
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, overload
from urllib.parse import urlparse

import numpy as np
from numpy.typing import ArrayLike

from koemo.errors import KoemoInputError

SPIECE_UNDERLINE = "\u2581"
MODEL_FILE = "spiece.model"
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "koemo_tokenizer.json"
KOBERT_SPECIAL_IDS = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in KOBERT_SPECIAL_IDS) + ")")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PREPROCESS_DEFAULTS = {"do_lower_case": False, "remove_space": True, "keep_accents": False}


def preprocess_text(text: str, remove_space: bool = True, keep_accents: bool = False,
                    do_lower_case: bool = False) -> str:
    """XLNet's text preprocessing, with SKT's KoBERT settings as defaults."""
    out = " ".join(text.strip().split()) if remove_space else text
    out = out.replace("``", '"').replace("''", '"')
    if not keep_accents:
        out = unicodedata.normalize("NFKD", out)
        out = "".join(ch for ch in out if not unicodedata.combining(ch))
    return out.lower() if do_lower_case else out


def split_digit_comma_pieces(pieces: list[str], encode_as_pieces: Callable[[str], list[str]]
                             ) -> list[str]:
    """XLNet's rule: a piece such as "▁1,000," is re-encoded without its trailing comma, and the
    comma becomes a piece of its own (so numbers keep the same pieces with or without a comma)."""
    out: list[str] = []
    for piece in pieces:
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            sub = encode_as_pieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
            # The re-encoding adds a word-start marker the original piece did not have.
            if sub and piece[0] != SPIECE_UNDERLINE and sub[0].startswith(SPIECE_UNDERLINE):
                sub = sub[1:] if len(sub[0]) == 1 else [sub[0][1:]] + sub[1:]
            out.extend(sub + [","])
        else:
            out.append(piece)
    return out


def file_sha1(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- hub / directory resolution

_LOCAL_ONLY = contextvars.ContextVar("koemo_hub_local_only", default=False)


@contextlib.contextmanager
def hub_local_only() -> Iterator[None]:
    """Inside: every hub lookup of koemo's loaders is answered from this machine alone (local
    directories and the hub cache), as when offline: nothing is downloaded, nothing waits on
    the network (koemo.inference.pretrained finds a run's models this way before it starts)."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def hub_is_offline() -> bool:
    """True when the user asked for no hub access (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), or
    inside `hub_local_only()`."""
    if _LOCAL_ONLY.get():
        return True
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    from huggingface_hub import constants
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint. huggingface_hub itself retries an unreachable hub
    for ~23 s; this answers in at most `timeout` seconds."""
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_hub_id(name: str) -> bool:
    """`skt/kobert-base-v1` is a hub id; `./x`, `/abs/x`, `a/b/c` and `~/x` are paths."""
    return bool(_HUB_ID.match(name)) and not name.startswith((".", "~"))


def offline_hub_message(hub_id: str, what: str) -> str:
    return (f"'{hub_id}' is not a local {what} directory, and the Hugging Face hub is not reachable "
            f"(offline mode HF_HUB_OFFLINE=1, or no network). Download it where the hub is reachable "
            f"(e.g. huggingface_hub.snapshot_download('{hub_id}', local_dir='kobert')), copy that "
            f"directory here and set text.tokenizer / text.encoder to its path (--set "
            f"text.tokenizer=DIR --set text.encoder=DIR); for an offline "
            f"stand-in set them to 'standin' and run `koemo kobert-standin --workdir W`")


def fetch_hub_files(hub_id: str, required: Sequence[str], optional: Sequence[str] = (),
                    what: str = "model") -> Path:
    """Download (or take from the local hub cache) files of a hub repository; returns the
    folder holding them. Unreachable hub -> KoemoInputError within seconds, unless every required
    file is already in the local cache."""
    from huggingface_hub import hf_hub_download
    try:
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:    # huggingface_hub < 0.23 (older Colab images)
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    online = not hub_is_offline() and hub_reachable()
    paths: list[Path] = []
    for name in list(required) + list(optional):
        try:
            paths.append(Path(hf_hub_download(hub_id, name, local_files_only=not online)))
        except LocalEntryNotFoundError as err:
            if name in optional:
                continue
            if not online:
                raise KoemoInputError(offline_hub_message(hub_id, what)) from err
            raise KoemoInputError(f"{hub_id}: the hub has no file {name} ({err})") from err
        except EntryNotFoundError as err:
            if name in optional:
                continue
            raise KoemoInputError(f"{hub_id}: the hub repository has no file {name}") from err
        except Exception as err:  # noqa: BLE001 - hub errors come in many types (auth, 404, HTTP)
            raise KoemoInputError(f"{hub_id}: could not fetch {name} from the hub: {err}") from err
    return paths[0].parent


def resolve_pretrained(name_or_dir: str | Path, required: Sequence[str], optional: Sequence[str] = (),
                       what: str = "model") -> Path:
    """A local directory (checked for its required files) or a hub id (fetched)."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        missing = [name for name in required if not (path / name).is_file()]
        if missing:
            raise KoemoInputError(f"{path}: {what} directory without {', '.join(missing)}")
        return path
    if path.exists():
        raise KoemoInputError(f"{path}: expected a {what} directory, found a file")
    if not looks_like_hub_id(str(name_or_dir)):
        raise KoemoInputError(
            f"{path}: {what} directory not found (a KoBERT stand-in is built with "
            f"`koemo kobert-standin --workdir W`; real KoBERT: hub id skt/kobert-base-v1)")
    return fetch_hub_files(str(name_or_dir), required, optional, what)


def kobert_tokenizer_folder(hub_id_or_dir: str | Path) -> Path:
    """Where KoBERTTokenizer.from_pretrained reads: a directory with `spiece.model`, or a hub
    id's files (fetched, or from the hub cache)."""
    return resolve_pretrained(hub_id_or_dir, [MODEL_FILE], [VOCAB_FILE], what="tokenizer")


# ---------------------------------------------------------------- the tokenizer

class KoBERTTokenizer:
    """SKT KoBERT-compatible tokenizer (see the module docstring). Load with `from_pretrained`."""

    def __init__(self, model_file: str | Path, vocab_file: str | Path | None = None,
                 do_lower_case: bool = False, remove_space: bool = True, keep_accents: bool = False,
                 source: str | None = None):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.vocab_file = Path(vocab_file) if vocab_file else None
        self.do_lower_case, self.remove_space, self.keep_accents = do_lower_case, remove_space, keep_accents
        self.source = source or str(self.model_file.parent)
        self.sp_model = spm.SentencePieceProcessor()
        try:
            self.sp_model.Load(str(self.model_file))
        except (OSError, RuntimeError) as err:
            raise KoemoInputError(f"{self.model_file}: not a readable sentencepiece model ({err})") from err
        self._check_special_ids()
        if self.vocab_file is not None:
            self._check_vocab_file(self.vocab_file)
        self.fingerprint = self._compute_fingerprint()

    # -- loading and saving

    @classmethod
    def from_pretrained(cls, hub_id_or_dir: str | Path, **kwargs: Any) -> "KoBERTTokenizer":
        """A directory with `spiece.model` (+ optional vocab.txt and koemo_tokenizer.json), or a
        hub id such as `skt/kobert-base-v1` (needs a reachable hub or a filled local hub cache)."""
        folder = kobert_tokenizer_folder(hub_id_or_dir)
        settings = dict(_PREPROCESS_DEFAULTS)
        config_path = folder / CONFIG_FILE
        if config_path.is_file():
            try:
                saved = json.loads(config_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise KoemoInputError(f"{config_path}: not valid JSON ({err})") from err
            settings.update({k: saved[k] for k in _PREPROCESS_DEFAULTS if k in saved})
        settings.update(kwargs)
        vocab = folder / VOCAB_FILE
        return cls(folder / MODEL_FILE, vocab if vocab.is_file() else None,
                   source=str(hub_id_or_dir), **settings)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.model_file.resolve() != (directory / MODEL_FILE).resolve():
            shutil.copyfile(self.model_file, directory / MODEL_FILE)
        if self.vocab_file is not None and self.vocab_file.resolve() != (directory / VOCAB_FILE).resolve():
            shutil.copyfile(self.vocab_file, directory / VOCAB_FILE)
        config = {"tokenizer_class": "koemo.text.KoBERTTokenizer", "source": self.source,
                  "fingerprint": self.fingerprint, "vocab_size": self.vocab_size,
                  "special_tokens": {t: self.convert_tokens_to_ids(t) for t in KOBERT_SPECIAL_IDS},
                  "do_lower_case": self.do_lower_case, "remove_space": self.remove_space,
                  "keep_accents": self.keep_accents}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        return directory

    def _check_special_ids(self) -> None:
        found = {tok: self.sp_model.PieceToId(tok) for tok in KOBERT_SPECIAL_IDS}
        if found != KOBERT_SPECIAL_IDS:
            raise KoemoInputError(
                f"{self.model_file}: special token ids {found} differ from KoBERT's "
                f"{KOBERT_SPECIAL_IDS}; not a KoBERT sentencepiece model")

    def _check_vocab_file(self, vocab_file: Path) -> None:
        """SKT's tokenizer takes its ids from the sentencepiece model and never reads a vocab.txt;
        one shipped beside it is carried along, and a warning says when its order disagrees."""
        lines = vocab_file.read_text(encoding="utf-8").splitlines()
        pieces = [line.split("\t")[0] for line in lines if line.strip()]
        expected = [self.sp_model.IdToPiece(i) for i in range(len(pieces))]
        if len(pieces) != self.vocab_size or pieces != expected:
            warnings.warn(f"{self.vocab_file}: does not list the {self.vocab_size} pieces of "
                          f"{self.model_file.name} in id order; ids are taken from the "
                          f"sentencepiece model, as SKT's tokenizer does", stacklevel=3)

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha1(file_sha1(self.model_file).encode())
        flags = json.dumps([self.do_lower_case, self.remove_space, self.keep_accents])
        digest.update(flags.encode())
        return digest.hexdigest()[:16]

    # -- vocabulary

    @property
    def vocab_size(self) -> int:
        return self.sp_model.GetPieceSize()

    # Fixed by KoBERT (checked against the model file when loading).
    unk_token, pad_token, cls_token, sep_token, mask_token = "[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"
    unk_token_id, pad_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 1, 2, 3, 4

    @overload     # a str is an Iterable[str] too: this overload wins, as the isinstance below
    def convert_tokens_to_ids(self, tokens: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Pieces not in the vocabulary (emoji, unseen letters) map to [UNK] = 0."""
        if isinstance(tokens, str):
            return self.sp_model.PieceToId(tokens)
        return [self.sp_model.PieceToId(tok) for tok in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        if isinstance(ids, (int, np.integer)):
            return self.sp_model.IdToPiece(int(ids))
        return [self.sp_model.IdToPiece(int(i)) for i in ids]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        specials = set(KOBERT_SPECIAL_IDS)
        return "".join(t for t in tokens if t not in specials).replace(SPIECE_UNDERLINE, " ").strip()

    # -- tokenising

    def preprocess(self, text: str) -> str:
        return preprocess_text(text, self.remove_space, self.keep_accents, self.do_lower_case)

    def _tokenize_chunk(self, text: str) -> list[str]:
        text = self.preprocess(text)
        if not text:
            return []
        pieces = self.sp_model.EncodeAsPieces(text)
        return split_digit_comma_pieces(pieces, self.sp_model.EncodeAsPieces)

    def tokenize(self, text: str) -> list[str]:
        """Text -> sentencepiece pieces (no [CLS]/[SEP]). Empty or whitespace-only text -> []."""
        if not isinstance(text, str):
            raise KoemoInputError(f"tokenize expects a str, got {type(text).__name__}: {text!r}")
        pieces: list[str] = []
        for chunk in _SPECIAL_SPLIT.split(text):
            if chunk in KOBERT_SPECIAL_IDS:
                pieces.append(chunk)
            elif chunk.strip():
                pieces.extend(self._tokenize_chunk(chunk))
        return pieces

    # -- encoding

    def encode(self, text_or_pieces: str | Sequence[str], max_length: int = 64) -> dict[str, np.ndarray]:
        """`[CLS] pieces [SEP]` truncated to `max_length` (pieces cut at the end, [SEP] kept) and
        right-padded with [PAD]. Returns int64 arrays input_ids, attention_mask, token_type_ids.
        A str is tokenised; a list is taken as pieces already (augmented texts)."""
        if max_length < 2:
            raise KoemoInputError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
        pieces = self.tokenize(text_or_pieces) if isinstance(text_or_pieces, str) else list(text_or_pieces)
        body = self.convert_tokens_to_ids(pieces)[: max_length - 2]
        return single_sequence(body, self.cls_token_id, self.sep_token_id, self.pad_token_id,
                               max_length)

    def attention_mask_for(self, input_ids: ArrayLike) -> np.ndarray:
        """The mask `encode` gives with `input_ids` [..., L]: 1 up to the last non-[PAD] id
        (encode's closing [SEP]), 0 on the trailing [PAD] run after it."""
        return mask_before_trailing_pad(input_ids, self.pad_token_id)

    def batch_encode(self, items: Sequence[str | Sequence[str]], max_length: int = 64) -> dict[str, np.ndarray]:
        """`encode` for many texts (or piece lists): dict of int64 [N, max_length] arrays."""
        encoded = [self.encode(item, max_length) for item in items]
        keys = ("input_ids", "attention_mask", "token_type_ids")
        if not encoded:
            return {k: np.zeros((0, max_length), dtype=np.int64) for k in keys}
        return {k: np.stack([e[k] for e in encoded]) for k in keys}

    def decode(self, ids: Sequence[int]) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(list(ids)))

    def __repr__(self) -> str:
        return (f"KoBERTTokenizer(source={self.source!r}, vocab_size={self.vocab_size}, "
                f"fingerprint={self.fingerprint!r})")


def single_sequence(body: Sequence[int], cls_id: int, sep_id: int, pad_id: int,
                    max_length: int) -> dict[str, np.ndarray]:
    """`cls body sep` right-padded to max_length (body already cut to max_length - 2)."""
    ids = np.full(max_length, pad_id, dtype=np.int64)
    ids[: len(body) + 2] = [cls_id, *body, sep_id]
    # From positions, not ids: a pad token typed in the text is a real token.
    mask = np.zeros(max_length, dtype=np.int64)
    mask[: len(body) + 2] = 1
    return {"input_ids": ids, "attention_mask": mask,
            "token_type_ids": np.zeros(max_length, dtype=np.int64)}


def mask_before_trailing_pad(input_ids: ArrayLike, pad_id: int) -> np.ndarray:
    """1 up to the last non-pad id, 0 on the trailing pad run ([..., L] ids)."""
    real = np.asarray(input_ids) != pad_id
    # A position is padding iff no real token follows it (reverse cumulative "any").
    return np.flip(np.maximum.accumulate(np.flip(real, -1), axis=-1), -1).astype(np.int64)
