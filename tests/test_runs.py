"""The run directory has one owner (koemo.modeling.runs): typed, versioned records that still
read the folders earlier koemo wrote, re-scoring as a new version beside the first, and no
other module naming a run's files."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import koemo
from koemo.config.load import load_config
from koemo.errors import KoemoInputError
from koemo.experiments import plan as ex
from koemo.modeling.runs import RunDir, SplitMetrics, save_run_record

CLASSES = ["neutral", "sad", "happy"]
TRUE = ["neutral", "neutral", "happy", "happy", "neutral", "happy"]
PRED = ["neutral", "happy", "happy", "neutral", "neutral", "sad"]

# A classifier's test_metrics.json as koemo wrote it before its records were versioned, before
# test scoring was seeded and before the averages used one label set: today's format without
# schema_version, version, scoring_seed, precision, subset, label_set,
# confusion_matrix_normalized and baseline.majority_source. Its macro F1 counts the class
# `sad` that only the predictions hold (the rule then); the one-set rule gives 0.533.
OLD_METRICS = {
    "loss": 1.05, "n": 6, "accuracy": 0.5, "weighted_f1": 0.5333333333333333,
    "macro_f1": 0.35555555555555557, "uar": 0.3333333333333333, "classes": CLASSES,
    "per_class": {"neutral": {"precision": 0.6666666666666666, "recall": 0.6666666666666666,
                              "f1": 0.6666666666666666, "support": 3},
                  "sad": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
                  "happy": {"precision": 0.5, "recall": 0.3333333333333333, "f1": 0.4,
                            "support": 3}},
    "confusion_matrix": [[2, 0, 1], [0, 0, 0], [1, 1, 1]],
    "baseline": {"accuracy": 0.5, "weighted_f1": 0.3333333333333333,
                 "macro_f1": 0.3333333333333333, "uar": 0.5, "majority_class": "neutral"},
    "weighted_f1_batch_mean": 0.5, "checkpoint": "last", "epochs_trained": 3,
    "stage": "multimodal", "classifier_kind": "attention_lstm", "split": "paper", "seed": 1,
}
OLD_LOG = [{"epoch": 1, "lr": 0.001, "train_loss": 1.6, "valid_loss": 1.5, "seconds": 0.3,
            "best": True},
           {"epoch": 2, "lr": 0.0008, "train_loss": 1.4, "valid_loss": 1.52, "seconds": 0.3,
            "best": False}]


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A finished classifier run folder in the layout earlier koemo wrote, by hand."""
    run_dir = tmp_path / "W" / "runs" / "paper" / "tiny" / "attention_lstm" / "seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "test_metrics.json").write_text(json.dumps(OLD_METRICS, indent=2))
    probs = {f"prob_{name}": [1 / 3] * len(TRUE) for name in CLASSES}
    pd.DataFrame({"segment_id": [f"Sess01_script01_User002M_{i:03d}" for i in range(len(TRUE))],
                  "true": TRUE, "pred": PRED, **probs}).to_parquet(
        run_dir / "test_predictions.parquet", index=False)
    (run_dir / "log.json").write_text(json.dumps(OLD_LOG))
    pd.DataFrame(OLD_LOG).to_csv(run_dir / "log.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({
        "config": {"name": "tiny", "seed": 1}, "seed": 1,
        "versions": {"python": "3.11.7", "koemo": "0.1.0"}, "stage": "multimodal",
        "classifier_kind": "attention_lstm", "device": "cpu", "run_dir": str(run_dir)}))
    return run_dir


def test_an_old_run_folder_still_reads(old_run):
    run = RunDir(old_run)
    metrics = run.metrics()
    assert (metrics.schema_version, metrics.version) == (1, 1)
    assert metrics.scoring_seed is None and metrics.label_set is None
    assert metrics.class_names() == CLASSES and metrics.majority().majority_source is None
    assert metrics.class_table()["happy"].support == 3
    assert metrics.scalars()["macro_f1"] == OLD_METRICS["macro_f1"]
    record = run.record()
    assert (record.schema_version, record.seed, record.config["name"]) == (1, 1, "tiny")
    assert run.log()["valid_loss"].tolist() == [1.5, 1.52]
    assert run.log_rows() == OLD_LOG
    assert run.predictions()["pred"].tolist() == PRED


def test_rescoring_writes_a_new_version_and_keeps_the_first(old_run):
    """The plan collects a run scored before the one-label-set rule: it is re-scored from its
    predictions into test_metrics.v2.json, the file training wrote stays as it was, and every
    reader takes the new version (so a second collection re-scores nothing)."""
    first = (old_run / "test_metrics.json").read_bytes()
    spec = ex.RunSpec("multimodal", "faithful", "paper", 1, load_config("tiny"))
    row = ex._row(spec, old_run)
    assert row["macro_f1"] == pytest.approx((2 / 3 + 0.4) / 2)     # neutral and happy only
    assert (old_run / "test_metrics.json").read_bytes() == first
    run = RunDir(old_run)
    assert run.metric_versions() == [1, 2]
    newest = run.metrics()
    assert newest.version == 2 and newest.label_set == ["neutral", "happy"]
    assert newest.rescored == ex.LABEL_SET_RESCORE and newest.schema_version > 1
    assert newest.checkpoint == "last" and newest.epochs_trained == 3    # the run's own fields
    assert run.metrics(1).macro_f1 == OLD_METRICS["macro_f1"]
    assert ex.load_metrics(old_run) == newest
    assert ex._row(spec, old_run) == row and run.metric_versions() == [1, 2]
    assert "version" not in row and "schema_version" not in row     # no new table columns


def test_a_new_training_score_drops_the_earlier_versions(old_run):
    run = RunDir(old_run)
    ex.rescore_classifier(old_run)
    fresh = SplitMetrics.model_validate({**OLD_METRICS, "label_set": CLASSES, "scoring_seed": 1})
    run.write_metrics(fresh)
    assert run.metric_versions() == [1]
    assert run.metrics().scoring_seed == 1 and run.metrics().version == 1
    run.clear()
    assert not run.is_scored() and not run.has_log() and run.metric_versions() == []
    assert (old_run / "run.json").is_file()      # the record is rewritten by the next training


def test_an_undefined_correlation_is_written_and_read_as_nan(tmp_path):
    """A constant prediction has no Pearson r or CCC: NaN in the file, not a missing key."""
    run = RunDir(tmp_path)
    run.write_metrics(SplitMetrics(loss=1.0, n=3, rmse=1.0, mae=1.0, pearson_r=float("nan"),
                                   ccc=float("nan"), checkpoint="last", epochs_trained=1,
                                   stage="audio", split="paper", seed=1))
    assert "NaN" in (tmp_path / "test_metrics.json").read_text()
    assert run.metrics().scalars()["pearson_r"] != run.metrics().scalars()["pearson_r"]


def test_a_record_that_is_not_one_is_a_one_line_error(old_run):
    (old_run / "test_metrics.json").write_text(json.dumps({"loss": "high"}))
    with pytest.raises(KoemoInputError, match=r"test_metrics\.json: not a readable SplitMetrics"):
        RunDir(old_run).metrics()


def test_the_run_record_is_typed_and_versioned(tmp_path):
    cfg = load_config("tiny")
    path = save_run_record(tmp_path, cfg, 7, stage="audio")
    record = RunDir(tmp_path).record()
    assert path.parent == tmp_path and RunDir(tmp_path).config_file.is_file()
    assert record.seed == 7 and record.schema_version == 2 and record.config["name"] == "tiny"
    assert record.model_dump()["stage"] == "audio" and "torch" in record.versions


# ----------------------------------------------------------------------------- one owner

OWNER = "modeling/runs.py"
# Every file name in a run directory (and the metric versions beside the first).
RUN_FILES = re.compile(r"_metrics(\.v\d+)?\.json|_predictions\.parquet|\blog\.(csv|json)\b"
                       r"|\brun\.json\b|\bconfig\.yaml\b")
RUN_FOLDERS = {"best", "last", "state", "frozen", "tensorboard", ".koemo-run.lock"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def run_file_mentions(source: str) -> list[str]:
    """Where code spells a run file's name or joins a run folder's name onto a path
    (`x / "best"`). Documentation is left alone: docstrings and multi-line text (a generated
    page's prose)."""
    tree, found = ast.parse(source), []
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docs and "\n" not in node.value \
                and RUN_FILES.search(node.value):
            found.append(f"line {node.lineno}: {node.value[:60]!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and isinstance(node.right, ast.Constant) and node.right.value in RUN_FOLDERS:
            found.append(f"line {node.lineno}: / {node.right.value!r}")
    return found


def test_the_scan_finds_a_run_file_opened_by_name():
    planted = 'import json\ndef metrics(d):\n    """Reads test_metrics.json."""\n' \
              '    return json.loads((d / "test_metrics.json").read_text())\n'
    assert run_file_mentions(planted) == ["line 4: 'test_metrics.json'"]
    assert run_file_mentions('p = run_dir / "best"\nq = f"{d}/log.csv"\n') == [
        "line 1: / 'best'", "line 2: '/log.csv'"]


# Modules that name a file of another format with a run file's name: FunASR's model
# directory (emotion2vec+, SenseVoice) holds its own config.yaml, named once there.
OTHER_FORMATS = {"upstreams/funasr_loader.py": {"'config.yaml'"}}


def test_no_module_but_the_owner_names_a_run_file():
    package = Path(koemo.__file__).parent
    found = {}
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        other = OTHER_FORMATS.get(module, set())
        hits = [hit for hit in run_file_mentions(path.read_text(encoding="utf-8"))
                if hit.split(": ", 1)[1] not in other]
        if module != OWNER and hits:
            found[module] = hits
    assert found == {}, f"read and write runs through koemo.modeling.runs.RunDir: {found}"
