"""Worker processes for independent runs: CPU thread shares, one GPU per worker.

`run_plan` trains a plan's runs in spawned worker processes when more than one should train at a
time. On CPU each worker gets an equal share of the threads (`reproduce.parallel_runs`). With N
CUDA GPUs visible (and `train.device` auto or cuda) a plan trains N runs at once and each worker
sees exactly one GPU: its CUDA_VISIBLE_DEVICES is set to one of the parent's visible devices
before torch initialises CUDA, so `cuda` / `cuda:0` inside the run is that GPU.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries (ids or UUIDs)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count <= 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    # CUDA_VISIBLE_DEVICES renumbers: device k of this process is entry k of the list.
    return listed[:count] if len(listed) >= count else [str(k) for k in range(count)]


def plan_workers(cfg: dict, parallel_runs: int | None) -> tuple[int, list[str]]:
    """(worker count, GPUs to pin workers to). Explicit `parallel_runs` wins; else with >= 2
    GPUs visible one run per GPU; else `reproduce.parallel_runs` (CPU), default 1."""
    device = str(cfg.train.device)
    gpus = visible_gpus() if device in ("auto", "cuda") else []
    if parallel_runs is None:
        parallel_runs = len(gpus) if len(gpus) > 1 else \
            int(cfg.reproduce.parallel_runs)
    return max(1, int(parallel_runs)), gpus if len(gpus) > 1 else []


def _init_worker(threads: int, gpu_queue) -> None:
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
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads, queue))
