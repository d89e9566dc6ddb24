"""Shared fixtures. The synthetic corpus and its prepared workdir are built once per test
session (tiny: a few sessions), so each test module stays fast."""
from __future__ import annotations

import os

# Before transformers is imported anywhere: never wait on an unreachable model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One intra-op thread in every process a test starts too (notebook kernels of `reproduce`,
# subprocess scripts, benchmarks' children), as single_torch_thread below gives the tests' own:
# tiny models gain nothing from threads, and on shared, oversubscribed cores a second thread
# spins (notebook 5-4 of the tiny reproduce: 85 s with torch's default two threads, 20 s with one,
# on the 2-core machine under load). Training workers set their own share (koemo.experiments.workers).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# A suite started in the background by a non-interactive shell (`bash -c 'make test' &`, some CI
# runners) inherits SIGINT ignored, and so would every process a test starts: the tests that
# press Ctrl-C on `koemo train` or a feature build would see it do nothing. A handler here is
# reset to the default in every child (exec keeps only ignored dispositions).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


_type_check: list[subprocess.Popen] = []     # mypy over src/koemo, started once


def _start_type_check() -> subprocess.Popen:
    """mypy as `make test` runs it (pyproject's [tool.mypy], from the checkout's root)."""
    if not _type_check:
        _type_check.append(subprocess.Popen(
            [sys.executable, "-m", "mypy"], cwd=Path(__file__).resolve().parents[1], text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return _type_check[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the type check (tests/test_types.py) beside the other tests when it is selected:
    most tests use one core (OMP_NUM_THREADS=1 above), and a cold mypy run takes ~40 s."""
    if any(item.nodeid.startswith("tests/test_types.py::test_src_type_checks") for item in items):
        _start_type_check()


def pytest_sessionfinish() -> None:
    """A run stopped early (-x, a failure) leaves no type check running behind it."""
    for process in _type_check:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="session")
def type_check() -> subprocess.Popen:
    """The whole-tree mypy run: already going when collection selected its test."""
    return _start_type_check()

TINY_SESSIONS = 5
TINY_UTTERANCES = 24


@pytest.fixture(scope="session")
def tiny_config():
    from koemo.config.load import load_config
    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_config):
    """A read-only synthetic KEMDy20-format corpus, with tiny.yaml's recordings without
    signal planted. Copy it before corrupting anything."""
    from koemo.synth import write_corpus
    root = tmp_path_factory.mktemp("corpus") / "KEMDy20_v1_1"
    write_corpus(root, sessions=TINY_SESSIONS, seed=0, utterances_per_session=TINY_UTTERANCES,
                 silent_recordings=tiny_config.synthetic.silent_recordings)
    return root


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory, tiny_corpus, tiny_config):
    """`koemo prepare` run once on the tiny corpus with the tiny config."""
    from koemo.dataset.prepare import prepare
    workdir = tmp_path_factory.mktemp("work")
    prepare(tiny_corpus, workdir, tiny_config, progress=False)
    return workdir


@pytest.fixture(scope="module")
def module_workdir(tiny_workdir, tmp_path_factory):
    """A private copy of the prepared tiny workdir (without runs) for one test module, so its
    runs never meet other modules' runs."""
    import shutil
    copy = tmp_path_factory.mktemp("module") / "work"
    shutil.copytree(tiny_workdir, copy, ignore=shutil.ignore_patterns("runs"))
    return copy


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny models gain nothing from threads, and oversubscribed cores make them very slow."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def one_thread_per_module():
    """One intra-op thread already for a module's module-scoped training fixtures (use with
    `pytestmark = pytest.mark.usefixtures("one_thread_per_module")`): single_torch_thread is
    function-scoped, so it starts only after they have run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def exported_predictor_dir(tmp_path_factory, tiny_workdir, tiny_config):
    """A predictor directory from one-epoch tiny runs, exported as a user would. The runs are
    the ones tests/test_predict.py trains (same config name, epochs and seed), so whichever
    module asks second reuses them (train_stage skips finished runs)."""
    from koemo.config.load import with_changes
    from koemo.modeling.train import train_stage
    from koemo.inference.export import export_from_workdir

    cfg = with_changes(tiny_config, {"name": "tiny-predict", "train": {
        stage: {"epochs": 1} for stage in ("audio", "text", "multimodal")}})
    for stage in ("audio", "text", "multimodal"):
        train_stage(stage, tiny_workdir, cfg, 1, progress=False)
    return export_from_workdir(tiny_workdir, cfg, 1, tmp_path_factory.mktemp("exported") / "tiny")


@pytest.fixture(scope="session")
def tiny_transcript(tiny_workdir):
    """A Korean transcript of the tiny corpus (the KoBERT stand-in knows its words)."""
    import pandas as pd

    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    return str(table.sort_values("segment_id").iloc[0]["text_raw"])


@pytest.fixture(scope="session")
def asr_predictor_dir(exported_predictor_dir):
    """The speech recognition and long-recording tests use the same exported tiny predictor."""
    return exported_predictor_dir


@pytest.fixture(scope="session")
def standin_whisper(tmp_path_factory):
    """A tiny random-weight Whisper directory (koemo.inference.asr_standin), loaded by path."""
    from koemo.inference.asr_standin import build_standin_whisper
    return build_standin_whisper(tmp_path_factory.mktemp("whisper") / "standin")


@pytest.fixture(scope="session")
def kemdy19_corpus(tmp_path_factory):
    """A read-only synthetic KEMDy19-format corpus (three sessions, its quirks planted)."""
    from koemo.synth.kemdy19 import write_corpus
    root = tmp_path_factory.mktemp("corpus19") / "KEMDy19"
    return write_corpus(root, sessions=3, utterances_per_session=30)


@pytest.fixture(scope="session")
def cross_study_corpus19(tmp_path_factory):
    """A synthetic KEMDy19 with all five session folds (the cross-corpus study's second corpus)."""
    from koemo.synth.kemdy19 import write_corpus
    return write_corpus(tmp_path_factory.mktemp("k19") / "KEMDy19", sessions=5,
                        utterances_per_session=20)


@pytest.fixture(scope="session")
def cross_study_config(tiny_config):
    """One fold, one epoch a stage: what is trained where does not depend on more. Its runs
    train in this process (parallel_runs 1): two spawned workers per plan cost more than these
    runs take to train (plans in workers: tests/test_experiments.py, tests/test_scaleout.py)."""
    from koemo.config.load import with_changes
    return with_changes(tiny_config, {"reproduce": {"folds": [0], "parallel_runs": 1}, "train": {
        stage: {"epochs": 1} for stage in ("audio", "text", "multimodal")}})


@pytest.fixture(scope="session")
def cross_study_workdir(tiny_workdir, tmp_path_factory):
    """A copy of the prepared tiny workdir (without runs) for the cross-corpus study."""
    import shutil
    workdir = tmp_path_factory.mktemp("study") / "work"
    shutil.copytree(tiny_workdir, workdir, ignore=shutil.ignore_patterns("runs"))
    return workdir


@pytest.fixture(scope="session")
def cross_study_watcher(cross_study_workdir):
    """What `koemo reproduce` shows of notebook 5-3, started before the study trains."""
    from koemo.reporting.reproduce import progress_watcher
    return progress_watcher(cross_study_workdir, "5-3_cross_corpus")


@pytest.fixture(scope="session")
def cross_study(cross_study_config, tiny_corpus, cross_study_workdir, cross_study_corpus19,
                cross_study_watcher):
    """(workdir, runs) of the cross-corpus study (notebook 5-3) trained once per session: its
    own tests (tests/test_cross_study.py) and the foundation study's (5-4 reads these runs as
    the paper's method) share it."""
    from koemo.experiments import cross
    runs = cross.run_study(cross_study_config, tiny_corpus, cross_study_corpus19,
                           cross_study_workdir, progress=False)
    return cross_study_workdir, runs
