"""Worker processes for independent runs: CPU thread shares, one GPU per worker.

`run_plan` trains a plan's runs in spawned worker processes when more than one should train at a
time. On CPU each worker gets an equal share of the threads (`reproduce.parallel_runs`). With N
CUDA GPUs visible (and `train.device` auto or cuda) a plan trains N runs at once and each worker
sees exactly one GPU: its CUDA_VISIBLE_DEVICES is set to one of the parent's visible devices
before torch initialises CUDA, so `cuda` / `cuda:0` inside the run is that GPU.

Workers die with the process that started them: a `kill -9` of `koemo reproduce` (its kernel
exits within a second by ipykernel's own parent poll) must not leave them training or idle,
re-parented to init. On Linux the kernel sends them SIGKILL (PR_SET_PDEATHSIG); everywhere a
watchdog thread exits them once their parent pid changes.

Every run of a parallel plan trains with the same thread count, in a worker or (a lone run)
in the plan's own process (`run_threads`): CPU kernels sum in thread-count-dependent order, so
a run resumed alone after a kill would otherwise differ from the uninterrupted one at ~1e-8.

`reproduce.runs_per_device` (auto | N) trains N runs at once on each device: N workers share
one GPU (a run at batch 16 leaves most of it idle). `auto` picks N on a GPU from its free memory
and the stage's estimated footprint (koemo.experiments.footprint); on the CPU it keeps
`reproduce.parallel_runs`.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from koemo.config.schema import Config, Stage

PR_SET_PDEATHSIG = 1        # linux/prctl.h
PARENT_POLL_SECONDS = 0.5


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries (ids or UUIDs)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count <= 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    # CUDA_VISIBLE_DEVICES renumbers: device k of this process is entry k of the list.
    return listed[:count] if len(listed) >= count else [str(k) for k in range(count)]


def plan_workers(cfg: Config, parallel_runs: int | None, stages: Sequence[Stage] = (),
                 workdir: str | Path | None = None) -> tuple[int, list[str]]:
    """(worker count, GPUs to pin workers to). Explicit `parallel_runs` wins; else with GPUs
    visible `reproduce.runs_per_device` runs on each (auto: as many of `stages`' runs as fit
    its free memory); else N = runs_per_device on the one device, or `reproduce.parallel_runs`
    (CPU), default 1."""
    from koemo.experiments.footprint import parse_runs_per_device

    device = str(cfg.train.device)
    gpus = visible_gpus() if device in ("auto", "cuda") else []
    per_device = parse_runs_per_device(cfg.reproduce.runs_per_device)
    if parallel_runs is None:
        if gpus:
            parallel_runs = len(gpus) * (per_device or runs_per_gpu(cfg, stages, workdir, gpus))
        else:
            parallel_runs = per_device or int(cfg.reproduce.parallel_runs)
    return max(1, int(parallel_runs)), gpus if len(gpus) > 1 else []


def device_free_bytes(gpu_count: int) -> int:
    """The least free memory of the visible GPUs (the parent's own CUDA context included)."""
    import torch

    return min(torch.cuda.mem_get_info(k)[0] for k in range(gpu_count))


def runs_per_gpu(cfg: Config, stages: Sequence[Stage], workdir: str | Path | None,
                 gpus: list[str]) -> int:
    """How many runs of the largest of `stages` fit on each GPU at once (a printed note says
    why); 1 when no stage is named."""
    from koemo.experiments.footprint import run_footprint_bytes, runs_that_fit, workdir_rows

    if not stages:
        return 1
    rows = workdir_rows(workdir, cfg)
    footprint = max(run_footprint_bytes(cfg, stage, rows) for stage in stages)
    free = device_free_bytes(len(gpus))
    count = runs_that_fit(free, footprint)
    print(f"[koemo] {count} run(s) per GPU at once: {free / 2**30:.1f} GiB free, about "
          f"{footprint / 2**30:.2f} GiB per {'/'.join(stages)} run "
          f"(reproduce.runs_per_device: auto)", flush=True)
    return count


def thread_share(workers: int) -> int:
    """Torch threads of each of `workers` runs trained at once on this machine."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextlib.contextmanager
def run_threads(workers: int) -> Iterator[None]:
    """Inside: torch uses a worker's thread share (for a run of a parallel plan trained in this
    process); nothing changes for a plan of one worker at a time."""
    import torch

    if workers <= 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(thread_share(workers))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as `parent_pid` is no longer its parent (see module doc)."""
    if sys.platform.startswith("linux"):
        # Sent when the thread that spawned us ends: ProcessPoolExecutor spawns from the thread
        # that submits, which outlives the pool.
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:          # died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="koemo-parent-watch", daemon=True).start()


def _init_worker(threads: int, gpu_queue: Any, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    if gpu_queue is not None:
        # Before torch touches CUDA: this worker sees one device, which it calls cuda:0.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    import torch

    torch.set_num_threads(threads)


def worker_pool(workers: int, gpus: list[str] | None = None) -> ProcessPoolExecutor:
    """`workers` spawned processes; with `gpus`, worker k is pinned to gpus[k % len(gpus)]."""
    context = multiprocessing.get_context("spawn")
    queue = None
    if gpus:
        queue = context.Queue()
        for k in range(workers):
            queue.put(gpus[k % len(gpus)])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(thread_share(workers), queue, os.getpid()))
