"""A run directory's files and what they say: where a run lives, its log, its training state
and whether it can be resumed or is finished. `koemo.modeling.train` writes them; plans,
locks and exports only read them (through `run_dir_for` / `run_is_finished`).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from koemo.config.fingerprints import as_written, fingerprint
from koemo.config.schema import Train, speed_settings, unread_sections
from koemo.config.workdir import data_fingerprint
from koemo.errors import KoemoInputError
from koemo.modeling.monitor import TENSORBOARD_DIR

RUN_OUTPUTS = ("best", "last", "state", "frozen", "log.csv", "log.json", "test_metrics.json",
               "test_predictions.parquet", TENSORBOARD_DIR)


# ----------------------------------------------------------------------------- paths

def split_name(cfg: dict) -> str:
    """`paper`, `session`, `cv5_f<k>`, `<corpus>_cv5_f<k>` or a cross-corpus protocol: the
    protocol (and fold) a run was trained on."""
    from koemo.config.schema import FOLDED_PROTOCOLS

    protocol = cfg.data.protocol
    return f"{protocol}_f{cfg.data.fold}" if protocol in FOLDED_PROTOCOLS else protocol


def run_dir_for(workdir: str | Path, cfg: dict, stage: str, seed: int,
                classifier_kind: str = "attention_lstm") -> Path:
    """W/runs/<split>/<config name>/<stage or classifier kind>/seed<s>. A config may name the
    runs of its regressors apart (`regressor_runs: {audio: NAME, text: NAME}`, set for a
    depth combination by koemo.experiments.plan.run_config): its classifier then reads regressors
    trained once under those names instead of training copies of them."""
    leaf = classifier_kind if stage == "multimodal" else stage
    name = cfg.name
    if stage != "multimodal":
        name = (cfg.regressor_runs or {}).get(stage, name)
    return Path(workdir) / "runs" / split_name(cfg) / name / leaf / f"seed{seed}"


def workdir_of_run(run_dir: str | Path) -> Path:
    """The workdir a run directory of `run_dir_for` lies in."""
    run_dir = Path(run_dir)
    if len(run_dir.parents) < 5 or run_dir.parents[3].name != "runs":
        raise ValueError(f"{run_dir}: not a run directory (W/runs/<split>/<name>/<leaf>/seed<s>)")
    return run_dir.parents[4]


# ----------------------------------------------------------------------------- files

def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=float), encoding="utf-8")
    os.replace(tmp, path)


def write_log(run_dir: Path, rows: list[dict]) -> None:
    write_json(run_dir / "log.json", rows)
    pd.DataFrame(rows).to_csv(run_dir / "log.csv", index=False)


# Settings that never change what a run computes: devices and speed knobs, and the config
# sections training does not read (the bio-signal analysis, ASR and segmentation of raw
# recordings, the synthetic corpus' recipe: its data is covered by the data fingerprint).
SPEED_SETTINGS = speed_settings(Train)          # marked affects_results: False in the schema
UNREAD_SECTIONS = unread_sections()


def resume_fingerprint(cfg: dict, stage: str, legacy: bool = False) -> str:
    """What must not change between an interrupted run and its resumption: everything but the
    epoch budgets, the device settings and the sections training does not read (more epochs
    may be asked for later; another stage's budget never changes this one's run). `legacy`:
    the fingerprint koemo wrote before the unread sections were left out, so that runs
    finished then are still recognised."""
    cfg = json.loads(json.dumps(cfg, default=as_written))
    train = cfg.get("train", {})
    for key in SPEED_SETTINGS:
        train.pop(key, None)
    for settings in train.values():       # epoch budgets, this stage's and the others'
        if isinstance(settings, dict):
            settings.pop("epochs", None)
    for section in (("reproduce",) if legacy else UNREAD_SECTIONS):
        cfg.pop(section, None)
    # Where the regressors live is not a setting: a combination classifier trained before its
    # regressors were shared (same regressor configs) stays finished.
    cfg.pop("regressor_runs", None)
    return fingerprint(cfg)


def same_settings(state: dict, cfg: dict, stage: str) -> bool:
    """Whether a run's saved state was trained with these settings (current or legacy key)."""
    return state.get("fingerprint") in (resume_fingerprint(cfg, stage),
                                        resume_fingerprint(cfg, stage, legacy=True))


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's outputs (only the files this module writes)."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def counters_snapshot(optimizer, scheduler, counters: dict, run_fp: str,
                      data_fp: str | None) -> dict:
    """The run's training state (optimizer, scheduler, epoch counters), taken now."""
    from koemo.modeling.checkpoint import training_state_snapshot
    return training_state_snapshot(optimizer, scheduler, epoch=counters["epoch"],
                                   best=counters["best"],
                                   extra={"fingerprint": run_fp, "data": data_fp,
                                          "bad_epochs": counters["bad_epochs"],
                                          "stopped_early": counters["stopped_early"]})


def write_counters(run_dir: Path, optimizer, scheduler, counters: dict, run_fp: str,
                   data_fp: str | None) -> None:
    from koemo.modeling.checkpoint import write_training_state
    write_training_state(run_dir / "state",
                         counters_snapshot(optimizer, scheduler, counters, run_fp, data_fp))


def read_counters(run_dir: Path) -> dict | None:
    """Epoch counters of an interrupted/finished run (None when there is none)."""
    from koemo.modeling.checkpoint import TRAINING_STATE_FILE, load_training_state
    if not (run_dir / "state" / TRAINING_STATE_FILE).is_file():
        return None
    state = load_training_state(run_dir / "state", restore_rng=False)
    return {"epoch": state["epoch"], "best": state["best"], **state["extra"]}


def weights_match_state(run_dir: Path, state: dict) -> bool:
    """The `last/` checkpoint holds the epoch the training state counts (written just before)."""
    from koemo.modeling.checkpoint import read_meta
    try:
        return int(read_meta(run_dir / "last").get("epoch", -1)) == int(state["epoch"])
    except (KoemoInputError, OSError, ValueError):
        return False


def state_finished(state: dict, settings: dict, run_dir: Path) -> bool:
    return bool(state.get("stopped_early") or state["epoch"] >= settings.epochs) and \
        (run_dir / "test_metrics.json").is_file()


def run_is_finished(run_dir: Path, cfg: dict, stage: str, workdir: str | Path) -> bool:
    """True when `train_stage` would return this run as it is (same settings, same prepared
    data, all epochs or stopped early, test scored)."""
    state = read_counters(Path(run_dir))
    return (state is not None and same_settings(state, cfg, stage)
            and state.get("data") == data_fingerprint(workdir)
            and state_finished(state, cfg.train.stage(stage), Path(run_dir)))


