"""Scale-out: the plan as independent commands, one GPU per worker, one trainer per run."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from koemo.experiments import plan as ex
from koemo.experiments import scaleout
from koemo.experiments import workers
from koemo.config.load import load_config

SMALL = ["reproduce.protocols=[paper]", "reproduce.ablation.audio_layers=[1,2]",
         "reproduce.ablation.combos=[[1,1]]", "reproduce.fusion.protocol=paper",
         "reproduce.fusion.kinds=[attention_lstm,late]"]


def test_run_config_rebuilds_every_run_of_every_plan():
    cfg = load_config("paper")
    for spec in scaleout.full_plan(cfg):
        assert ex.run_config(cfg, spec.variant, spec.split, spec.stage) == spec.cfg, spec.key


def test_full_plan_lists_each_run_directory_once_regressors_first():
    cfg = load_config("tiny", SMALL)
    plan = scaleout.full_plan(cfg)
    stages = [spec.stage for spec in plan]
    assert stages == sorted(stages, key=lambda s: s == "multimodal")
    # main: 2 variants x (audio, text, attention_lstm); audio L2 ablation; late fusion (corrected)
    assert len(plan) == 6 + 1 + 1
    assert {spec.classifier_kind for spec in plan if spec.stage == "multimodal"} == \
        {"attention_lstm", "late"}


def test_exported_lines_train_the_plans_runs(tmp_path, tiny_workdir, capsys):
    """Every line parses back to the same run directory and config; two of them train."""
    import shutil

    from koemo.cli import build_parser, main

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    overrides = SMALL + ["train.audio.epochs=1", "train.text.epochs=1"]
    export = tmp_path / "plan.json"
    assert main(["plan", "--config", "tiny", "--workdir", str(workdir), "--export", str(export),
                 *[a for o in overrides for a in ("--set", o)]]) == 0
    runs = json.loads(export.read_text())
    assert len(runs) == 8 and runs[0]["phase"] == "regressors" and runs[-1]["phase"] == "classifiers"
    assert {r["stage"] for r in runs} == {"audio", "text", "multimodal"}
    sh = tmp_path / "plan.sh"
    main(["plan", "--config", "tiny", "--workdir", str(workdir), "--export", str(sh),
          *[a for o in overrides for a in ("--set", o)]])
    lines = [l for l in sh.read_text().splitlines() if l.startswith("koemo train ")]
    assert lines == [r["command"] for r in runs]
    cfg = load_config("tiny", overrides)
    by_dir = {str(d): s for s in scaleout.full_plan(cfg)
              for d in [workdir.resolve() / "runs" / s.split / s.cfg.name
                        / (s.classifier_kind if s.stage == "multimodal" else s.stage) / f"seed{s.seed}"]}
    for run in runs:
        args = build_parser().parse_args(run["argv"])
        assert (args.variant, args.split, args.seed) == (run["variant"], run["split"], run["seed"])
        assert run["run_dir"] in by_dir
    # the first line of each regressor stage, run as a scheduler would
    for run in runs[:2]:
        assert main(run["argv"]) == 0
        assert (Path(run["run_dir"]) / "test_metrics.json").is_file()
    assert "run: " + runs[0]["run_dir"] in capsys.readouterr().out


def test_submitit_debug_executor_runs_phases_in_order(tmp_path, monkeypatch):
    import submitit  # noqa: F401  (the dev extra installs it: a missing one fails, never skips)
    calls = []
    monkeypatch.setattr(scaleout, "run_koemo", lambda argv: calls.append(argv) or 0)
    runs = scaleout.planned_runs("tiny", tmp_path / "w", SMALL)
    jobs = scaleout.submit_slurm(runs, tmp_path / "submitit", cluster="debug")
    assert [job.result() for job in jobs] == [0] * len(runs)
    assert calls == [run.argv for run in runs]      # every line once, regressors first


def test_gpus_pin_one_worker_each(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    cfg = load_config("tiny")          # reproduce.parallel_runs: 2 for the CPU; train.device auto
    assert workers.plan_workers(cfg, None) == (2, ["4", "6"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert workers.plan_workers(cfg, None) == (3, ["0", "1", "2"])
    assert workers.plan_workers(cfg, 1) == (1, ["0", "1", "2"])
    cpu = load_config("tiny", ["train.device=cpu"])
    assert workers.plan_workers(cpu, None) == (2, [])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert workers.plan_workers(load_config("tiny", ["reproduce.parallel_runs=1"]), None) == (1, [])


def test_run_plan_hands_the_gpus_to_its_workers(monkeypatch, tiny_config, tmp_path):
    seen = {}
    monkeypatch.setattr(workers, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(workers, "device_free_bytes", lambda count: 0)   # room for one run each
    monkeypatch.setattr(ex, "_train_in_workers",
                        lambda specs, w, n, gpus=None: seen.update(n=n, gpus=gpus, specs=specs))
    monkeypatch.setattr(ex, "_row", lambda spec, run_dir: {})
    plan = [ex.RunSpec("audio", "faithful", "paper", s, ex.split_config(tiny_config, "paper"))
            for s in (1, 2, 3)]
    ex.run_plan(plan, tmp_path, progress=False)
    assert seen["n"] == 2 and seen["gpus"] == ["0", "1"] and len(seen["specs"]) == 3


def test_each_worker_process_sees_one_gpu():
    with workers.worker_pool(2, ["3", "5"]) as pool:
        seen = set(pool.map(_pid_and_gpu, range(8)))
    pids = {pid for pid, _ in seen}
    assert {gpu for _, gpu in seen} <= {"3", "5"}
    assert len(seen) == len(pids)           # a worker keeps its one GPU
    if len(pids) == 2:
        assert {gpu for _, gpu in seen} == {"3", "5"}


def _pid_and_gpu(_):
    import time
    time.sleep(0.05)
    return os.getpid(), os.environ["CUDA_VISIBLE_DEVICES"]


WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import koemo.modeling.runs as R
    from koemo.experiments import plan as ex
    from koemo.config.load import load_config

    workdir, log, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    real = R.RunDir.write_log
    def counted(run, rows):       # every epoch any worker writes, with who wrote it
        with open(log, "a") as fh:
            fh.write(json.dumps([str(run.path), len(rows), os.getpid()]) + "\\n")
        return real(run, rows)
    R.RunDir.write_log = counted  # the epoch writer looks it up at each epoch
    cfg = load_config("tiny", ["reproduce.protocols=[paper]"])
    plan = ex.main_plan(cfg, stages=["audio", "text", "multimodal"])
    while not go.exists():
        time.sleep(0.01)
    table = ex.run_plan(plan, workdir, progress=False, parallel_runs=1)
    print(json.dumps(sorted(table["run_dir"])))
""")


@pytest.mark.slow
def test_two_workers_on_one_workdir_train_each_run_once(tmp_path, tiny_workdir):
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    script, log, go = tmp_path / "worker.py", tmp_path / "epochs.jsonl", tmp_path / "go"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(workdir), str(log), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    go.touch()
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    tables = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert tables[0] == tables[1] and len(tables[0]) == 6      # both see every run finished
    epochs = [json.loads(line) for line in log.read_text().splitlines()]
    cfg = load_config("tiny")
    for run_dir in tables[0]:
        stage = "multimodal" if Path(run_dir).parent.name not in ("audio", "text") else \
            Path(run_dir).parent.name
        mine = [(n, pid) for d, n, pid in epochs if d == run_dir]
        # each epoch written exactly once, all by one worker
        assert [n for n, _ in mine] == list(range(1, cfg.train.stage(stage).epochs + 1)), run_dir
        assert len({pid for _, pid in mine}) == 1
        assert len(json.loads((Path(run_dir) / "log.json").read_text())) == len(mine)
    assert len({pid for _, _, pid in epochs}) == 2            # the work was shared
