"""benchmarks/mutation.py's bookkeeping (no mutmut run): one file per day, keyed by module."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:          # `benchmarks` is a top-level folder, not installed
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import mutation  # noqa: E402


def test_mutants_are_assigned_to_their_module():
    assert mutation.module_of("koemo.modeling.models.x_num_classes__mutmut_3") == "koemo.modeling.models"
    assert (mutation.module_of("koemo.modeling.models.xǁAudioRegressorǁmasks__mutmut_12")
            == "koemo.modeling.models")
    assert mutation.dotted("src/koemo/dataset/prepare.py") == "koemo.dataset.prepare"


def test_module_entry_counts_only_its_own_mutants(monkeypatch, tmp_path):
    monkeypatch.setattr(mutation, "mutmut", lambda work, *args, **kw: type("R", (), {"stdout": f"diff of {args[-1]}"}))
    status = {"koemo.modeling.models.x_f__mutmut_1": "killed",
              "koemo.modeling.models.x_f__mutmut_2": "survived",
              "koemo.modeling.models.xǁAǁg__mutmut_1": "no tests",
              "koemo.modeling.checkpoint.x_h__mutmut_1": "survived"}
    entry = mutation.module_entry("models", status, tmp_path)
    assert entry["stats"]["total"] == 3 and entry["stats"]["killed"] == 1
    assert entry["stats"]["survived"] == 1 and entry["stats"]["no_tests"] == 1
    assert entry["score"] == round(1 / 3, 4)
    assert entry["survivors"] == [{"mutant": "koemo.modeling.models.x_f__mutmut_2",
                                   "diff": "diff of koemo.modeling.models.x_f__mutmut_2"}]


def test_runs_of_one_day_merge_by_module(tmp_path):
    out = tmp_path / "2026-12-03-mutation.json"
    first = mutation.merge_day(out, "2026-12-03", {"models": {"score": 0.5}})
    out.write_text(json.dumps(first))
    second = mutation.merge_day(out, "2026-12-03", {"prepare": {"score": 0.7}})
    assert second["modules"] == {"models": {"score": 0.5}, "prepare": {"score": 0.7}}
    out.write_text(json.dumps(second))
    rerun = mutation.merge_day(out, "2026-12-03", {"models": {"score": 0.9}})
    assert rerun["modules"] == {"models": {"score": 0.9}, "prepare": {"score": 0.7}}


def test_a_single_run_file_of_the_old_layout_is_kept(tmp_path):
    out = tmp_path / "2026-12-02-mutation.json"
    old = {"date": "2026-12-02", "modules": {"metrics": "src/koemo/modeling/metrics.py"},
           "score": 0.7135}
    out.write_text(json.dumps(old))
    day = mutation.merge_day(out, "2026-12-02", {"models": {"score": 0.9}})
    assert day["earlier_run"] == old and day["modules"] == {"models": {"score": 0.9}}


def test_a_limited_run_scores_only_the_checked_mutants(monkeypatch, tmp_path):
    """--mutants / --time-limit leave mutants "not checked": they are counted, not scored."""
    monkeypatch.setattr(mutation, "mutmut", lambda work, *args, **kw: type("R", (), {"stdout": ""}))
    status = {"koemo.dataset.prepare.x_f__mutmut_1": "killed",
              "koemo.dataset.prepare.x_f__mutmut_2": "survived",
              "koemo.dataset.prepare.x_g__mutmut_1": "not checked",
              "koemo.dataset.prepare.x_g__mutmut_2": "not checked"}
    entry = mutation.module_entry("prepare", status, tmp_path)
    assert entry["stats"]["total"] == 4 and entry["stats"]["not_checked"] == 2
    assert entry["score"] == 0.5 and entry["score_over"] == "checked mutants"
