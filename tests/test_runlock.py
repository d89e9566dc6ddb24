"""The run lock, fast (no training): `make test-fast` catches a lock that is never taken. The
slow scale-out test (tests/test_scaleout.py) runs real concurrent workers."""
from __future__ import annotations

import pytest

from koemo.config.load import load_config
from koemo.experiments.runlock import hold_run, lock_path, train_once


@pytest.fixture()
def cfg():
    return load_config("tiny")


def test_a_run_held_by_another_worker_is_busy_and_not_trained(cfg, tmp_path):
    calls = []
    run_dir = tmp_path / "run"
    with hold_run(run_dir) as held:
        assert held
        status, where = train_once("audio", tmp_path, cfg, 1, out_dir=run_dir, progress=False,
                                   blocking=False, train=lambda *a, **k: calls.append(a))
    assert (status, where, calls) == ("busy", run_dir, [])


def test_training_happens_under_the_lock(cfg, tmp_path):
    """While train runs, a second worker's non-blocking hold finds the run taken."""
    run_dir = tmp_path / "run"
    seen = []

    def train(*args, **kwargs):
        with hold_run(run_dir, blocking=False) as second:
            seen.append(second)

    assert train_once("audio", tmp_path, cfg, 1, out_dir=run_dir, progress=False,
                      train=train) == ("trained", run_dir)
    assert seen == [False] and lock_path(run_dir).parent == run_dir
    with hold_run(run_dir, blocking=False) as after:          # released once trained
        assert after
