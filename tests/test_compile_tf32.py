"""train.compile (CUDA graphs for the text stage) falls back cleanly off CUDA; train.tf32 is
CUDA-only and a no-op on the CPU."""
from __future__ import annotations

import json

import pytest
import torch

from koemo.config.load import load_config
from koemo.errors import KoemoInputError
from koemo.modeling import precision as P

CPU = torch.device("cpu")


def test_reduce_overhead_trains_uncompiled_on_a_cpu_with_one_note(capsys):
    model = torch.nn.Linear(2, 2)
    assert P.compiled_model(model, "reduce-overhead", "text", CPU) is model
    assert P.compiled_model(model, {"text": "reduce-overhead"}, "audio", CPU) is model
    assert P.compiled_model(model, False, "text", CPU) is model
    notes = capsys.readouterr().out.strip().splitlines()
    assert len(notes) == 1 and "train.compile=reduce-overhead" in notes[0] and "text" in notes[0]


def test_a_torch_without_compile_trains_uncompiled(monkeypatch, capsys):
    def unavailable(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")
    monkeypatch.setattr(torch, "compile", unavailable)
    model = torch.nn.Linear(2, 2)
    assert P.compiled_model(model, True, "audio", torch.device("cuda")) is model
    assert "torch.compile is not available here" in capsys.readouterr().out


def test_compile_settings():
    assert P.compile_mode(True, "text") == "default"
    assert P.compile_mode({"text": "reduce-overhead"}, "text") == "reduce-overhead"
    assert P.compile_mode({"text": "reduce-overhead"}, "audio") is None
    with pytest.raises(KoemoInputError, match="train.compile: \"fastest\" is not allowed"):
        load_config("tiny", ["train.compile=fastest"])


@pytest.fixture
def tf32_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_a_no_op_on_the_cpu_and_switches_both_flags_on_cuda(tf32_flags):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    assert P.configure_tf32(True, CPU) is False
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert P.configure_tf32(True, torch.device("cuda")) is True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert P.configure_tf32(False, torch.device("cuda")) is False
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    with pytest.raises(KoemoInputError, match="train.tf32"):
        load_config("tiny", ["train.tf32=fast"])


@pytest.mark.slow
def test_text_stage_with_cuda_graphs_asked_for_trains_the_same_on_a_cpu(module_workdir, capsys):
    from koemo.modeling.train import train_stage

    runs = {}
    for name, extra in (("plain", []), ("graphs", ["train.compile={text: reduce-overhead}",
                                                   "train.tf32=true"])):
        cfg = load_config("tiny", [f"name={name}", "train.device=cpu", *extra])
        run_dir = train_stage("text", module_workdir, cfg, seed=1, progress=False)
        runs[name] = run_dir
    out = capsys.readouterr().out
    assert out.count("train.compile=reduce-overhead") == 1
    read = lambda run, f: json.loads((runs[run] / f).read_text())     # noqa: E731
    assert read("plain", "log.json") == [
        {**row, "seconds": plain["seconds"]}
        for row, plain in zip(read("graphs", "log.json"), read("plain", "log.json"))]
    assert read("plain", "test_metrics.json") == read("graphs", "test_metrics.json")
    assert read("graphs", "run.json")["tf32"] is False          # the CPU has no TF32
