"""The run directory: where a run lives and every file in it. This module alone names, reads
and writes those files; everything else goes through `RunDir` (a test checks that no other
module spells a run file's name).

    W/runs/<split>/<config name>/<stage or classifier kind>/seed<s>/   (`run_dir_for`)
      best/ last/            checkpoints (koemo.modeling.checkpoint): the best validation epoch
                             and the last one
      state/                 optimizer, scheduler and epoch counters: what resume needs
      frozen/                the frozen regressors' outputs per split (a classifier's cache)
      tensorboard/           event files (train.tensorboard)
      log.csv, log.json      one row per epoch (`RunDir.log`, `RunDir.log_rows`)
      run.json, config.yaml  the run record: config as written, seed, library versions, device
                             (`RunDir.record`, `save_run_record`)
      test_metrics.json      the test split's metrics (`RunDir.metrics`, typed `SplitMetrics`)
      test_metrics.v<k>.json later versions of them, each re-scored from the saved predictions
                             (`RunDir.rescore`); readers take the newest, the first stays as
                             training wrote it
      test_predictions.parquet   one row per test utterance (`RunDir.predictions`)
      .koemo-run.lock        held while a worker trains the run (koemo.experiments.runlock)

Records are versioned: `SplitMetrics.schema_version` and `RunRecord.schema_version` say which
layout wrote them (files from koemo before records were versioned carry none and read as
version 1; every field added since then is optional there), `SplitMetrics.version` which
scoring of the run it is. Files are written whole or not at all (a temporary file replaced).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, TypeVar

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from koemo.config.fingerprints import library_versions, written_config
from koemo.config.schema import FOLDED_PROTOCOLS, Config, FusionKind, Stage
from koemo.errors import KoemoInputError

# The layouts this koemo writes; a file without the field was written before versioning (1).
METRICS_SCHEMA = 2
RECORD_SCHEMA = 2
UNVERSIONED = 1

RECORD_FILE = "run.json"
CONFIG_FILE = "config.yaml"
LOG_CSV, LOG_JSON = "log.csv", "log.json"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".koemo-run.lock"
CHECKPOINTS = ("best", "last")
_STATE_DIR, _FROZEN_DIR = "state", "frozen"
_VERSIONED = re.compile(r"\.v(\d+)$")


def scores_files(directory: str | Path, subset: str) -> tuple[Path, Path]:
    """(<subset>_metrics.json, <subset>_predictions.parquet) in `directory`: a run's test scores,
    and what `koemo evaluate --out` writes for any split."""
    directory = Path(directory)
    return directory / f"{subset}_metrics.json", directory / f"{subset}_predictions.parquet"


# ----------------------------------------------------------------------------- records

class _Record(BaseModel):
    # Keys this koemo does not know (a later koemo's, a probe's own) are kept as they are.
    model_config = ConfigDict(frozen=True, extra="allow")

    def as_dict(self) -> dict[str, Any]:
        """The record as its file holds it (fields never set are left out)."""
        return self.model_dump(mode="json", exclude_none=True)


_R = TypeVar("_R", bound=_Record)


class ClassScores(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class Baseline(_Record):
    """Always predicting one class (`majority_class`: the training split's most frequent, or
    the scored set's where `majority_source` says so)."""
    accuracy: float
    weighted_f1: float
    macro_f1: float
    uar: float
    majority_class: str
    majority_source: Optional[str] = None          # absent: written before it was recorded

    def score(self, metric: str) -> float:
        """accuracy, weighted_f1, macro_f1 or uar, by name."""
        if metric not in ("accuracy", "weighted_f1", "macro_f1", "uar"):
            raise ValueError(f"the baseline has no metric {metric!r}")
        return float(getattr(self, metric))


# What the record keeps besides the scores: never a column of a results table.
BOOKKEEPING = ("schema_version", "version", "rescored")


class SplitMetrics(_Record):
    """The metrics of one scored split of a run (`test_metrics.json`). Regressors carry rmse,
    mae, pearson_r and ccc; the classifier accuracy, the F1s, uar, its classes, per-class
    table, confusion matrices and baseline. Training fills every field that applies; each is
    optional (older koemo wrote fewer, another producer may know fewer), and typed."""
    # every stage (fields in the order the file has always had them)
    loss: Optional[float] = None
    n: Optional[int] = None
    # regressors
    rmse: Optional[float] = None
    mae: Optional[float] = None
    pearson_r: Optional[float] = None
    ccc: Optional[float] = None
    # the classifier
    accuracy: Optional[float] = None
    weighted_f1: Optional[float] = None
    macro_f1: Optional[float] = None
    uar: Optional[float] = None
    classes: Optional[list[str]] = None
    label_set: Optional[list[str]] = None           # absent: averaged before the one-set rule
    per_class: Optional[dict[str, ClassScores]] = None
    confusion_matrix: Optional[list[list[int]]] = None
    confusion_matrix_normalized: Optional[list[list[float]]] = None
    baseline: Optional[Baseline] = None
    weighted_f1_batch_mean: Optional[float] = None
    # which run, weights and rows
    checkpoint: Optional[str] = None                # "best" | "last"
    epochs_trained: Optional[int] = None
    stage: Optional[str] = None
    classifier_kind: str = ""
    split: Optional[str] = None                     # the protocol split the run trained on
    subset: str = "test"                            # the rows scored
    seed: Optional[int] = None
    precision: Optional[str] = None
    scoring_seed: Optional[int] = None              # absent: scored before scoring was seeded
    # the record
    schema_version: int = METRICS_SCHEMA
    version: int = 1                                # 1: as training scored it; k: k-th scoring
    rescored: Optional[str] = None                  # why version k > 1 was written

    def scalars(self) -> dict[str, Any]:
        """The numbers and names of the record (no lists, tables or bookkeeping): one row of
        a results table."""
        return {k: v for k, v in self.as_dict().items()
                if isinstance(v, (int, float, str, bool)) and k not in BOOKKEEPING}

    def class_names(self) -> list[str]:
        """The classifier's classes, in the order of its outputs."""
        return list(_classifier_part(self.classes, "classes", self.stage))

    def class_table(self) -> dict[str, ClassScores]:
        """The classifier's per-class precision, recall, F1 and support, in class order."""
        return dict(_classifier_part(self.per_class, "per-class table", self.stage))

    def majority(self) -> Baseline:
        """The classifier's majority-class baseline on the same rows."""
        return _classifier_part(self.baseline, "baseline", self.stage)


_T = TypeVar("_T")


def _classifier_part(value: _T | None, name: str, stage: str | None) -> _T:
    if value is None:
        raise ValueError(f"the {stage or ''} metrics have no {name}: not a classifier's")
    return value


class RunRecord(_Record):
    """`run.json`: what produced a directory's outputs. Training runs add their stage,
    classifier kind, device, precision, tf32 and run_dir; other outputs their own keys."""
    config: dict[str, Any]
    seed: Optional[int] = None
    versions: dict[str, str]                        # library -> version
    schema_version: int = RECORD_SCHEMA


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_record(path: Path, kind: type[_R]) -> _R:
    """A record file as `kind` (files without a schema_version: version 1); a file that is not
    one is a one-line KoemoInputError naming it."""
    try:
        data = _read_json(path)
        return kind.model_validate({**data, "schema_version": data.get("schema_version",
                                                                       UNVERSIONED)})
    except (ValueError, TypeError, AttributeError) as err:   # JSON or pydantic's ValidationError
        problem = str(err).splitlines()
        raise KoemoInputError(f"{path}: not a readable {kind.__name__} record "
                              f"({'; '.join(problem[:3])})") from err


def write_json(path: Path, obj: Any, default: Callable[[Any], Any] = float) -> None:
    """`obj` as JSON at `path`, whole or not at all (a temporary file replaced)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=default), encoding="utf-8")
    os.replace(tmp, path)


def save_run_record(directory: str | Path, cfg: Config | dict[str, Any], seed: int | None = None,
                    **extra: Any) -> Path:
    """`run.json` + `config.yaml` in `directory` (a run, or any output folder: a notebook's
    paper/, a bio-signal report): the config as written, the seed (default: the config's),
    library versions and `extra`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = written_config(cfg)
    record = RunRecord(config=written, seed=written.get("seed") if seed is None else seed,
                       versions=library_versions(), **extra)
    path = directory / RECORD_FILE
    write_json(path, record.model_dump(mode="json"), default=str)
    with open(directory / CONFIG_FILE, "w", encoding="utf-8") as fh:
        yaml.safe_dump(written, fh, allow_unicode=True, sort_keys=False)
    return path


# ----------------------------------------------------------------------------- one run

@dataclass(frozen=True)
class RunDir:
    """One run directory (it need not exist yet): its folders, and its files read and written
    as typed records."""
    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    # -- folders and files others write
    def checkpoint(self, which: Literal["best", "last"] | str) -> Path:
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, not {which!r}")
        return self.path / which

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def state(self) -> Path:
        return self.path / _STATE_DIR

    @property
    def frozen(self) -> Path:
        return self.path / _FROZEN_DIR

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    # -- metrics: version 1 as training scored the run, later versions re-scored
    def _metrics_file(self, version: int = 1) -> Path:
        stem = scores_files(self.path, "test")[0]
        return stem if version == 1 else stem.with_name(f"{stem.stem}.v{version}.json")

    def metric_versions(self) -> list[int]:
        """The versions of the test metrics on disk, oldest first ([] before scoring)."""
        first = self._metrics_file()
        found = [1] if first.is_file() else []
        for path in self.path.glob(f"{first.stem}.v*.json"):
            match = _VERSIONED.search(path.name.removesuffix(".json"))
            if match and int(match.group(1)) > 1:
                found.append(int(match.group(1)))
        return sorted(found)

    def is_scored(self) -> bool:
        return self._metrics_file().is_file()

    def metrics(self, version: int | None = None) -> SplitMetrics:
        """The test metrics: the newest version, or the one asked for."""
        if version is None:
            versions = self.metric_versions()
            if not versions:
                raise FileNotFoundError(f"{self._metrics_file()}: the run has no test metrics")
            version = versions[-1]
        return _read_record(self._metrics_file(version), SplitMetrics)

    def write_metrics(self, metrics: SplitMetrics) -> None:
        """Training's score of the test split: version 1; later versions (of an earlier
        training of this directory) go."""
        for version in self.metric_versions():
            if version > 1:
                self._metrics_file(version).unlink()
        first = metrics.model_copy(update={"schema_version": METRICS_SCHEMA, "version": 1,
                                           "rescored": None})
        write_json(self._metrics_file(), first.as_dict())

    def rescore(self, metrics: SplitMetrics, because: str) -> SplitMetrics:
        """Write `metrics` as the next version (the earlier ones stay); returns it."""
        version = max(self.metric_versions() or [1]) + 1
        new = SplitMetrics.model_validate({**metrics.as_dict(), "schema_version": METRICS_SCHEMA,
                                           "version": version, "rescored": because})
        write_json(self._metrics_file(version), new.as_dict())
        return new

    # -- predictions
    def predictions(self) -> pd.DataFrame:
        """One row per test utterance: segment_id, true, pred (and prob_<class> for the
        classifier)."""
        return pd.read_parquet(scores_files(self.path, "test")[1])

    def write_predictions(self, table: pd.DataFrame) -> None:
        path = scores_files(self.path, "test")[1]
        tmp = path.with_suffix(path.suffix + ".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)

    # -- log
    def has_log(self) -> bool:
        return (self.path / LOG_CSV).is_file()

    def log(self) -> pd.DataFrame:
        """One row per epoch: epoch, lr, train_loss, valid_loss, valid_<metric>..., seconds, best."""
        return pd.read_csv(self.path / LOG_CSV)

    def log_rows(self) -> list[dict[str, Any]]:
        """The same rows as written (what a resumed run continues)."""
        rows: list[dict[str, Any]] = _read_json(self.path / LOG_JSON)
        return rows

    def write_log(self, rows: list[dict[str, Any]]) -> None:
        write_json(self.path / LOG_JSON, rows)
        pd.DataFrame(rows).to_csv(self.path / LOG_CSV, index=False)

    # -- the run record
    def record(self) -> RunRecord:
        return _read_record(self.path / RECORD_FILE, RunRecord)

    def write_record(self, cfg: Config, seed: int, **extra: Any) -> Path:
        return save_run_record(self.path, cfg, seed, run_dir=str(self.path), **extra)

    def clear(self) -> None:
        """Remove a previous run's outputs (only the files a run writes; the lock stays)."""
        outputs = [*CHECKPOINTS, _STATE_DIR, _FROZEN_DIR, TENSORBOARD_DIR, LOG_CSV, LOG_JSON,
                   *(self._metrics_file(v).name for v in self.metric_versions()),
                   scores_files(self.path, "test")[1].name]
        for name in outputs:
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


# ----------------------------------------------------------------------------- where runs live

def split_name(cfg: Config) -> str:
    """`paper`, `session`, `cv5_f<k>`, `<corpus>_cv5_f<k>` or a cross-corpus protocol: the
    protocol (and fold) a run was trained on."""
    protocol = cfg.data.protocol
    return f"{protocol}_f{cfg.data.fold}" if protocol in FOLDED_PROTOCOLS else protocol


def run_dir_for(workdir: str | Path, cfg: Config, stage: Stage, seed: int,
                classifier_kind: FusionKind = "attention_lstm") -> Path:
    """W/runs/<split>/<config name>/<stage or classifier kind>/seed<s>. A config may name the
    runs of its regressors apart (`regressor_runs: {audio: NAME, text: NAME}`, set for a
    depth combination by koemo.experiments.plan.run_config): its classifier then reads regressors
    trained once under those names instead of training copies of them."""
    leaf = classifier_kind if stage == "multimodal" else stage
    name = str(cfg.name)
    if stage != "multimodal" and cfg.regressor_runs:
        name = next((run for part, run in cfg.regressor_runs.items() if part == stage), name)
    return Path(workdir) / "runs" / split_name(cfg) / name / leaf / f"seed{seed}"


def workdir_of_run(run_dir: str | Path) -> Path:
    """The workdir a run directory of `run_dir_for` lies in."""
    run_dir = Path(run_dir)
    if len(run_dir.parents) < 5 or run_dir.parents[3].name != "runs":
        raise ValueError(f"{run_dir}: not a run directory (W/runs/<split>/<name>/<leaf>/seed<s>)")
    return run_dir.parents[4]

