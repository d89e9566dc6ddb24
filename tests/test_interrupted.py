"""A `koemo reproduce` killed with SIGKILL: nothing of it survives (kernel, training workers,
temp files), and resuming gives the tables of an uninterrupted run, byte for byte; relative
paths of the command line are taken from the current folder."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from koemo.config import assets
from koemo.reporting import notebook
from koemo.reporting import reproduce as R

# Three audio runs on two workers (the tiny config's parallel_runs), paper protocol.
RUNS_OVERRIDES = ["reproduce.protocols=[paper]", "reproduce.variants=[faithful]",
                  "reproduce.seeds=[1,2,3]", "reproduce.parallel_runs=2", "train.audio.epochs=6"]
SCRIPT = ("import sys; from koemo.reporting.reproduce import reproduce; "
          "reproduce('tiny', sys.argv[1], sys.argv[2], synthetic=True, overrides=sys.argv[3:], "
          "only=['2-1'])")


def _start(root: Path) -> subprocess.Popen:
    """A reproduce of notebook 2-1 over `root`/work (a copy of the prepared tiny workdir),
    with its own temp folder `root`/tmp."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(root / "tmp")}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(root / "work"), str(root / "paper"),
                             *RUNS_OVERRIDES], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def _survivors(processes: list[psutil.Process], seconds: float) -> list[str]:
    """Those of `processes` still alive after up to `seconds` (zombies count as gone)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return [f"{p.pid}: {' '.join(p.cmdline())[:120]}" for p in alive]
        time.sleep(0.1)


def _kill_all(processes: list[psutil.Process]) -> None:
    for p in processes:      # only the processes this test started
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _seed_dirs(work: Path) -> list[Path]:
    return sorted((work / "runs" / "paper" / "tiny" / "audio").glob("seed*"))


def _wait_for_lone_unfinished_run(proc: subprocess.Popen, work: Path) -> Path:
    """The moment two runs are finished and the third has saved an epoch: resumed, it is the
    only run left, so it trains in the plan's own process instead of a worker."""
    deadline = time.monotonic() + 600
    while True:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "reproduce hung: no run saved an epoch in 600 s"
        seeds = _seed_dirs(work)
        finished = [d for d in seeds if (d / "test_metrics.json").is_file()]
        assert len(finished) < 3, "killed too late: every run had finished"
        started = [d for d in seeds if d not in finished
                   and (d / "state" / "training_state.pt").is_file()]
        if len(finished) == 2 and started:
            return started[0]
        time.sleep(0.02)


@pytest.mark.slow
def test_reproduce_killed_leaves_nothing_and_resumes_to_the_same_tables(tmp_path, tiny_workdir):
    for name in ("fresh", "killed"):
        shutil.copytree(tiny_workdir, tmp_path / name / "work", ignore=shutil.ignore_patterns("runs"))
    fresh = _start(tmp_path / "fresh")                                  # meanwhile
    proc = _start(tmp_path / "killed")
    lone = _wait_for_lone_unfinished_run(proc, tmp_path / "killed" / "work")
    family = psutil.Process(proc.pid).children(recursive=True)   # kernel, workers, tracker
    assert len(family) >= 3, family
    os.kill(proc.pid, signal.SIGKILL)        # the reproduce process only, as `kill -9 PID`
    proc.wait()
    try:
        assert _survivors(family, 10) == []
    finally:
        _kill_all(family)
    assert any((tmp_path / "killed" / "tmp").iterdir()), "the kill left no temp files to clean"

    again = _start(tmp_path / "killed")
    log = again.communicate(timeout=900)[0]
    assert again.returncode == 0, log[-3000:]
    assert "left by an interrupted run" in log
    assert list((tmp_path / "killed" / "tmp").iterdir()) == []
    log = fresh.communicate(timeout=900)[0]
    assert fresh.returncode == 0, log[-3000:]

    import json
    assert [row["epoch"] for row in json.loads((lone / "log.json").read_text())] == list(range(1, 7))
    # What runs_main.csv & co. print unrounded: every run's test metrics and predictions.
    for fresh_run, resumed_run in zip(_seed_dirs(tmp_path / "fresh" / "work"),
                                      _seed_dirs(tmp_path / "killed" / "work"), strict=True):
        for name in ("test_metrics.json", "test_predictions.parquet"):
            assert (resumed_run / name).read_bytes() == (fresh_run / name).read_bytes(), \
                (resumed_run.name, name)
    tables = {p.name: p.read_bytes() for p in (tmp_path / "fresh" / "paper" / "tables").iterdir()}
    resumed = {p.name: p.read_bytes() for p in (tmp_path / "killed" / "paper" / "tables").iterdir()}
    assert any(name.startswith("audio_") for name in tables)
    assert sorted(resumed) == sorted(tables)
    assert [name for name in tables if resumed[name] != tables[name]] == []


def _kernel_of(proc: subprocess.Popen) -> psutil.Process:
    """The notebook kernel `proc` started, once it runs."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no kernel started within 120 s"
        kernels = [p for p in psutil.Process(proc.pid).children()
                   if "ipykernel" in " ".join(p.cmdline())]
        if kernels:
            return kernels[0]
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_reproduce_stopped_by_a_signal_says_so_in_one_line(tmp_path, signum):
    """Ctrl-C (SIGINT to the terminal's process group) or a scheduler's SIGTERM during the
    first notebook: one plain line on stderr naming the notebook, exit 128 + signal, and the
    kernel gone with the temp folder."""
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.Popen([sys.executable, "-m", "koemo", "reproduce", "--config", "tiny",
                             "--synthetic", "--workdir", str(tmp_path / "w"),
                             "--out", str(tmp_path / "paper"), "--only", "1-1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    kernel = _kernel_of(proc)
    os.killpg(proc.pid, signum)          # as the terminal sends Ctrl-C: to the process group
    out, err = proc.communicate(timeout=120)
    try:
        assert _survivors([kernel], 10) == []
    finally:
        _kill_all([kernel])
    assert proc.returncode == 128 + signum, (out, err)
    assert "Traceback" not in err and "\x1b[" not in err, err
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM"
    assert err.splitlines() == [f"koemo reproduce: stopped by {name} in notebook "
                                "1-1_data_aggregation; the work of finished steps is kept: the "
                                "same command resumes the run"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_signal_ends_only_the_processes_started_inside(tmp_path):
    """What reproduce started (kernel, workers) dies with the signal; a process of the caller's
    that was there before lives on; the caller gets Interrupted naming the work."""
    from koemo.errors import Interrupted

    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    older = subprocess.Popen(sleeper)
    newer = None
    try:
        with pytest.raises(Interrupted) as stopped:
            with R.stop_children_on_signal({"what": "notebook 2-1_audio_arousal"}):
                newer = subprocess.Popen(sleeper)
                started = psutil.Process(newer.pid)
                os.kill(os.getpid(), signal.SIGTERM)
        assert (stopped.value.signum, stopped.value.what) == (signal.SIGTERM,
                                                              "notebook 2-1_audio_arousal")
        assert _survivors([started], 10) == []
        assert older.poll() is None
        assert signal.getsignal(signal.SIGTERM) is not None     # the caller's handler is back
    finally:
        for proc in (older, newer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_train_stopped_by_ctrl_c_says_so_in_one_line(module_workdir, tmp_path):
    """`koemo train` interrupted in its first epoch: one line naming the run, exit 130."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "koemo", "train", "audio", "--workdir",
                             str(module_workdir), "--config", "tiny", "--out", str(run),
                             "--set", "train.audio.epochs=500", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (run / "run.json").is_file():        # written as training starts
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not start within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err.splitlines() == [f"koemo train: stopped by Ctrl-C (SIGINT) in run {run}; its "
                                "finished epochs are kept: the same command resumes the run"]


WORKERS_SCRIPT = """
import os, time
from koemo.experiments.workers import worker_pool
if __name__ == '__main__':
    pool = worker_pool(2)
    futures = [pool.submit(time.sleep, 120) for _ in range(2)]
    print('submitted', flush=True)
    time.sleep(120)
"""


def test_workers_die_with_the_process_that_started_them(tmp_path):
    """The fast version: the owner of a worker pool (in reproduce: the notebook kernel) gets
    SIGKILL while its workers are busy; they do not outlive it."""
    script = tmp_path / "owner.py"
    script.write_text(WORKERS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert owner.stdout.readline().strip() == "submitted"
    deadline = time.monotonic() + 120
    workers = []
    while len(workers) < 2:         # both spawned
        assert time.monotonic() < deadline, "the workers were not spawned within 120 s"
        workers = [p for p in psutil.Process(owner.pid).children()
                   if "resource_tracker" not in " ".join(p.cmdline())]
        time.sleep(0.2)
    time.sleep(5)                   # through their start-up: the pool's tasks are running
    family = psutil.Process(owner.pid).children(recursive=True)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    try:
        assert _survivors(family, 10) == []
    finally:
        _kill_all(family)


def test_a_lone_run_of_a_parallel_plan_trains_with_a_workers_threads(module_workdir, monkeypatch):
    """Resumed after a kill, the one run left trains in the plan's process: with the thread
    share it had in a worker, or its sums (and so its losses) differ at ~1e-8."""
    import json

    import torch

    from koemo.config.load import load_config
    from koemo.experiments import plan as P
    from koemo.modeling.runs import run_dir_for

    cfg = load_config("tiny", ["reproduce.protocols=[paper]", "reproduce.variants=[faithful]"])
    spec = P.main_plan(cfg, ["audio"])[0]
    seen = []

    def fake_train(spec, workdir, progress, blocking=True):
        seen.append(torch.get_num_threads())
        run_dir = run_dir_for(workdir, spec.cfg, spec.stage, spec.seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "test_metrics.json").write_text(json.dumps({"rmse": 1.0}))
        return "trained"

    monkeypatch.setattr(P, "_train_locked", fake_train)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    torch.set_num_threads(1)
    P.run_plan([spec], module_workdir, progress=False, parallel_runs=2)
    assert seen == [4]                      # 8 cores, two workers' worth
    assert torch.get_num_threads() == 1     # and the process's own count back afterwards


def test_temp_folders_of_killed_runs_are_removed_at_the_next_start(tmp_path, monkeypatch):
    import tempfile

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()                                             # a pid no longer alive
    dead = tmp_path / f"{R.TEMP_PREFIX}{done.pid}-x1"
    live = tmp_path / f"{R.TEMP_PREFIX}{os.getppid()}-x2"   # a process still running
    for folder in (dead, live):
        (folder / "sub").mkdir(parents=True)
        (folder / "kernel-1.json").write_text("{}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with R.private_tempdir() as folder:
        assert os.environ["TMPDIR"] == str(folder) == tempfile.gettempdir()
        assert folder.parent == tmp_path and folder.name.startswith(f"{R.TEMP_PREFIX}{os.getpid()}-")
        assert not dead.exists() and live.is_dir()
    assert not folder.exists()
    assert tempfile.gettempdir() == str(tmp_path)


def test_command_line_paths_are_taken_from_the_current_folder(tmp_path, monkeypatch):
    from koemo import cli
    from koemo.reporting import reproduce as module

    calls = []
    monkeypatch.setattr(module, "reproduce", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text("base: tiny.yaml\n")
    assert cli.main(["reproduce", "--synthetic", "--config", "my.yaml", "--workdir", "w",
                     "--out", "out/paper", "--data", "corpus"]) == 0
    (config, workdir, out), kwargs = calls[0]
    assert (Path(config), workdir, out, kwargs["data_root"]) == \
        (tmp_path / "my.yaml", tmp_path / "w", tmp_path / "out" / "paper", tmp_path / "corpus")


def test_notebooks_keep_their_rule_and_both_print_the_absolute_paths(tmp_path, monkeypatch,
                                                                      capsys):
    checkout = tmp_path / "drive" / "koemo"
    monkeypatch.chdir(tmp_path)                           # not a checkout
    monkeypatch.setattr(assets, "source_checkout", lambda: checkout)
    monkeypatch.setattr(__import__("tempfile"), "tempdir", str(tmp_path))
    R.reproduce("tiny", "w", "o", synthetic=True, only=["none"])
    assert f"workdir {checkout / 'w'}, out {checkout / 'o'}" in capsys.readouterr().out
    notebook.start("tiny", "w", "o")
    assert f"WORKDIR {checkout / 'w'}, OUT {checkout / 'o'}" in capsys.readouterr().out
