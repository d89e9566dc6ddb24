"""Each epoch's files written by one background thread while the next epoch trains.

At paper shapes an epoch's files are large (the audio regressor's weights ~110 MB, the
multimodal checkpoint with its frozen regressors ~300 MB, the optimizer state twice the
trainable weights): serialising, hashing and writing them took 1-3 s per epoch on the
development CPU, a sizeable share of a GPU epoch. The training thread only takes CPU copies
(`checkpoint_snapshot`, `counters_snapshot`); the writer then writes, in the order a resume
relies on: `last/` weights, `best/` (a link to the same files when the epoch improved), the
log, and the training state last. A run killed at any point therefore leaves the files of a
whole epoch or a `last/` newer than the state, which `train_stage` detects
(`weights_match_state`) as before. A write error is raised in the training thread at the next
epoch or when the writer is closed.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable


def write_epoch_files(run_dir: Path, last: dict, improved: bool, log: list[dict],
                      state: dict) -> None:
    from koemo.modeling.checkpoint import copy_checkpoint, write_checkpoint, write_training_state
    from koemo.modeling.runs import RunDir

    run = RunDir(run_dir)
    write_checkpoint(run.last, last)
    if improved:
        copy_checkpoint(run.last, run.best)
    run.write_log(log)
    write_training_state(run.state, state)


class EpochWriter:
    """One writer thread (background=True) or writes in the caller's thread (False)."""

    def __init__(self, background: bool = True):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="koemo-epoch-writer") \
            if background else None
        self._pending: list[Future] = []

    def submit(self, function: Callable[..., object], *args: Any) -> None:
        self._raise_errors(wait=False)
        if self._pool is None:
            function(*args)
        else:
            self._pending.append(self._pool.submit(function, *args))

    def _raise_errors(self, wait: bool) -> None:
        done = [f for f in self._pending if wait or f.done()]
        self._pending = [f for f in self._pending if f not in done]
        for future in done:
            future.result()

    def wait(self) -> None:
        """Every submitted write finished (its error, if any, raised here)."""
        self._raise_errors(wait=True)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> "EpochWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
