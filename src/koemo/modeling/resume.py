"""Whether a run can be resumed or is finished: the settings fingerprint a run's training state
carries, its epoch counters, and the checks `train_stage` and the plans make before training.
The files themselves are the run directory's (koemo.modeling.runs.RunDir)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from koemo.config.fingerprints import as_written, fingerprint
from koemo.config.schema import Config, Train, TrainStage, unread_sections
from koemo.config.section import speed_settings
from koemo.config.workdir import data_fingerprint
from koemo.errors import KoemoInputError
from koemo.modeling.runs import RunDir

# Settings that never change what a run computes: devices and speed knobs, and the config
# sections training does not read (the bio-signal analysis, ASR and segmentation of raw
# recordings, the synthetic corpus' recipe: its data is covered by the data fingerprint).
SPEED_SETTINGS = speed_settings(Train)          # marked affects_results: False in the schema
UNREAD_SECTIONS = unread_sections()


def resume_fingerprint(cfg: Config, stage: str, legacy: bool = False) -> str:
    """What must not change between an interrupted run and its resumption: everything but the
    epoch budgets, the device settings and the sections training does not read (more epochs
    may be asked for later; another stage's budget never changes this one's run). `legacy`:
    the fingerprint koemo wrote before the unread sections were left out, so that runs
    finished then are still recognised."""
    written = json.loads(json.dumps(cfg, default=as_written))
    train = written.get("train", {})
    for key in SPEED_SETTINGS:
        train.pop(key, None)
    for settings in train.values():       # epoch budgets, this stage's and the others'
        if isinstance(settings, dict):
            settings.pop("epochs", None)
    for section in (("reproduce",) if legacy else UNREAD_SECTIONS):
        written.pop(section, None)
    # Where the regressors live is not a setting: a combination classifier trained before its
    # regressors were shared (same regressor configs) stays finished.
    written.pop("regressor_runs", None)
    return fingerprint(written)


def same_settings(state: dict[str, Any], cfg: Config, stage: str) -> bool:
    """Whether a run's saved state was trained with these settings (current or legacy key)."""
    return state.get("fingerprint") in (resume_fingerprint(cfg, stage),
                                        resume_fingerprint(cfg, stage, legacy=True))


def counters_snapshot(optimizer: Any, scheduler: Any, counters: dict[str, Any], run_fp: str,
                      data_fp: str | None) -> dict[str, Any]:
    """The run's training state (optimizer, scheduler, epoch counters), taken now."""
    from koemo.modeling.checkpoint import training_state_snapshot
    snapshot: dict[str, Any] = training_state_snapshot(
        optimizer, scheduler, epoch=counters["epoch"], best=counters["best"],
        extra={"fingerprint": run_fp, "data": data_fp, "bad_epochs": counters["bad_epochs"],
               "stopped_early": counters["stopped_early"]})
    return snapshot


def write_counters(run_dir: Path, optimizer: Any, scheduler: Any, counters: dict[str, Any],
                   run_fp: str, data_fp: str | None) -> None:
    from koemo.modeling.checkpoint import write_training_state
    write_training_state(RunDir(run_dir).state,
                         counters_snapshot(optimizer, scheduler, counters, run_fp, data_fp))


def read_counters(run_dir: Path) -> dict[str, Any] | None:
    """Epoch counters of an interrupted/finished run (None when there is none)."""
    from koemo.modeling.checkpoint import TRAINING_STATE_FILE, load_training_state
    folder = RunDir(run_dir).state
    if not (folder / TRAINING_STATE_FILE).is_file():
        return None
    state = load_training_state(folder, restore_rng=False)
    return {"epoch": state["epoch"], "best": state["best"], **state["extra"]}


def weights_match_state(run_dir: Path, state: dict[str, Any]) -> bool:
    """The `last/` checkpoint holds the epoch the training state counts (written just before)."""
    from koemo.modeling.checkpoint import read_meta
    try:
        return int(read_meta(RunDir(run_dir).last).get("epoch", -1)) == int(state["epoch"])
    except (KoemoInputError, OSError, ValueError):
        return False


def state_finished(state: dict[str, Any], settings: TrainStage, run_dir: Path) -> bool:
    return bool(state.get("stopped_early") or state["epoch"] >= settings.epochs) and \
        RunDir(run_dir).is_scored()


def run_is_finished(run_dir: Path, cfg: Config, stage: str, workdir: str | Path) -> bool:
    """True when `train_stage` would return this run as it is (same settings, same prepared
    data, all epochs or stopped early, test scored)."""
    state = read_counters(Path(run_dir))
    return (state is not None and same_settings(state, cfg, stage)
            and state.get("data") == data_fingerprint(workdir)
            and state_finished(state, cfg.train.stage(stage), Path(run_dir)))


def resume_point(run: RunDir, cfg: Config, stage: str, data_fp: str | None,
                 resume: bool) -> dict[str, Any] | None:
    """The training state an earlier run of this directory left to continue from, or None
    (the directory's earlier outputs then cleared: training starts over). A run with other
    settings is refused; one trained on an earlier preparation of the data, or killed between
    saving an epoch's weights and its state, starts over."""
    state = read_counters(run.path) if resume else None
    if state is not None and not same_settings(state, cfg, stage):
        raise KoemoInputError(f"{run.path}: holds a run with other settings; use --no-resume to "
                              f"start over or another --config name / out_dir")
    if state is not None and state.get("data") != data_fp:
        print(f"{run.path}: trained on an earlier preparation of the corpus "
              f"({state.get('data')} -> {data_fp}); training it again")
        state = None
    if state is not None and not weights_match_state(run.path, state):
        # Killed after saving an epoch's weights but before its optimizer state: the two no
        # longer describe the same epoch, so continuing would not give the uninterrupted run.
        print(f"{run.path}: interrupted between saving epoch {state['epoch'] + 1} and its "
              "training state; training it again from the start")
        state = None
    if state is None:
        run.clear()
    return state
