"""train.precision: `auto` resolves per device (CUDA capability mocked), fp16 trains through a
gradient scaler, and on a CPU `auto` is exactly fp32."""
from __future__ import annotations

import json
from typing import get_args

import pandas as pd
import pytest
import torch

from koemo.config.load import load_config
from koemo.config.schema import Precision
from koemo.errors import KoemoInputError
from koemo.modeling import precision as P
from koemo.modeling.train import train_epoch, train_stage

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device whose bf16 support the test sets (Ampere+: yes; T4/V100: no)."""
    def install(bf16: bool, capability=(8, 0)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    return install


def test_auto_is_bf16_where_the_gpu_supports_it(fake_gpu):
    fake_gpu(bf16=True, capability=(8, 0))          # A100
    assert P.resolve_precision("auto", CUDA) == "bf16"
    assert P.grad_scaler_for(CUDA, "auto") is None  # bf16 needs no loss scaling


def test_auto_is_fp16_with_a_grad_scaler_on_older_gpus(fake_gpu):
    fake_gpu(bf16=False, capability=(7, 5))         # T4
    assert P.resolve_precision("auto", CUDA) == "fp16"
    assert isinstance(P.grad_scaler_for(CUDA, "auto"), torch.amp.GradScaler)
    assert isinstance(P.grad_scaler_for(CUDA, "fp16"), torch.amp.GradScaler)


def test_explicit_settings_are_kept_on_a_gpu(fake_gpu):
    fake_gpu(bf16=False)
    assert [P.resolve_precision(p, CUDA) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    assert P.grad_scaler_for(CUDA, "bf16") is None and P.grad_scaler_for(CUDA, "fp32") is None


def test_every_setting_is_fp32_on_a_cpu(fake_gpu):
    fake_gpu(bf16=True)                             # even with a GPU present
    for setting in get_args(Precision):
        assert P.resolve_precision(setting, CPU) == "fp32"
        assert P.grad_scaler_for(CPU, setting) is None
        with P.autocast_for(CPU, setting):
            assert not torch.is_autocast_enabled()


def test_unknown_precision_is_refused():
    with pytest.raises(KoemoInputError, match="train.precision: \"fp8\" is not allowed: must be "
                                              "fp32, bf16, fp16 or auto"):
        load_config("tiny", ["train.precision=fp8"])


def test_auto_device_follows_cuda_availability(fake_gpu):
    fake_gpu(bf16=True)
    assert P.resolve_device("auto").type == "cuda"


class CountingScaler:
    """Stands in for torch.amp.GradScaler on a CPU: records that the loop went through it."""
    def __init__(self):
        self.calls = []

    def scale(self, loss):
        self.calls.append("scale")
        return loss * 1.0

    def step(self, optimizer):
        self.calls.append("step")
        optimizer.step()

    def update(self):
        self.calls.append("update")


def test_train_epoch_steps_through_the_scaler():
    class Job:
        is_classifier = False

        @staticmethod
        def forward(model, batch, device):
            return model(batch["x"]).squeeze(-1)

    model = torch.nn.Linear(3, 1)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [{"x": torch.randn(4, 3), "target": torch.randn(4)} for _ in range(2)]
    scaler = CountingScaler()
    train_epoch(Job(), model, loader, optimizer, lambda out, t: ((out - t) ** 2).mean(), CPU,
                "fp32", scaler=scaler, progress=False)
    assert scaler.calls == ["scale", "step", "update"] * 2
    assert not torch.equal(before, model.weight)


@pytest.fixture(scope="module")
def workdir(module_workdir):
    return module_workdir


def test_auto_on_cpu_is_bit_identical_to_fp32(workdir, tmp_path):
    overrides = ["train.audio.epochs=2", "train.audio.batch_size=32", "train.device=cpu"]
    runs = {}
    for setting in ("fp32", "auto"):
        cfg = load_config("tiny", overrides + [f"train.precision={setting}"])
        runs[setting] = train_stage("audio", workdir, cfg, seed=1, out_dir=tmp_path / setting,
                                    progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(runs["fp32"] / "test_predictions.parquet"),
                                  pd.read_parquet(runs["auto"] / "test_predictions.parquet"),
                                  check_exact=True)
    logs = [pd.read_csv(runs[s] / "log.csv").drop(columns="seconds") for s in ("fp32", "auto")]
    pd.testing.assert_frame_equal(*logs, check_exact=True)
    for setting, run_dir in runs.items():
        assert json.loads((run_dir / "run.json").read_text())["precision"] == "fp32"
        assert json.loads((run_dir / "test_metrics.json").read_text())["precision"] == "fp32"
    from safetensors.torch import load_file
    weights = [load_file(runs[s] / "last" / "model.safetensors") for s in ("fp32", "auto")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
