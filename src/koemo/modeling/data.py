"""Torch datasets for the three training stages, over W/utterances.parquet + the FeatureStore +
the TextStateCache.

Which rows: the split column of the configured protocol/fold (`koemo.dataset.splits.split_column`).
Augmentation (docs/paper.md, data) only on train: `koemo.dataset.augment.plan_augmentation` adds the extra
rows with `aug_kind`/`aug_seed`; this module APPLIES them:
  swap_text               random-swap text pieces, original audio
  mask_audio              original text, frequency-masked audio
  delete_text_mask_audio  random-delete text pieces, frequency-masked audio
each op drawing from `np.random.default_rng(aug_seed)` (faithful: the same seed 824 for every row,
as the original reset its seed on every call).

Text: every token-id sequence (augmented ones included) is built up front so the frozen encoder
runs once per distinct sequence (`TextStateCache.ensure`), never inside the training loop.

Multimodal: the classifier freezes both regressors, so their outputs (audio hidden [T,D] + mask,
text hidden [L,D] + mask) can be computed once per row and read back from float16 npy memmaps
(`train.multimodal.cache_frozen`). Caveat, faithful mode: the original keeps attention dropout
on in eval (`fixes.eval_attention_dropout_off: false`), so the frozen outputs are random; the
cache fixes ONE draw per row (each split's drawn from the run's seed, so a cache written again
holds the same draw), where recomputing every step (cache_frozen: false) draws anew.

Evaluation sets keep every row (no drop_last) in table order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from koemo.config.fingerprints import fingerprint
from koemo.config.schema import Config, Target
from koemo.dataset.augment import (AUDIO_MASK_KINDS, ORIG, TEXT_KINDS, frequency_mask,
                                   plan_augmentation)
from koemo.dataset.splits import SPLITS, Split
from koemo.dataset.labels import data_classes
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    from koemo.audio.encoder_store import EncoderStateStore
    from koemo.audio.feature_store import FeatureStore
    from koemo.text.encoder import TextStateCache, TextTokenizer
    from koemo.modeling.models import FrozenRegressors


# ----------------------------------------------------------------------------- rows

def split_rows(table: pd.DataFrame, cfg: Config, split: Split) -> pd.DataFrame:
    """Rows of one split (train/valid/test) under the configured protocol and fold; with
    `data.silent_audio: drop`, without the recordings that hold no signal (their split stays
    assigned in the table, so every other row keeps its split under either policy)."""
    from koemo.dataset.splits import is_fold_column, split_column

    if split not in SPLITS:
        raise KoemoInputError(f"split must be one of {SPLITS}, not {split!r}")
    column = split_column(cfg)
    if column not in table.columns:
        raise KoemoInputError(f"utterances.parquet has no column {column!r}; re-run `koemo prepare`")
    chosen = table[column] == split
    if cfg.data.silent_audio == "drop":
        if "audio_problem" not in table.columns:
            raise KoemoInputError("utterances.parquet has no column 'audio_problem' "
                                  "(data.silent_audio: drop needs it); re-run `koemo prepare`")
        chosen &= table["audio_problem"] == ""
    rows = table[chosen].reset_index(drop=True)
    if rows.empty:
        hint = (": no session of this corpus falls in that fold (the reproduce plans skip it)"
                if is_fold_column(column) and split == "test" else "")
        raise KoemoInputError(f"utterances.parquet: no {split} rows in {column}{hint}")
    return rows


def stage_rows(table: pd.DataFrame, cfg: Config, split: Split, seed: int,
               augment: bool = True) -> pd.DataFrame:
    """The rows a stage sees: train gets the augmentation plan (unless augment=False, e.g. to
    score the training set), valid/test the originals."""
    rows = split_rows(table, cfg, split)
    if augment and split == "train" and cfg.augment.enabled:
        return plan_augmentation(rows, cfg, seed).reset_index(drop=True)
    return rows.assign(aug_kind=ORIG, aug_seed=0)


def target_kind(cfg: Config) -> Target:
    """train.multimodal.target: hard (the paper: the total label) or soft (the raters' label
    distribution). Either way the classifier is scored on the total label."""
    return cfg.train.multimodal.target


def classifier_target(rows: pd.DataFrame, cfg: Config) -> np.ndarray | None:
    """The training target of the classifier's rows: None (the total label's class id) or,
    for soft labels, the raters' vote shares over the classes [N, C]."""
    if target_kind(cfg) == "hard":
        return None
    from koemo.dataset.raters import soft_targets
    return soft_targets(rows, data_classes(cfg.data))


# ----------------------------------------------------------------------------- audio

class AudioFeatures:
    """Features of each row from the FeatureStore, with the dB-floor fix and frequency masking."""

    def __init__(self, rows: pd.DataFrame, store: AudioStore, cfg: Config):
        self.store, self.cfg = store, cfg
        self.kinds = rows["aug_kind"].to_numpy()
        self.seeds = rows["aug_seed"].to_numpy()
        self.index = store_indices(store, rows["segment_id"])

    def __len__(self) -> int:
        return len(self.index)

    def __call__(self, i: int) -> tuple[np.ndarray, int]:
        j = int(self.index[i])
        feats = self.store.get(j, db_floor_padding=bool(self.cfg.fixes.db_floor_padding))
        n_frames = int(self.store.n_frames[j])
        # Speech-encoder states (`maskable` False) are not spectrograms: no frequency mask.
        if self.kinds[i] in AUDIO_MASK_KINDS and getattr(self.store, "maskable", True):
            feats = frequency_mask(feats, n_frames, np.random.default_rng(int(self.seeds[i])),
                                   self.cfg.augment,
                                   spectrogram_only=bool(self.cfg.fixes.mask_spectrogram_only))
        return np.asarray(feats, dtype=np.float32), n_frames


def store_indices(store: AudioStore, segment_ids: Iterable[str]) -> np.ndarray:
    """Store row of every segment id; all missing ids are reported together."""
    index, missing = [], []
    for segment_id in segment_ids:
        try:
            index.append(int(store.index_of(segment_id)))
        except (KeyError, ValueError, IndexError):
            missing.append(segment_id)
    if missing:
        raise KoemoInputError(f"feature store has no features for {len(missing)} utterance(s), e.g. "
                              f"{missing[:5]}; re-run `koemo prepare` (features are built there)")
    return np.asarray(index, dtype=np.int64)


# ----------------------------------------------------------------------------- text

def encode_rows(rows: pd.DataFrame, tokenizer: TextTokenizer,
                cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [N, L] and attention masks [N, L] of every row, augmented text included."""
    from koemo.text.augment import random_delete, random_swap

    ops = {"swap": random_swap, "delete": random_delete}
    text_ops = {kind: ops[op] for kind, op in TEXT_KINDS.items()}
    max_length, ratio = cfg.text.max_length, cfg.augment.text_ratio
    ids, masks = [], []
    for text, kind, seed in zip(rows["text"], rows["aug_kind"], rows["aug_seed"]):
        op = text_ops.get(kind)
        source = text if op is None else op(tokenizer.tokenize(text), ratio,
                                            np.random.default_rng(int(seed)))
        encoded = tokenizer.encode(source, max_length=max_length)
        ids.append(encoded["input_ids"])
        masks.append(encoded["attention_mask"])
    return np.stack(ids).astype(np.int64), np.stack(masks).astype(np.int64)


class TextStates:
    """Frozen-encoder states per row, read from the cache (filled by `ensure_states`)."""

    def __init__(self, rows: pd.DataFrame, tokenizer: TextTokenizer, cache: TextStateCache,
                 cfg: Config):
        self.input_ids, self.attention_mask = encode_rows(rows, tokenizer, cfg)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.input_ids)

    def __call__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        states = np.asarray(self.cache.get(self.input_ids[i]), dtype=np.float32)
        return states, self.attention_mask[i]


def ensure_states(texts: list[TextStates], progress: bool = False) -> None:
    """One pass of the frozen encoder over every sequence of every split not cached yet."""
    if texts:
        texts[0].cache.ensure(np.concatenate([t.input_ids for t in texts]),
                              np.concatenate([t.attention_mask for t in texts]), progress=progress)


# ----------------------------------------------------------------------------- datasets

class AudioDataset(Dataset):
    """Audio stage: features + arousal target."""

    def __init__(self, rows: pd.DataFrame, audio: AudioFeatures):
        self.audio = audio
        self.target = rows["arousal"].to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        feats, n_frames = self.audio(i)
        return {"feats": torch.from_numpy(feats), "lengths": n_frames,
                "target": self.target[i], "row": i}


class TextDataset(Dataset):
    """Text stage: cached encoder states + valence target."""

    def __init__(self, rows: pd.DataFrame, text: TextStates):
        self.text = text
        self.target = rows["valence"].to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        states, mask = self.text(i)
        return {"states": torch.from_numpy(states), "attention_mask": torch.from_numpy(mask),
                "target": self.target[i], "row": i}


class MultimodalDataset(Dataset):
    """Multimodal stage, raw inputs: the frozen regressors run on them every step. `target`:
    the class ids of the total label (default), or a [N, C] label distribution (soft labels)."""

    def __init__(self, rows: pd.DataFrame, audio: AudioFeatures, text: TextStates,
                 target: np.ndarray | None = None):
        self.audio, self.text = audio, text
        self.target = rows["label_id"].to_numpy(dtype=np.int64) if target is None else target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        feats, n_frames = self.audio(i)
        states, mask = self.text(i)
        return {"feats": torch.from_numpy(feats), "lengths": n_frames,
                "states": torch.from_numpy(states), "attention_mask": torch.from_numpy(mask),
                "target": self.target[i], "row": i}


# What the audio model reads: mel+delta rows, or cached speech-encoder states.
AudioStore = Union["FeatureStore", "EncoderStateStore"]

FROZEN_ARRAYS = ("audio_hidden", "audio_mask", "text_hidden", "text_mask")


class FrozenOutputsDataset(Dataset):
    """Multimodal stage from cached frozen-regressor outputs (float16/bool npy memmaps).

    Batches are read whole (`__getitems__`: one sorted fancy-index read per array instead of a
    row at a time) and stay float16 until the device: the classifier step is cheap on a GPU, so
    bytes moved decide the speed of this path."""

    def __init__(self, directory: str | Path, target: np.ndarray):
        directory = Path(directory)
        self.arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in FROZEN_ARRAYS}
        # class ids, or a float label distribution per row (soft labels)
        self.target = np.asarray(target, dtype=np.float32 if np.ndim(target) == 2 else np.int64)
        if len(self.arrays["audio_hidden"]) != len(self.target):
            raise KoemoInputError(f"{directory}: cached outputs hold {len(self.arrays['audio_hidden'])} "
                                  f"rows, expected {len(self.target)}; delete the folder to rebuild")

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {name: value[0] for name, value in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict:
        rows = np.asarray(indices, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        batch = {name: torch.from_numpy(np.ascontiguousarray(arr[rows[order]][back]))
                 for name, arr in self.arrays.items()}
        batch.update(target=torch.from_numpy(self.target[rows]), row=torch.from_numpy(rows))
        return batch


def collate(batch: Any) -> Any:
    """default_collate, except for batches a dataset already assembled (`__getitems__`)."""
    return batch if isinstance(batch, dict) else default_collate(batch)


@torch.no_grad()
def frozen_outputs(classifier: FrozenRegressors, batch: dict, device: torch.device | str) -> dict:
    """The classifier's frozen regressors (as it runs them, e.g. the 4-head audio reuse) on one
    raw multimodal batch: the four inputs of its forward."""
    out = classifier.frozen_features(batch["feats"].to(device), batch["lengths"].to(device),
                                     batch["states"].to(device), batch["attention_mask"].to(device))
    return {name: out[name] for name in FROZEN_ARRAYS}


def frozen_cache_is_current(directory: str | Path, key: dict, rows: int) -> bool:
    """Whether `directory` holds a complete cache of `rows` rows for `key`."""
    meta_path = Path(directory) / "meta.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return bool(meta.get("complete")) and meta.get("key") == fingerprint(key) and meta.get("rows") == rows


def frozen_cache_missing(root: str | Path, key: dict, raw: Mapping[str, Any]) -> bool:
    """Whether any split's cache under `root` (root/<split>) must be (re)written."""
    return not all(frozen_cache_is_current(Path(root) / split, {**key, "split": split}, len(ds))
                   for split, ds in raw.items())


def cache_frozen_outputs(raw: MultimodalDataset, classifier: FrozenRegressors,
                         directory: str | Path, key: dict, batch_size: int,
                         device: torch.device | str, progress: bool = False,
                         loader: Any = None) -> Path:
    """Write the frozen outputs of every row of `raw` once (classifier in eval mode); reused
    while `key` is unchanged. `loader` (default: a DataLoader over `raw` in row order) may give
    the same batches from elsewhere, e.g. from the rows resident on the device.

    `key` names what the outputs depend on (regressor checkpoints, rows, config); `meta.json`
    with `complete: true` is written last, so an interrupted write is redone, never half-read.
    """
    from tqdm.auto import tqdm

    directory = Path(directory)
    meta_path = directory / "meta.json"
    key_fp = fingerprint(key)
    if frozen_cache_is_current(directory, key, len(raw)):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    if loader is None:
        loader = DataLoader(raw, batch_size=batch_size, shuffle=False)
    was_training = classifier.training
    classifier.eval()
    arrays: dict[str, np.memmap] = {}
    start = 0
    for batch in tqdm(iter(loader), total=len(loader), disable=not progress,   # one iterator
                      desc=f"caching frozen outputs ({directory.name})"):
        out = frozen_outputs(classifier, batch, device)
        if not arrays:
            arrays = {name: np.lib.format.open_memmap(
                directory / f"{name}.npy", mode="w+",
                dtype=np.float16 if name.endswith("hidden") else np.bool_,
                shape=(len(raw),) + tuple(out[name].shape[1:])) for name in FROZEN_ARRAYS}
        stop = start + len(batch["target"])
        for name in FROZEN_ARRAYS:
            arrays[name][start:stop] = out[name].float().cpu().numpy() if name.endswith("hidden") \
                else out[name].bool().cpu().numpy()
        start = stop
    classifier.train(was_training)
    for arr in arrays.values():
        arr.flush()
    del arrays
    meta_path.write_text(json.dumps({"key": key_fp, "rows": len(raw), "complete": True,
                                     "note": "one draw of the frozen regressors per row"}),
                         encoding="utf-8")
    return directory
