"""The frozen KoBERT encoder and the on-disk cache of its last hidden states.

KoBERT never trains here (the paper freezes it and runs it in eval mode), so its output for a
given token-id sequence never changes: it is computed once and stored under
`W/text/<fingerprint>/` as float16 npy shards plus an index (parquet) from key to (shard, row).
The directory fingerprint covers the encoder weights and the tokenizer model; a key is the sha1
of the int32 token ids, so a text and an augmented variant with different pieces get different
entries. States at padding positions are stored too: the faithful text model reads them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from filelock import FileLock

from koemo.config.fingerprints import fingerprint as config_fingerprint
from koemo.config.schema import Config, TokenizerKind
from koemo.errors import KoemoInputError
from koemo.text.auto import AutoTextTokenizer, auto_tokenizer_folder, text_model_kind
from koemo.text.quiet import quiet_weight_loading  # noqa: F401 (re-exported)
from koemo.text.standin import (STANDIN_KEYWORD, ensure_standin, read_utterance_texts,
                                 resolve_text_source)
from koemo.text.tokenizer import (KoBERTTokenizer, fetch_hub_files, file_sha1,
                                  kobert_tokenizer_folder, looks_like_hub_id, resolve_pretrained)

# The two tokenizers a text pipeline loads (KoBERT's own, or any transformers AutoTokenizer).
TextTokenizer = KoBERTTokenizer | AutoTextTokenizer

CONFIG_NAME = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
LOCK_FILE = "cache.lock"
MASK_RULE = "positions"   # attention mask 1 up to [SEP] (KoBERTTokenizer.attention_mask_for)


def encoder_directory(hub_id_or_dir: str | Path, what: str = "KoBERT encoder") -> Path:
    """A local directory holding config.json + weights, or a hub id fetched into the hub cache
    (safetensors preferred; KoBERT's hub repository may only have pytorch_model.bin)."""
    path = Path(hub_id_or_dir).expanduser()
    local = path.exists() or not looks_like_hub_id(str(hub_id_or_dir))
    if local:
        folder = resolve_pretrained(path, [CONFIG_NAME], what=what)
    else:
        folder = fetch_hub_files(str(hub_id_or_dir), [CONFIG_NAME], [WEIGHT_FILES[0]], what=what)
        if not (folder / WEIGHT_FILES[0]).is_file():
            folder = fetch_hub_files(str(hub_id_or_dir), [WEIGHT_FILES[1]], what=what)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise KoemoInputError(f"{folder}: {what} directory without {' or '.join(WEIGHT_FILES)}")
    check_weights(folder, local)
    return folder


def check_weights(folder: Path, local: bool) -> None:
    """One line naming the weights file when it cannot be used: a local folder's weights must be
    safetensors (koemo unpickles nothing a user points it at), and a safetensors file must
    read (a damaged download or copy fails here, not as a traceback inside transformers)."""
    weights = folder / WEIGHT_FILES[0]
    if not weights.is_file():
        if local:
            raise KoemoInputError(
                f"{folder / WEIGHT_FILES[1]}: a pickle file, and koemo loads no pickles: save the "
                f"encoder as {WEIGHT_FILES[0]} (transformers: `save_pretrained` of the loaded model)")
        return          # a hub repository with only the .bin: transformers loads it weights-only
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="np") as handle:
            handle.keys()
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type
        raise KoemoInputError(f"{weights}: not a readable safetensors file ({err}); the file is "
                              "damaged or incomplete: copy or download it again") from err


def weights_fingerprint(folder: Path) -> str:
    """sha1 over config.json and the weights file: same files -> same cached states."""
    digest = hashlib.sha1((folder / CONFIG_NAME).read_bytes())
    weights = next(folder / name for name in WEIGHT_FILES if (folder / name).is_file())
    digest.update(file_sha1(weights).encode())
    return digest.hexdigest()[:16]


def load_kobert(hub_id_or_dir: str | Path, device: str = "cpu") -> Any:
    """KoBERT (or a stand-in) as a transformers BertModel, frozen (requires_grad False) and in
    eval mode. A hub id needs a reachable hub or a filled local hub cache; offline it fails at
    once with a KoemoInputError that says how to use a local directory instead."""
    folder = encoder_directory(hub_id_or_dir)   # before importing transformers: fast errors
    from transformers import BertModel

    try:
        with quiet_weight_loading():
            model = BertModel.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError) as err:
        raise KoemoInputError(f"{folder}: could not load a BertModel ({err})") from err
    return _frozen(model, folder, hub_id_or_dir, device)


def _frozen(model: Any, folder: Path, source: str | Path, device: str) -> Any:
    """Frozen, in eval mode, on `device`, tagged with its weights' fingerprint (cache keys) and
    where it came from."""
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    model.koemo_fingerprint = weights_fingerprint(folder)
    model.koemo_source = str(source)
    return model


def text_tokenizer_folder(hub_id_or_dir: str | Path, kind: TokenizerKind | None = None) -> Path:
    """The folder `load_text_tokenizer` reads (a hub id: fetched, or from the hub cache)."""
    if text_model_kind(hub_id_or_dir, kind) == "kobert":
        return kobert_tokenizer_folder(hub_id_or_dir)
    return auto_tokenizer_folder(hub_id_or_dir)


def text_encoder_folder(hub_id_or_dir: str | Path, kind: TokenizerKind | None = None) -> Path:
    """The folder `load_text_encoder` reads, its weights checked."""
    kobert = text_model_kind(hub_id_or_dir, kind) == "kobert"
    return encoder_directory(hub_id_or_dir, what="KoBERT encoder" if kobert else "text encoder")


def load_text_tokenizer(hub_id_or_dir: str | Path, kind: TokenizerKind | None = None
                        ) -> TextTokenizer:
    """KoBERTTokenizer for KoBERT (hub id, stand-in, spiece.model directory), else an
    AutoTextTokenizer (koemo.text.auto); `kind` (text.tokenizer_kind) overrides the guess."""
    if text_model_kind(hub_id_or_dir, kind) == "kobert":
        return KoBERTTokenizer.from_pretrained(hub_id_or_dir)
    return AutoTextTokenizer.from_pretrained(hub_id_or_dir)


def load_text_encoder(hub_id_or_dir: str | Path, kind: TokenizerKind | None = None,
                      device: str = "cpu") -> Any:
    """`load_kobert` for KoBERT, else any transformers AutoModel encoder, frozen in eval mode,
    with the same fingerprint/source attributes."""
    if text_model_kind(hub_id_or_dir, kind) == "kobert":
        return load_kobert(hub_id_or_dir, device=device)
    folder = text_encoder_folder(hub_id_or_dir, kind)
    from transformers import AutoModel

    try:
        with quiet_weight_loading():
            model = AutoModel.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as err:
        raise KoemoInputError(f"{folder}: could not load a text encoder ({err})") from err
    return _frozen(model, folder, hub_id_or_dir, device)


def last_hidden_states(output: Any) -> Any:
    """Last hidden states of a BertModel call: a ModelOutput, or the tuple that a model built
    with return_dict=False returns (as SKT's KoBERT loader builds it), states first."""
    return output[0] if isinstance(output, tuple) else output.last_hidden_state


def encoder_fingerprint(encoder: Any) -> str:
    """The fingerprint `load_kobert` recorded, else a hash of every parameter and buffer."""
    recorded = getattr(encoder, "koemo_fingerprint", None)
    if recorded:
        return recorded
    import torch

    digest = hashlib.sha1()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def ids_key(input_ids_row: ArrayLike) -> str:
    """Cache key of one token-id sequence: sha1 of its int32 bytes (length included)."""
    row = np.ascontiguousarray(np.asarray(input_ids_row).reshape(-1), dtype=np.int32)
    return hashlib.sha1(row.tobytes()).hexdigest()


def as_id_matrix(input_ids: ArrayLike) -> np.ndarray:
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"input_ids must be an integer [N, L] array, got {ids.dtype} {ids.shape}")
    return ids


class TextStateCache:
    """Last hidden states of a frozen encoder per token-id sequence, on disk under
    `W/text/<fingerprint>/`: `states-NNNNN.npy` (float16 [n, L, H]) + `index.parquet`
    (key, shard, row) + `meta.json`. `ensure` computes only what is missing; `get`/`get_many`
    read memory-mapped shards."""

    def __init__(self, workdir: str | Path, encoder: Any, tokenizer: TextTokenizer,
                 encoder_id: str | None = None,
                 shard_rows: int = 4096):
        self.encoder, self.tokenizer = encoder, tokenizer
        self.encoder_id = encoder_id or getattr(encoder, "koemo_source", None)
        self.encoder_fingerprint = encoder_fingerprint(encoder)
        # "mask": caches filled while a typed [PAD] was masked out hold other states for the
        # same ids; a new directory keeps them from being reused.
        self.fingerprint = config_fingerprint(
            {"encoder": self.encoder_fingerprint, "tokenizer": tokenizer.fingerprint,
             "mask": MASK_RULE})
        self.hidden_size = int(encoder.config.hidden_size)
        self.shard_rows = shard_rows
        self.directory = Path(workdir) / "text" / self.fingerprint
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_meta()
        self._index: dict[str, tuple[int, int]] = self._read_index()
        self._shards: dict[int, np.ndarray] = {}
        self.stats = {"hits": 0, "misses": 0, "computed": 0, "stored": len(self._index)}

    # -- on-disk layout

    def _write_meta(self) -> None:
        path = self.directory / META_FILE
        if path.is_file():
            return
        meta = {"encoder_fingerprint": self.encoder_fingerprint, "encoder_id": self.encoder_id,
                "tokenizer_fingerprint": self.tokenizer.fingerprint,
                "tokenizer_source": getattr(self.tokenizer, "source", None),
                "hidden_size": self.hidden_size, "dtype": "float16", "mask_rule": MASK_RULE,
                "key": "sha1 of the int32 token ids"}
        path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def _read_index(self) -> dict[str, tuple[int, int]]:
        import pandas as pd

        path = self.directory / INDEX_FILE
        if not path.is_file():
            return {}
        table = pd.read_parquet(path)
        return {k: (int(s), int(r)) for k, s, r in zip(table["key"], table["shard"], table["row"])}

    def _write_index(self) -> None:
        import pandas as pd

        keys = list(self._index)
        table = pd.DataFrame({"key": keys,
                              "shard": np.array([self._index[k][0] for k in keys], dtype=np.int32),
                              "row": np.array([self._index[k][1] for k in keys], dtype=np.int32)})
        tmp = self.directory / (INDEX_FILE + ".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, self.directory / INDEX_FILE)   # readers never see a half-written index

    def _shard_path(self, shard: int) -> Path:
        return self.directory / f"states-{shard:05d}.npy"

    def _next_shard(self) -> int:
        # Past every shard file, even one an interrupted run left out of the index.
        numbers = [int(p.stem.split("-")[1]) for p in self.directory.glob("states-*.npy")]
        used = [s for s, _ in self._index.values()]
        return max(numbers + used, default=-1) + 1

    def _shard(self, shard: int) -> np.ndarray:
        if shard not in self._shards:
            self._shards[shard] = np.load(self._shard_path(shard), mmap_mode="r")
        return self._shards[shard]

    # -- computing

    def _check_mask(self, ids: np.ndarray, attention_mask: ArrayLike | None) -> np.ndarray:
        expected = self.tokenizer.attention_mask_for(ids)
        if attention_mask is not None and not np.array_equal(np.asarray(attention_mask), expected):
            # States are keyed by ids alone, which is only sound if the mask follows from them.
            raise ValueError("attention_mask must be 1 up to [SEP] and 0 on the trailing [PAD] "
                             "run, as the tokenizer builds it")
        return expected

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        device = next(self.encoder.parameters()).device
        with torch.inference_mode():
            out = self.encoder(input_ids=torch.as_tensor(ids, device=device),
                               attention_mask=torch.as_tensor(mask, device=device),
                               token_type_ids=torch.zeros(ids.shape, dtype=torch.long, device=device))
        # Cast on the device: half the bytes to move, same round-to-nearest as numpy's cast.
        half = last_hidden_states(out).to(torch.float16).cpu().numpy()
        if not np.isfinite(half).all():
            raise ValueError("encoder states overflow float16 (values beyond +-65504)")
        return half

    def _compute_shard(self, keys: list[str], ids: np.ndarray, mask: np.ndarray,
                       batch_size: int, bar: Any) -> None:
        """Write one shard (at most shard_rows rows), then publish it in the index."""
        shard = self._next_shard()
        final = self._shard_path(shard)
        partial = final.with_name(final.name + ".partial")
        store = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16,
                                          shape=(len(keys), ids.shape[1], self.hidden_size))
        for start in range(0, len(keys), batch_size):
            stop = min(start + batch_size, len(keys))
            store[start:stop] = self._forward(ids[start:stop], mask[start:stop])
            bar.update(stop - start)
        store.flush()
        del store
        os.replace(partial, final)
        self._index.update({key: (shard, row) for row, key in enumerate(keys)})
        self._write_index()

    def ensure(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
               batch_size: int = 64,
               progress: bool = True) -> dict:
        """Compute and store the states of every row not cached yet (each distinct row once).
        Returns this call's counts: rows already cached (hits), rows not cached (misses) and
        distinct sequences computed."""
        ids = as_id_matrix(input_ids)
        mask = self._check_mask(ids, attention_mask)
        keys = [ids_key(row) for row in ids]
        if all(key in self._index for key in keys):
            return self._count(len(keys), 0, 0)
        # Parallel runs (`reproduce.parallel_runs`) share this cache: one writer at a time,
        # and each starts from the index as the others left it.
        with FileLock(str(self.directory / LOCK_FILE)):
            self._index.update(self._read_index())
            return self._ensure_locked(ids, mask, keys, batch_size, progress)

    def _count(self, rows: int, misses: int, computed: int) -> dict:
        call = {"hits": rows - misses, "misses": misses, "computed": computed}
        for name, value in call.items():
            self.stats[name] += value
        self.stats["stored"] = len(self._index)
        return call

    def _ensure_locked(self, ids: np.ndarray, mask: np.ndarray, keys: list[str],
                       batch_size: int, progress: bool) -> dict:
        from tqdm.auto import tqdm

        todo: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in self._index and key not in todo:
                todo[key] = i
        misses = sum(key not in self._index for key in keys)
        if todo:
            was_training = self.encoder.training
            self.encoder.eval()   # dropout on would store one random draw forever
            rows = np.fromiter(todo.values(), dtype=np.int64)
            todo_keys = list(todo)
            with tqdm(total=len(rows), disable=not progress, desc="KoBERT states", unit="text") as bar:
                for start in range(0, len(rows), self.shard_rows):
                    part = rows[start:start + self.shard_rows]
                    self._compute_shard(todo_keys[start:start + self.shard_rows], ids[part],
                                        mask[part], batch_size, bar)
            self.encoder.train(was_training)
        return self._count(len(keys), misses, len(todo))

    # -- reading

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, input_ids_row: ArrayLike) -> bool:
        return ids_key(input_ids_row) in self._index

    def _locate(self, input_ids_row: ArrayLike) -> tuple[int, int]:
        try:
            return self._index[ids_key(input_ids_row)]
        except KeyError:
            raise KeyError(f"{self.directory}: no cached states for token ids "
                           f"{np.asarray(input_ids_row)[:8].tolist()}...; call ensure() first") from None

    def get(self, input_ids_row: ArrayLike) -> np.ndarray:
        """float16 [L, H] states of one token-id sequence (a copy, safe to modify)."""
        shard, row = self._locate(input_ids_row)
        return np.array(self._shard(shard)[row])

    def get_many(self, input_ids: ArrayLike) -> np.ndarray:
        """float16 [N, L, H] states, in the order of the rows of `input_ids`."""
        ids = as_id_matrix(input_ids)
        out = np.empty((len(ids), ids.shape[1], self.hidden_size), dtype=np.float16)
        places = [self._locate(row) for row in ids]
        for shard in sorted({s for s, _ in places}):
            picks = [(i, r) for i, (s, r) in enumerate(places) if s == shard]
            targets, rows = zip(*picks)
            out[list(targets)] = self._shard(shard)[list(rows)]
        return out


# ---------------------------------------------------------------- everything a stage needs

@dataclass
class TextPipeline:
    """Tokenizer, frozen encoder and state cache of one config + workdir."""
    tokenizer: TextTokenizer
    encoder: object
    cache: TextStateCache
    tokenizer_source: str
    encoder_source: str
    max_length: int


def open_text_pipeline(cfg: Config, workdir: str | Path, device: str = "cpu",
                       build_missing_standin: bool = True) -> TextPipeline:
    """Resolve cfg.text sources (building W/kobert-standin from the transcripts first when the
    config asks for the stand-in and none is there), load tokenizer and frozen encoder, open the
    workdir's state cache."""
    tokenizer_source = resolve_text_source(cfg, workdir, part="tokenizer")
    encoder_source = resolve_text_source(cfg, workdir, part="encoder")
    uses_standin = STANDIN_KEYWORD in (cfg.text.tokenizer, cfg.text.encoder)
    if uses_standin and build_missing_standin:
        ensure_standin(workdir, cfg)
    kind = cfg.text.tokenizer_kind
    tokenizer = load_text_tokenizer(tokenizer_source, kind)
    encoder = load_text_encoder(encoder_source, kind, device=device)
    vocab = int(encoder.config.vocab_size)
    if tokenizer.vocab_size > vocab:
        raise KoemoInputError(f"tokenizer {tokenizer_source} has {tokenizer.vocab_size} pieces but "
                              f"encoder {encoder_source} embeds only {vocab}: they do not belong together")
    cache = TextStateCache(workdir, encoder, tokenizer, encoder_id=encoder_source)
    return TextPipeline(tokenizer, encoder, cache, tokenizer_source, encoder_source,
                        int(cfg.text.max_length))


def encode_workdir_texts(workdir: str | Path, cfg: Config, device: str = "cpu",
                         batch_size: int | None = None, progress: bool = True) -> dict:
    """Fill the state cache for every utterance of W/utterances.parquet (`koemo encode-text`).
    Nothing is skipped: an empty transcript encodes as [CLS] [SEP] and a long one is truncated;
    both are listed by segment id in the returned report (also written as encode_report.json
    in the cache directory)."""
    pipe = open_text_pipeline(cfg, workdir, device=device)
    table = read_utterance_texts(workdir)
    pieces = [pipe.tokenizer.tokenize(text) for text in table["text"]]
    capacity = pipe.max_length - 2
    empty = [sid for sid, p in zip(table["segment_id"], pieces) if not p]
    truncated = [{"segment_id": sid, "n_pieces": len(p), "kept": capacity}
                 for sid, p in zip(table["segment_id"], pieces) if len(p) > capacity]
    encoded = pipe.tokenizer.batch_encode(pieces, pipe.max_length)
    batch_size = batch_size or int(cfg.text.encode_batch_size)
    call = pipe.cache.ensure(encoded["input_ids"], encoded["attention_mask"],
                             batch_size=batch_size, progress=progress)
    report = {"utterances": len(table), "max_length": pipe.max_length,
              "tokenizer": pipe.tokenizer_source, "encoder": pipe.encoder_source,
              "cache_dir": str(pipe.cache.directory), **call, "stored": len(pipe.cache),
              "empty_text": empty, "truncated": truncated}
    path = pipe.cache.directory / "encode_report.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report
