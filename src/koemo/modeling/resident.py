"""Device-resident training data: a stage's inputs copied once onto the training device and
cut into batches there (`train.resident`).

The DataLoader path reads every row from the float16 memmaps, widens it, masks it with numpy
and collates it on the host, then copies the batch to the device: per row, several times the
model's own step on a GPU. Here the rows a stage uses are gathered once (float16, as stored):
mel + delta rows of the FeatureStore (or speech-encoder states), the distinct KoBERT state
sequences, or the multimodal stage's cached frozen outputs. A batch is an index gather on the
device, widened to float32 there; the dB-floor fix and the frequency masks are applied to the
batch on the device. The masks' random draws are made once per row with the same generator
calls as `koemo.dataset.augment.frequency_mask` (they depend on the row's aug_seed only, never on the
epoch), and batches follow the DataLoader's own sampler, so both paths give the same tensors
(tested bit for bit on CPU).

`train.resident`: auto (resident when the stage's data fits in half the free GPU memory, or
a quarter of the RAM on a CPU), true, or false (the DataLoader path, e.g. with num_workers).
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from koemo.dataset.augment import AUDIO_MASK_KINDS
from koemo.modeling import data as D

GPU_FRACTION, RAM_FRACTION = 0.5, 0.25


class ResidentAudio:
    """Audio rows of a dataset on the device: the store rows they use (float16), each row's
    position among them, frame counts and its frequency mask (if any)."""

    def __init__(self, audio: D.AudioFeatures, shared: "SharedRows", device: torch.device):
        store = audio.store
        self.base = shared.loaded
        self.row_base = torch.as_tensor(np.searchsorted(shared.keys, audio.index), device=device)
        self.n_frames = torch.as_tensor(store.n_frames[audio.index].astype(np.int64), device=device)
        self.floor_db = (-float(getattr(store, "top_db"))
                         if audio.cfg.fixes.db_floor_padding and hasattr(store, "top_db")
                         else None)
        self._draw_masks(audio, store, device)

    def _draw_masks(self, audio: D.AudioFeatures, store: D.AudioStore, device: torch.device) -> None:
        """Start/stop bins and float32 noise [M, 2, T, W] of every masked row, drawn as
        frequency_mask draws them (W: the widest band)."""
        from koemo.dataset.augment import draw_frequency_mask

        masked = [i for i, kind in enumerate(audio.kinds) if kind in AUDIO_MASK_KINDS]
        if not getattr(store, "maskable", True):
            masked = []
        # Kept on the host: which rows of a batch are masked is known before the batch is on
        # the device, so selecting them never waits for the GPU (nonzero() there would).
        self.mask_of = torch.full((len(audio.kinds),), -1, dtype=torch.long)
        self.mask_of[masked] = torch.arange(len(masked))
        self.noise: torch.Tensor | None = None
        if not masked:
            return
        _, _, n_time, n_bins = store.array.shape
        draws = []
        for i in masked:
            frames = int(min(store.n_frames[audio.index[i]], n_time))
            rng = np.random.default_rng(int(audio.seeds[i]))
            draws.append(draw_frequency_mask(n_bins, frames, rng, audio.cfg.augment))
        width = max(stop - start for start, stop, _ in draws)
        noise = np.zeros((len(draws), 2, n_time, width), dtype=np.float32)
        valid = np.zeros(noise.shape, dtype=bool)
        for k, (_, _, values) in enumerate(draws):
            noise[k, :, :values.shape[1], :values.shape[2]] = values
            valid[k, :, :values.shape[1], :values.shape[2]] = True
        if audio.cfg.fixes.mask_spectrogram_only:      # the delta channel keeps its values
            valid[:, 1] = False
        self.start = torch.as_tensor([start for start, _, _ in draws], device=device)
        self.noise = torch.from_numpy(noise).to(device)
        self.valid = torch.from_numpy(valid).to(device)

    def batch(self, rows: torch.Tensor, host_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 features [B, ...] and frame counts [B] of dataset rows `rows` (on the
        device; `host_rows`: the same on the host)."""
        feats = self.base[self.row_base[rows]].float()
        lengths = self.n_frames[rows]
        if self.floor_db is not None:       # fixes.db_floor_padding, as FeatureStore.get_batch
            padding = torch.arange(feats.shape[2], device=feats.device)[None, :] >= lengths[:, None]
            feats[:, 0].masked_fill_(padding[..., None], self.floor_db)   # no boolean indexing: no sync
        if self.noise is not None:
            self._mask(feats, self.mask_of[host_rows])
        return feats, lengths

    def _mask(self, feats: torch.Tensor, mask_ids: torch.Tensor) -> None:
        """Writes each masked row's noise into its band: a scatter into the features widened by
        the band width, so no index is ever clipped onto another. `mask_ids` on the host."""
        which = (mask_ids >= 0).nonzero().squeeze(1)
        noise = self.noise
        if which.numel() == 0 or noise is None:
            return
        ids = mask_ids[which].to(feats.device, non_blocking=True)
        which = which.to(feats.device, non_blocking=True)
        width = noise.shape[-1]
        rows = torch.nn.functional.pad(feats[which], (0, width))
        bins = (self.start[ids][:, None, None, None]
                + torch.arange(width, device=feats.device)).expand_as(noise[ids])
        values = torch.where(self.valid[ids], noise[ids], rows.gather(-1, bins))
        rows.scatter_(-1, bins, values)
        feats[which] = rows[..., :feats.shape[-1]]


class ResidentText:
    """KoBERT states on the device: each distinct token-id sequence once (float16)."""

    def __init__(self, text: D.TextStates, shared: "SharedRows", row_seq: np.ndarray,
                 device: torch.device):
        self.states = shared.loaded
        self.row_seq = torch.as_tensor(row_seq, device=device)
        self.attention_mask = torch.as_tensor(text.attention_mask, device=device)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.states[self.row_seq[rows]].float(), self.attention_mask[rows]


class ResidentDataset:
    """A stage dataset on the device: `batch(rows)` gives what the DataLoader would collate."""

    def __init__(self, target: np.ndarray, device: torch.device, audio: ResidentAudio | None = None,
                 text: ResidentText | None = None, frozen: dict[str, torch.Tensor] | None = None):
        self.target = torch.tensor(np.asarray(target), device=device)     # a copy: memmaps are read-only
        self.audio, self.text, self.frozen = audio, text, frozen
        self.device = device

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, rows: torch.Tensor) -> dict:
        host_rows = rows.cpu()
        rows = host_rows.to(self.device, non_blocking=True)
        out: dict[str, torch.Tensor] = {}
        if self.audio is not None:
            out["feats"], out["lengths"] = self.audio.batch(rows, host_rows)
        if self.text is not None:
            out["states"], out["attention_mask"] = self.text.batch(rows)
        if self.frozen is not None:
            out.update({name: array[rows] for name, array in self.frozen.items()})
        return {**out, "target": self.target[rows], "row": rows}


class ResidentBatches:
    """Batches of a ResidentDataset in the order a DataLoader with the same batch size and
    shuffle seed would give (its own sampler draws the order), or in table order."""

    def __init__(self, dataset: ResidentDataset, batch_size: int, shuffle_seed: int | None = None):
        self.dataset, self.batch_size, self.shuffle_seed = dataset, batch_size, shuffle_seed

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        generator = None
        if self.shuffle_seed is not None:
            generator = torch.Generator().manual_seed(self.shuffle_seed)
        rows: Any = range(len(self.dataset))     # a sequence of row ids: the DataLoader's sampler
        order: DataLoader[torch.Tensor] = DataLoader(rows, batch_size=self.batch_size,
                                                    shuffle=generator is not None,
                                                    generator=generator)
        for rows in order:
            yield self.dataset.batch(rows)


# ----------------------------------------------------------------------------- building

class SharedRows:
    """Rows of one store or state cache that any split of the stage uses, copied once (the
    splits' datasets index into the same tensor)."""

    def __init__(self, keys: np.ndarray, row_bytes: int,
                 load: Callable[[torch.device], torch.Tensor]):
        self.keys, self.row_bytes, self._load = keys, row_bytes, load
        self.tensor: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return len(self.keys) * self.row_bytes

    def materialise(self, device: torch.device) -> None:
        if self.tensor is None:
            self.tensor = self._load(device)

    @property
    def loaded(self) -> torch.Tensor:
        """The rows on the device (after `materialise`)."""
        if self.tensor is None:
            raise RuntimeError("SharedRows read before materialise()")
        return self.tensor


def _audio_rows(datasets: Mapping[str, Any]) -> dict[int, SharedRows]:
    """id(store) -> SharedRows over the store positions every split's rows use."""
    stores: dict[int, D.AudioStore] = {}
    positions: dict[int, list[np.ndarray]] = {}
    for dataset in datasets.values():
        audio = getattr(dataset, "audio", None)
        if audio is not None:
            stores[id(audio.store)] = audio.store
            positions.setdefault(id(audio.store), []).append(audio.index)
    shared: dict[int, SharedRows] = {}
    for key, store in stores.items():
        used = np.unique(np.concatenate(positions[key]))
        row_bytes = int(np.prod(store.array.shape[1:])) * store.array.itemsize
        shared[key] = SharedRows(used, row_bytes, functools.partial(_to_device, store.array, used))
    return shared


def _text_rows(datasets: Mapping[str, Any]) -> tuple[dict[int, SharedRows], dict[str, np.ndarray]]:
    """id(cache) -> SharedRows over the distinct token-id sequences of every split, and each
    split's row -> sequence position."""
    caches: dict[int, Any] = {}
    ids: dict[int, list[tuple[str, np.ndarray]]] = {}
    for split, dataset in datasets.items():
        text = getattr(dataset, "text", None)
        if text is not None:
            caches[id(text.cache)] = text.cache
            ids.setdefault(id(text.cache), []).append((split, text.input_ids))
    shared: dict[int, SharedRows] = {}
    row_seq: dict[str, np.ndarray] = {}
    for key, cache in caches.items():
        stacked = np.concatenate([matrix for _, matrix in ids[key]])
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        bounds = np.cumsum(np.asarray([0] + [len(matrix) for _, matrix in ids[key]], dtype=np.int64))
        for (split, _), first, last in zip(ids[key], bounds[:-1], bounds[1:]):
            row_seq[split] = inverse[first:last]
        row_bytes = unique.shape[1] * cache.hidden_size * 2           # float16 states
        shared[key] = SharedRows(unique, row_bytes, functools.partial(_states_to_device, cache, unique))
    return shared, row_seq


def _states_to_device(cache: Any, sequences: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(cache.get_many(sequences)).to(device)


def _mask_bytes(datasets: Mapping[str, Any]) -> int:
    """The frequency masks' noise (float32) and validity (bool) per masked row."""
    total = 0
    for dataset in datasets.values():
        audio = getattr(dataset, "audio", None)
        if audio is not None and getattr(audio.store, "maskable", True):
            masked = int(np.isin(audio.kinds, list(AUDIO_MASK_KINDS)).sum())
            width = int(audio.cfg.augment.freq_mask_width[1])
            total += masked * 2 * audio.store.array.shape[2] * width * 5
    return total


def resident_bytes(datasets: Mapping[str, Any]) -> int:
    """What the stage's datasets would occupy on the device (float16 rows, masks, states)."""
    frozen = sum(a.nbytes for d in datasets.values() if isinstance(d, D.FrozenOutputsDataset)
                 for a in d.arrays.values())
    shared = [*_audio_rows(datasets).values(), *_text_rows(datasets)[0].values()]
    return frozen + sum(rows.nbytes for rows in shared) + _mask_bytes(datasets)


def available_bytes(device: torch.device) -> int:
    """The share of the device's memory resident data may take."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_FRACTION)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * RAM_FRACTION)


def wants_resident(setting: bool | str, datasets: Mapping[str, Any], device: torch.device) -> bool:
    """train.resident: true/false, or auto (when the data fits the device's share)."""
    if setting != "auto":
        return bool(setting)
    return resident_bytes(datasets) <= available_bytes(device)


def make_resident(datasets: Mapping[str, Any], device: torch.device) -> dict[str, ResidentDataset]:
    """The same datasets (split -> dataset) on the device."""
    audio_rows = _audio_rows(datasets)
    text_rows, row_seq = _text_rows(datasets)
    for rows in [*audio_rows.values(), *text_rows.values()]:
        rows.materialise(device)
    out: dict[str, ResidentDataset] = {}
    for split, dataset in datasets.items():
        if isinstance(dataset, D.FrozenOutputsDataset):
            frozen = {name: _to_device(array, np.arange(len(array)), device)
                      for name, array in dataset.arrays.items()}
            out[split] = ResidentDataset(dataset.target, device, frozen=frozen)
            continue
        audio: ResidentAudio | None = None
        text: ResidentText | None = None
        if getattr(dataset, "audio", None) is not None:
            audio = ResidentAudio(dataset.audio, audio_rows[id(dataset.audio.store)], device)
        if getattr(dataset, "text", None) is not None:
            text = ResidentText(dataset.text, text_rows[id(dataset.text.cache)], row_seq[split], device)
        out[split] = ResidentDataset(dataset.target, device, audio=audio, text=text)
    return out


def _to_device(array: np.ndarray, rows: np.ndarray, device: torch.device,
               chunk_bytes: int = 256 << 20) -> torch.Tensor:
    """array[rows] on the device, copied in chunks so the host never holds a second full copy."""
    if device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(array[rows]))
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.itemsize)
    step = max(1, chunk_bytes // row_bytes)
    out = torch.empty((len(rows),) + tuple(array.shape[1:]),
                      dtype=torch.from_numpy(array[:0]).dtype, device=device)
    for first in range(0, len(rows), step):
        part = np.ascontiguousarray(array[rows[first:first + step]])
        out[first:first + len(part)] = torch.from_numpy(part).to(device)
    return out
