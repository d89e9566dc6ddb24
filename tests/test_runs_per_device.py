"""Several runs per device (`reproduce.runs_per_device`): the footprint estimate, the count
`auto` picks from a device's free memory, and a plan trained N at a time on one device."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from koemo.config.load import load_config, text_input_dim
from koemo.errors import KoemoInputError
from koemo.experiments import footprint, workers
from koemo.experiments import plan as ex
from tests.builders import regressors

GIB = 2**30


def test_parameter_counts_are_the_models_own(tiny_config):
    from koemo.modeling.models import AudioRegressor, TextRegressor, trainable_parameters

    audio, text = regressors(tiny_config)
    assert footprint.parameter_counts(tiny_config, "audio") == (trainable_parameters(audio), 0)
    assert footprint.parameter_counts(tiny_config, "text") == (trainable_parameters(text), 0)
    head, frozen = footprint.parameter_counts(tiny_config, "multimodal")
    assert frozen == trainable_parameters(audio) + trainable_parameters(text) and head > 0


def _saved_bytes(model, *inputs) -> int:
    """Bytes of the distinct tensors autograd keeps for one forward (what backward reads),
    the weights (counted apart) left out."""
    seen, weights = {}, {p.data_ptr() for p in model.parameters()}

    def pack(t):
        if t.data_ptr() not in weights:
            seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*inputs)["pred"].sum()
    return sum(seen.values())


@pytest.mark.parametrize("stage", ["audio", "text"])
def test_activation_estimate_bounds_what_autograd_keeps(tiny_config, stage):
    """At the config's padded shapes the estimate is above what a training forward keeps, and
    not wildly so (within 4x)."""
    from koemo.modeling.models import AudioRegressor, TextRegressor

    cfg = tiny_config
    batch, steps = cfg.train.stage(stage).batch_size, footprint.sequence_length(cfg, stage)
    torch.manual_seed(0)
    if stage == "audio":
        model = AudioRegressor(cfg.models, cfg.fixes).train()
        feats = torch.randn(batch, 2, steps, cfg.features.n_mels)
        saved = _saved_bytes(model, feats, torch.full((batch,), steps))
    else:
        model = TextRegressor(cfg.models, cfg.fixes).train()
        states = torch.randn(batch, steps, text_input_dim(cfg.models))
        saved = _saved_bytes(model, states, torch.ones(batch, steps, dtype=torch.long))
    estimate = footprint.activation_bytes(cfg, stage)
    assert saved <= estimate <= 4 * saved


def test_footprint_adds_weights_optimizer_activations_data_and_context(tiny_config):
    trainable, frozen = footprint.parameter_counts(tiny_config, "multimodal")
    expected = ((trainable * 4 + frozen) * 4 + footprint.activation_bytes(tiny_config, "multimodal")
                + footprint.data_bytes(tiny_config, "multimodal", 100)
                + footprint.CUDA_CONTEXT_BYTES)
    assert footprint.run_footprint_bytes(tiny_config, "multimodal", 100) == expected
    doubled = load_config("tiny", ["train.audio.batch_size=32"])
    assert footprint.activation_bytes(doubled, "audio") == 2 * footprint.activation_bytes(tiny_config, "audio")
    # float16 mel + delta: rows x frames x 2 channels x bins x 2 bytes
    bins = tiny_config.features.n_mels
    assert footprint.data_bytes(tiny_config, "audio", 10) == 10 * 64 * 2 * bins * 2


def test_runs_that_fit_share_the_free_memory():
    assert footprint.runs_that_fit(5 * GIB, 1 * GIB) == 4          # 80% of 5 GiB
    assert footprint.runs_that_fit(100 * GIB, 1 * GIB) == footprint.MAX_RUNS_PER_DEVICE
    assert footprint.runs_that_fit(GIB // 2, 1 * GIB) == 1         # one run, as before
    assert footprint.runs_that_fit(10 * GIB, 1 * GIB, cap=3) == 3


def _fake_gpus(monkeypatch, ids, free_bytes):
    monkeypatch.setattr(workers, "visible_gpus", lambda: list(ids))
    monkeypatch.setattr(workers, "device_free_bytes", lambda count: free_bytes)


def test_auto_chooses_runs_per_gpu_from_free_memory(monkeypatch, tiny_workdir):
    cfg = load_config("tiny")
    rows = footprint.workdir_rows(tiny_workdir, cfg)
    assert rows > 0 and footprint.workdir_rows(tiny_workdir, load_config(
        "tiny", ["train.resident=false"])) == 0                      # data stays on the host
    largest = max(footprint.run_footprint_bytes(cfg, s, rows) for s in ("audio", "text"))
    _fake_gpus(monkeypatch, ["0"], int(3.1 * largest / footprint.MEMORY_SHARE))
    assert workers.plan_workers(cfg, None, ["audio", "text"], tiny_workdir) == (3, [])
    _fake_gpus(monkeypatch, ["0", "1"], int(3.1 * largest / footprint.MEMORY_SHARE))
    assert workers.plan_workers(cfg, None, ["audio", "text"], tiny_workdir) == (6, ["0", "1"])
    _fake_gpus(monkeypatch, ["0"], largest // 2)
    assert workers.plan_workers(cfg, None, ["audio"], tiny_workdir) == (1, [])
    fixed = load_config("tiny", ["reproduce.runs_per_device=5"])
    assert workers.plan_workers(fixed, None, ["audio"], tiny_workdir) == (5, [])
    assert workers.plan_workers(fixed, 2, ["audio"], tiny_workdir) == (2, [])   # explicit wins


def test_cpu_keeps_parallel_runs_unless_a_count_is_given(monkeypatch):
    monkeypatch.setattr(workers, "visible_gpus", lambda: [])
    assert workers.plan_workers(load_config("tiny"), None, ["audio"]) == (2, [])   # parallel_runs
    assert workers.plan_workers(load_config("tiny", ["reproduce.runs_per_device=3"]),
                                None, ["audio"]) == (3, [])
    for bad in ("0", "many", "true"):
        with pytest.raises(KoemoInputError, match="reproduce.runs_per_device"):
            workers.plan_workers(load_config("tiny", [f"reproduce.runs_per_device={bad}"]), None)


def _audio_plan(cfg: dict, seeds) -> list:
    paper = ex.split_config(cfg, "paper")
    return [ex.RunSpec("audio", "faithful", "paper", seed, paper) for seed in seeds]


def _events(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "progress.jsonl").read_text().splitlines()]


def _most_at_once(events: list[dict]) -> int:
    """The most runs between their start and done events at any moment."""
    marks = sorted((e["time"], 1 if e["event"] == "start" else -1)
                   for e in events if e["event"] in ("start", "done"))
    running = most = 0
    for _, step in marks:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
def test_two_runs_per_device_train_each_run_once_with_the_same_results(
        tiny_workdir, tmp_path, monkeypatch):
    """Three runs, two at a time on the CPU device: never more than two at once, each run
    trained once, and the same table as training them one at a time."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)       # one thread per worker, as below
    cfg = load_config("tiny", ["reproduce.runs_per_device=2", "train.device=cpu",
                               "train.audio.epochs=1"])
    one, two = tmp_path / "one", tmp_path / "two"
    fresh = shutil.ignore_patterns("runs", "progress.jsonl")   # other tests' runs and events
    shutil.copytree(tiny_workdir, one, ignore=fresh)
    shutil.copytree(tiny_workdir, two, ignore=fresh)
    alone = ex.run_plan(_audio_plan(cfg, [1, 2, 3]), one, progress=False, parallel_runs=1)
    paired = ex.run_plan(_audio_plan(cfg, [1, 2, 3]), two, progress=False)
    events = _events(two)
    starts = [e["run"] for e in events if e["event"] == "start"]
    assert sorted(starts) == sorted(set(starts)) and len(starts) == 3     # each run once
    assert _most_at_once(events) <= 2
    metrics = [c for c in alone.columns if c != "run_dir"]
    pd_equal = alone[metrics].reset_index(drop=True).equals(paired[metrics].reset_index(drop=True))
    assert pd_equal, (alone[metrics], paired[metrics])
    again = ex.run_plan(_audio_plan(cfg, [1, 2, 3]), two, progress=False)
    assert [e["run"] for e in _events(two) if e["event"] == "start"] == starts   # none again
    assert again["rmse"].tolist() == paired["rmse"].tolist()
