"""What a predictor was trained on, recorded in its manifest (`provenance`) when it is exported
and shown with every prediction (`koemo predict`, the app).

    {"corpus": "KEMDy20_v1_1", "synthetic": false, "config_name": "paper",
     "test_metrics": {"audio": {"ccc": ...}, "text": {...}, "multimodal": {"macro_f1": ...}}}

`synthetic` is true when the corpus the runs were prepared from carries the mark `koemo synth`
leaves (`koemo-synthetic.json`, or the notebooks' `.koemo-synth.json`), false for another
corpus, null when the workdir's prepare report could not be found. A predictor trained on
synthetic data says so in every result (`SYNTHETIC_NOTE`); one exported before this record
existed says "provenance unknown".
"""
from __future__ import annotations

import json
from pathlib import Path

from koemo.config.schema import Config

SYNTHETIC_MARKS = ("koemo-synthetic.json", ".koemo-synth.json")
SYNTHETIC_NOTE = "trained on synthetic data: not meaningful on real speech"
UNKNOWN_NOTE = "provenance unknown: this predictor does not record what it was trained on"
# The test metrics shown in the one-line summary, per stage.
HEADLINE_METRICS = {"multimodal": ("macro_f1", "accuracy"), "audio": ("ccc",), "text": ("ccc",)}


def corpus_record(checkpoint: Path, workdir: str | Path | None) -> dict:
    """{"corpus": name, "synthetic": bool | None} from the workdir's prepare report (the
    workdir given, else found above the checkpoint: runs live at W/runs/...)."""
    candidates = [Path(workdir)] if workdir is not None else list(Path(checkpoint).resolve().parents)
    for candidate in candidates:
        report = candidate / "prepare_report.json"
        if report.is_file():
            try:
                root = Path(json.loads(report.read_text(encoding="utf-8"))["data_root"])
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                break
            return {"corpus": root.name,
                    "synthetic": any((root / mark).is_file() for mark in SYNTHETIC_MARKS)}
    return {"corpus": None, "synthetic": None}


def stage_test_metrics(source: Path) -> dict:
    """The scalar test metrics of the run a stage checkpoint came from ({} without any)."""
    from koemo.modeling.runs import RunDir

    for run in (RunDir(source), RunDir(Path(source).parent)):
        if run.is_scored():
            return run.metrics().scalars()
    return {}


def make_provenance(cfg: Config, sources: dict, workdir: str | Path | None) -> dict:
    return {**corpus_record(sources["multimodal"], workdir), "config_name": cfg.name,
            "test_metrics": {stage: stage_test_metrics(path) for stage, path in sources.items()}}


def provenance_notes(provenance: dict | None) -> list[str]:
    """The notes every prediction of this predictor carries."""
    if not provenance:
        return [UNKNOWN_NOTE]
    return [SYNTHETIC_NOTE] if provenance.get("synthetic") else []


def describe(provenance: dict | None) -> str:
    """One line: corpus, config, headline test metrics."""
    if not provenance:
        return UNKNOWN_NOTE
    kind = {True: "synthetic corpus", False: "corpus", None: "corpus (unknown kind)"}
    corpus = provenance.get("corpus") or "unknown"
    line = f"trained on {kind[provenance.get('synthetic')]} {corpus}, config {provenance.get('config_name')}"
    scores = [f"{stage} {name} {metrics[name]:.3f}"
              for stage, names in HEADLINE_METRICS.items()
              for metrics in [provenance.get("test_metrics", {}).get(stage, {})]
              for name in names if isinstance(metrics.get(name), (int, float))]
    line += "; test: " + ", ".join(scores) if scores else "; no test metrics recorded"
    return line + (f" ({SYNTHETIC_NOTE})" if provenance.get("synthetic") else "")
