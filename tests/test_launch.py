"""A multi-process launch of `koemo train` (torchrun, two CPU processes over gloo): the
processes train the run together under one run lock, a finished run is left alone, and a
launch without accelerate stops with a clear error instead of training the run twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from koemo.errors import KoemoInputError


def torchrun(workdir, *extra, timeout=600):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "-m", "koemo.cli", "train", "audio", "--config", "tiny", "--workdir", str(workdir),
               "--no-progress", "--set", "train.audio.epochs=1", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_two_processes_train_one_run_together(module_workdir):
    first = torchrun(module_workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = module_workdir / "runs" / "paper" / "tiny" / "audio" / "seed1"
    log = json.loads((run_dir / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1]
    assert (run_dir / "test_metrics.json").is_file()
    written = (run_dir / "log.json").stat().st_mtime_ns
    again = torchrun(module_workdir)             # finished: both processes leave it alone
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run_dir / "log.json").stat().st_mtime_ns == written


def test_a_launch_without_accelerate_is_a_clear_error(monkeypatch):
    from koemo.config.load import load_config
    from koemo.experiments.runlock import launch_state

    cfg = load_config("tiny")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch_state(cfg) is None                          # one process: no launch
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "accelerate", None)      # import fails as if not installed
    with pytest.raises(KoemoInputError, match="WORLD_SIZE=2.*accelerate.*koemo\\[gpu\\]"):
        launch_state(cfg)
