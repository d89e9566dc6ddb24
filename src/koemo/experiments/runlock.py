"""One trainer per run directory: a lock file inside every run directory.

Several workers may share one workdir: two `koemo reproduce` on one machine, the worker
processes of `reproduce.parallel_runs`, the lines of `koemo plan --export` spread over a
scheduler, a SLURM job array. Whoever trains a run holds `<run dir>/.koemo-run.lock` (an OS lock
from `filelock`: the kernel releases it when its holder dies, so a killed worker, e.g. a Colab
disconnect, never leaves a stale lock behind). A second worker either skips the run for now
(`blocking=False`) or waits for it (`blocking=True`) and then finds it finished.

File systems without `flock` support (some FUSE mounts) raise NotImplementedError in filelock;
there the lock is skipped with a warning, which is safe for one worker at a time (Colab).

A multi-process launch (`torchrun`, `accelerate launch`: WORLD_SIZE > 1) is one worker training
one run together: its main process holds the lock and decides (train, finished, busy), and the
other processes follow that decision (broadcast through accelerate). Were every process to take
the lock, the first would train and wait for the others, which wait for the lock: a deadlock.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from koemo.config.schema import Config, FusionKind, Stage

log = logging.getLogger(__name__)


def lock_path(run_dir: str | Path) -> Path:
    from koemo.modeling.runs import RunDir
    return RunDir(run_dir).lock


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


def train_once(stage: Stage, workdir: str | Path, cfg: Config, seed: int, *,
               classifier_kind: FusionKind = "attention_lstm", out_dir: str | Path | None = None,
               resume: bool = True, progress: bool = True, blocking: bool = True,
               train: Callable[..., object] | None = None) -> tuple[str, Path]:
    """Train one run unless it is finished or another worker holds it.

    Returns (status, run_dir) with status `trained`, `finished` (found finished under the lock:
    someone else trained it) or `busy` (held by another worker; only when blocking=False).
    `train` (default: koemo.modeling.train.train_stage) is called as
    train(stage, workdir, cfg, seed, out_dir=, resume=, classifier_kind=, progress=)."""
    from koemo.modeling.resume import run_is_finished
    from koemo.modeling.runs import run_dir_for
    from koemo.modeling.train import train_stage

    run_dir = Path(out_dir) if out_dir is not None else run_dir_for(workdir, cfg, stage, seed,
                                                                     classifier_kind)
    launch = launch_state(cfg)
    is_main = launch is None or launch.is_main_process
    with hold_run(run_dir, blocking=blocking) if is_main else contextlib.nullcontext(True) as held:
        status = None
        if is_main and not held:
            status = "busy"
        elif is_main and resume and run_is_finished(run_dir, cfg, stage, workdir):
            status = "finished"
        if launch is not None:
            from accelerate.utils import broadcast_object_list
            status = broadcast_object_list([status], from_process=0)[0]
        if status is not None:
            return status, run_dir
        (train or train_stage)(stage, workdir, cfg, seed, out_dir=out_dir, resume=resume,
                               classifier_kind=classifier_kind, progress=progress)
        return "trained", run_dir


def launch_state(cfg: Config) -> Any:
    """accelerate's PartialState under a multi-process launch (WORLD_SIZE > 1), else None.
    Such a launch needs accelerate: without it every process would train the whole run."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    try:
        from accelerate import PartialState
    except ImportError:
        from koemo.errors import KoemoInputError
        raise KoemoInputError(f"a launch of {world} processes (WORLD_SIZE={world}) trains one run "
                              "together through accelerate, which is not installed: "
                              "pip install 'koemo[gpu]'") from None
    from koemo.modeling.precision import resolve_device
    return PartialState(cpu=resolve_device(cfg.train.device).type == "cpu")


def end_launch(wait_for_others: bool = True) -> None:
    """The end of a multi-process launch: every process waits for the others, then leaves the
    process group (a process exiting with the group still up can abort in gloo's threads)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()
