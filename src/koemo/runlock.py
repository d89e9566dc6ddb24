"""One trainer per run directory: a lock file inside every run directory.

Several workers may share one workdir: two `koemo reproduce` on one machine, the worker
processes of `reproduce.parallel_runs`, the lines of `koemo plan --export` spread over a
scheduler, a SLURM job array. Whoever trains a run holds `<run dir>/.koemo-run.lock` (an OS lock
from `filelock`: the kernel releases it when its holder dies, so a killed worker, e.g. a Colab
disconnect, never leaves a stale lock behind). A second worker either skips the run for now
(`blocking=False`) or waits for it (`blocking=True`) and then finds it finished.

File systems without `flock` support (some FUSE mounts) raise NotImplementedError in filelock;
there the lock is skipped with a warning, which is safe for one worker at a time (Colab).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".koemo-run.lock"
log = logging.getLogger(__name__)


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOCK_NAME


@contextlib.contextmanager
def hold_run(run_dir: str | Path, blocking: bool = True) -> Iterator[bool]:
    """Hold the run directory's lock for the `with` body. Yields True when held, False when
    another worker holds it and `blocking` is False (the body must then leave the run alone)."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(run_dir)))
    try:
        lock.acquire(timeout=-1 if blocking else 0)
    except Timeout:
        yield False
        return
    except NotImplementedError as err:
        log.warning("%s: no file locking on this file system (%s); two workers on this workdir "
                    "could train this run twice", run_dir, err)
        yield True
        return
    try:
        yield True
    finally:
        lock.release()


def train_once(stage: str, workdir: str | Path, cfg: dict, seed: int, *,
               classifier_kind: str = "attention_lstm", out_dir: str | Path | None = None,
               resume: bool = True, progress: bool = True, blocking: bool = True,
               train=None) -> tuple[str, Path]:
    """Train one run unless it is finished or another worker holds it.

    Returns (status, run_dir) with status `trained`, `finished` (found finished under the lock:
    someone else trained it) or `busy` (held by another worker; only when blocking=False).
    `train` (default: koemo.modeling.train.train_stage) is called as
    train(stage, workdir, cfg, seed, out_dir=, resume=, classifier_kind=, progress=)."""
    from koemo.modeling.runs import run_dir_for, run_is_finished
    from koemo.modeling.train import train_stage

    run_dir = Path(out_dir) if out_dir is not None else run_dir_for(workdir, cfg, stage, seed,
                                                                     classifier_kind)
    with hold_run(run_dir, blocking=blocking) as held:
        if not held:
            return "busy", run_dir
        if resume and run_is_finished(run_dir, cfg, stage, workdir):
            return "finished", run_dir
        (train or train_stage)(stage, workdir, cfg, seed, out_dir=out_dir, resume=resume,
                               classifier_kind=classifier_kind, progress=progress)
        return "trained", run_dir
