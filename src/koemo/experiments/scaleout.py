"""The experiment plan as independent commands, for any scheduler (`koemo plan`).

Every run `koemo reproduce` trains is one `koemo train STAGE --variant V --split S --seed N
[--classifier K]` line over the same workdir, config and overrides. Runs fall into two phases:
the regressors (audio, text) need nothing but the prepared workdir; the classifiers (multimodal)
need the regressors of their split, variant and seed. Within a phase every line is independent,
and concurrent lines never train one run twice (koemo.experiments.runlock), so a phase can be spread over
any number of machines sharing the workdir. Afterwards `koemo reproduce` finds every run finished
and only writes the tables.

`submit_slurm` submits the two phases as two SLURM job arrays through submitit (optional:
`pip install koemo[slurm]`), the second starting after the first succeeded.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from koemo.config.schema import Config
from koemo.experiments import plan as ex
from koemo.errors import KoemoInputError

FORMATS = ("txt", "sh", "json")
PHASES = ("regressors", "classifiers")


def full_plan(cfg: Config, workdir: str | Path | None = None) -> list[ex.RunSpec]:
    """Every run of notebooks 2-1 .. 5-2, once per run directory, regressors first (given the
    workdir, without the splits it has no rows for)."""
    from koemo.modeling.runs import run_dir_for

    plan = [spec for part in ex.plan_parts(cfg, workdir).values() for spec in part]
    unique: dict[Path, ex.RunSpec] = {}
    for spec in plan:
        unique.setdefault(run_dir_for("", spec.cfg, spec.stage, spec.seed, spec.classifier_kind),
                          spec)
    return sorted(unique.values(), key=lambda spec: spec.stage == "multimodal")


@dataclass(frozen=True)
class PlannedRun:
    spec: ex.RunSpec
    argv: list[str]           # arguments of `koemo` (without the program name)
    run_dir: Path

    @property
    def phase(self) -> str:
        return PHASES[self.spec.stage == "multimodal"]

    @property
    def command(self) -> str:
        return shlex.join(["koemo", *self.argv])

    def as_dict(self) -> dict:
        spec = self.spec
        return {"phase": self.phase, "stage": spec.stage, "variant": spec.variant,
                "split": spec.split, "seed": spec.seed,
                "classifier": spec.classifier_kind if spec.stage == "multimodal" else None,
                "run_dir": str(self.run_dir), "argv": self.argv, "command": self.command}


def planned_runs(config: str, workdir: str | Path, overrides: list[str] | tuple = ()) -> list[PlannedRun]:
    """The plan of `config` (+ overrides) as `koemo train` argument lists over `workdir`.
    A config given as a path and the workdir become absolute, so lines run from anywhere."""
    from koemo.config.load import load_config
    from koemo.modeling.runs import run_dir_for

    cfg = load_config(config, overrides)
    if Path(config).suffix or Path(config).is_file():
        config = str(Path(config).resolve())
    workdir = Path(workdir).resolve()
    common = ["--workdir", str(workdir), "--config", str(config)]
    for text in overrides:
        common += ["--set", text]
    runs = []
    for spec in full_plan(cfg):
        argv = ["train", spec.stage, *common, "--variant", spec.variant, "--split", spec.split,
                "--seed", str(spec.seed)]
        if spec.stage == "multimodal":
            argv += ["--classifier", spec.classifier_kind]
        argv.append("--no-progress")
        run_dir = run_dir_for(workdir, spec.cfg, spec.stage, spec.seed, spec.classifier_kind)
        runs.append(PlannedRun(spec, argv, run_dir))
    return runs


def render(runs: list[PlannedRun], fmt: str = "txt") -> str:
    """txt: one command a line; sh: a script running the phases in order; json: a list."""
    if fmt not in FORMATS:
        raise KoemoInputError(f"unknown plan format {fmt!r}: use {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([run.as_dict() for run in runs], indent=2, ensure_ascii=False) + "\n"
    lines = [run.command for run in runs]
    if fmt == "txt":
        return "\n".join(lines) + "\n"
    out = ["#!/bin/sh", "# koemo plan: every line is one independent training run. Lines of one",
           "# phase may run in any order or at once, on machines sharing the workdir.", "set -e"]
    for phase in PHASES:
        out.append(f"# phase {phase}" + (" (needs every regressors line)" if phase == "classifiers"
                                         else ""))
        out += [run.command for run in runs if run.phase == phase]
    return "\n".join(out) + "\n"


def run_koemo(argv: list[str]) -> int:
    """What a scheduled job runs: `koemo ARGV` with this Python (raises on a failure). A child
    process, so that this layer never imports the command line above it."""
    import subprocess
    import sys

    code = subprocess.run([sys.executable, "-m", "koemo", *argv], check=False).returncode
    if code:
        raise RuntimeError(f"koemo {shlex.join(argv)} exited with status {code}")
    return code


def submit_slurm(runs: list[PlannedRun], folder: str | Path, cluster: str | None = None,
                 parameters: dict | None = None) -> list:
    """Submit the regressors as one job array and the classifiers as a second array that
    starts after the first succeeded (SLURM `afterok`). `parameters` go to submitit's
    AutoExecutor.update_parameters (timeout_min, slurm_partition, gpus_per_node, ...);
    `cluster` is submitit's (None: SLURM when available, "local", "debug"). Returns the jobs."""
    try:
        import submitit
    except ImportError as err:
        raise KoemoInputError("--submit slurm needs submitit: pip install 'koemo[slurm]'") from err

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(name="koemo", **(parameters or {}))
    jobs: list = []
    for phase in PHASES:
        argvs = [run.argv for run in runs if run.phase == phase]
        if not argvs:
            continue
        if jobs and executor.cluster == "slurm":
            after = ":".join(str(job.job_id) for job in jobs)
            executor.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{after}"})
        elif jobs:   # local/debug executors have no dependencies: finish phase one first
            for job in jobs:
                job.result()
        jobs += executor.map_array(run_koemo, argvs)
    return jobs
