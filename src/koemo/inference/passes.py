"""The model passes of `koemo.inference.predictor.Predictor`, a batch of windows at a time.

Windows stream through the models in batches of `batch_size`, cut on demand from each
utterance's features (`koemo.inference.windows.WindowSource.chunks`): the audio regressor
scores a batch, the windows of utterances with a transcript queue for the fusion classifier,
which runs whenever a batch of them is full. About two batches of windows are alive at any
time, whatever the length of the recording (a 2-hour file has ~3,500 windows at the paper's
settings); per window only its arousal and class probabilities are kept.

Randomness (checkpoints that keep attention dropout on in eval): each pass draws from its own
seeded RNG stream (audio: seed, fusion: seed + 2; the text pass runs once, seed + 1), paused
and resumed around each batch, so the draws are exactly those of running each pass over all
windows in one go, and the arousal of an utterance does not depend on whether a transcript
came with it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

    from koemo.inference.predictor import Predictor


@dataclass
class WindowScores:
    """What the models said about each window of one utterance."""
    arousal: np.ndarray                  # [W]
    probabilities: np.ndarray | None     # [W, C]; None when the text path was skipped


class RngStream:
    """A seeded torch RNG stream that can be paused between batches and resumed."""

    def __init__(self, seed: int, device: torch.device | str):
        import torch

        self.devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
        with torch.random.fork_rng(devices=self.devices):
            torch.manual_seed(seed)
            self.state = self._current()

    def _current(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        import torch

        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self.devices]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this stream inside the block; the caller's RNG state is untouched."""
        import torch

        with torch.random.fork_rng(devices=self.devices):
            cpu, cuda = self.state
            torch.set_rng_state(cpu)
            for device, state in zip(self.devices, cuda):
                torch.cuda.set_rng_state(state, device)
            yield
            self.state = self._current()


def window_batches(items: Sequence, size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """(owner item, window index, feats, lengths) of `size` windows at a time, across the
    items in order (the last batch may be smaller). Windows are cut as the batches are asked
    for: at most two batches' worth are held here."""
    pieces, held = [], 0
    for owner, item in enumerate(items):
        first = 0
        for feats, lengths in item.frames.chunks(size):
            count = len(lengths)
            pieces.append((np.full(count, owner), np.arange(first, first + count), feats, lengths))
            first, held = first + count, held + count
            while held >= size:
                batch, pieces = _split(pieces, size)
                held -= size
                yield batch
    if held:
        yield _split(pieces, held)[0]


def _split(pieces: list, size: int) -> tuple[tuple, list]:
    joined = [np.concatenate(parts) for parts in zip(*pieces)]
    rest = tuple(part[size:] for part in joined)
    return tuple(part[:size] for part in joined), ([rest] if len(rest[0]) else [])


def score_windows(predictor: Predictor, items: Sequence, text_out: dict) -> list[WindowScores]:
    """Audio regressor over every window, fusion classifier over the windows of the items
    with a transcript (`text_out["rows"]`: item -> row of the text pass)."""
    import torch

    device, size = predictor.device, predictor.batch_size
    scores = [WindowScores(np.zeros(len(item.frames)),
                           np.zeros((len(item.frames), len(predictor.classes)), dtype=np.float32)
                           if i in text_out["rows"] else None) for i, item in enumerate(items)]
    audio_rng, fusion_rng = RngStream(predictor.seed, device), RngStream(predictor.seed + 2, device)
    queue: list[tuple] = []
    for owner, index, feats, lengths in window_batches(items, size):
        with audio_rng.active():
            out = predictor.audio_model(torch.as_tensor(feats, device=device),
                                        torch.as_tensor(lengths, device=device))
        for k, value in enumerate(out["pred"].float().cpu().numpy()):
            scores[owner[k]].arousal[index[k]] = value
        queue += [(owner[k], index[k], feats[k], lengths[k],
                   (out["hidden"][k], out["mask"][k]) if predictor.shared_audio else None)
                  for k in range(len(owner)) if owner[k] in text_out["rows"]]
        while len(queue) >= size:
            _fuse(predictor, queue[:size], text_out, scores, fusion_rng)
            queue = queue[size:]
    if queue:
        _fuse(predictor, queue, text_out, scores, fusion_rng)
    return scores


def _fuse(predictor: Predictor, rows: list[tuple], text_out: dict, scores: list[WindowScores],
          rng: RngStream) -> None:
    """Classifier over one batch of queued windows -> their class probabilities."""
    import torch

    device = predictor.device
    with rng.active():
        if predictor.shared_audio:
            a_hidden = torch.stack([row[4][0] for row in rows])
            a_mask = torch.stack([row[4][1] for row in rows])
        else:
            inner = predictor.classifier.AudioModel(
                torch.as_tensor(np.stack([row[2] for row in rows]), device=device),
                torch.as_tensor(np.array([row[3] for row in rows]), device=device))
            a_hidden, a_mask = inner["hidden"], inner["mask"]
        t_rows = torch.as_tensor([text_out["rows"][row[0]] for row in rows], device=device)
        logits = predictor.classifier(a_hidden, a_mask, text_out["hidden"][t_rows],
                                      text_out["mask"][t_rows])["logits"]
    for row, probs in zip(rows, torch.softmax(logits.float(), dim=-1).cpu().numpy()):
        scores[row[0]].probabilities[row[1]] = probs
