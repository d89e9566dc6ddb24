"""Every benchmark runs once at size "tiny" (so none can rot) and the framework writes its table."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:          # `benchmarks` is a top-level folder, not installed
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import __main__ as bench_main  # noqa: E402
from benchmarks.common import (REQUIRED_KEYS, check_row, discover, make_row,  # noqa: E402
                               machine_description, run_in_subprocess, write_results)

BENCHMARKS = sorted(discover())


def test_features_benchmark_is_discovered():
    assert "features" in BENCHMARKS
    assert list(discover("bench_features")) == ["features"]
    with pytest.raises(SystemExit, match="no benchmark named"):
        discover("nonexistent")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_at_tiny_size(name, tmp_path):
    rows = discover(name)[name].run("tiny")
    assert rows, f"bench_{name}.run('tiny') returned no rows"
    for row in rows:
        check_row(row)
        assert all(key in row for key in REQUIRED_KEYS)
        assert row["baseline_s"] > 0 and row["candidate_s"] > 0
    md, csv = write_results(rows, "tiny", tmp_path, machine_description())
    text = md.read_text()
    assert all(row["baseline"].replace("|", "\\|") in text for row in rows)
    assert all(row["candidate"].replace("|", "\\|") in text for row in rows)
    assert len(csv.read_text().strip().splitlines()) == len(rows) + 1


def test_check_row_rejects_missing_keys_and_bad_times():
    good = make_row("b", "old", 2.0, "new", 0.5)
    assert good["ratio"] == 4.0
    check_row(good)
    with pytest.raises(ValueError, match="lacks"):
        check_row({k: v for k, v in good.items() if k != "notes"})
    with pytest.raises(ValueError, match="not positive"):
        check_row({**good, "candidate_s": 0.0})


def test_main_writes_table_with_machine_and_keeps_going_after_a_failure(tmp_path, monkeypatch):
    ok = types.SimpleNamespace(run=lambda size: [make_row("fake", "slow way", 3.0, "fast way", 1.5,
                                                          notes=size, peak_mb=12.5)])

    def broken_run(size):
        raise RuntimeError("boom")
    monkeypatch.setattr(bench_main, "discover", lambda only=None: {
        "fake": ok, "broken": types.SimpleNamespace(run=broken_run)})
    assert bench_main.main(["--size", "tiny", "--out", str(tmp_path)]) == 1
    (md,) = tmp_path.glob("*-tiny.md")
    text = md.read_text()
    for expected in ("| fake | slow way | 3 | fast way | 1.5 | 2 | 12.5 | tiny |", "| cpu |",
                     "| cores |", "| ram |", "| torch |", "| gpu |", "broken failed:** RuntimeError: boom"):
        assert expected in text
    assert (tmp_path / md.name.replace(".md", ".csv")).exists()


def test_subprocess_peak_memory_is_the_childs_own():
    big = run_in_subprocess("benchmarks.common:machine_description")
    assert big["peak_rss_mb"] > 0 and big["seconds"] > 0 and "cpu" in big


@pytest.mark.slow
def test_paper_scale_script_runs_every_step_at_tiny_size(tmp_path):
    """The prepared GPU script (benchmarks/device_paper_scale.sh runs it at paper size) goes
    through every step on the tiny config, and its projection adds up its own measurements."""
    from benchmarks import paper_scale

    data = paper_scale.run("tiny", tmp_path / "out", tmp_path / "work")
    steps = data["steps"]
    assert list(steps) == ["corpus", "train", "projection", "loop_audio", "loop_text",
                           "loop_multimodal", "packing_audio", "packing_text",
                           "packing_multimodal", "trim_audio", "trim_text"]
    for stage in ("audio", "text", "multimodal"):
        packed = steps[f"packing_{stage}"]
        assert [row["runs"] for row in packed["rows"]] == [1, 2]
        assert all(len(row["seconds_per_run"]) == row["runs"] and row["samples_per_second"] > 0
                   for row in packed["rows"])
        assert packed["rows"][0]["gain_over_one_run"] == 1.0
    for stage in ("audio", "text"):
        trimmed = steps[f"trim_{stage}"]
        assert 0 < trimmed["kept_fraction"] <= 1 and trimmed["train_seconds_trimmed"] > 0
    for stage in ("audio", "text", "multimodal"):
        paths = [row["benchmark"] for row in steps[f"loop_{stage}"]["rows"]]
        assert paths == [f"loop: {stage} (resident)", f"loop: {stage} (DataLoader)"]
        figures = steps["train"]["stages"][stage]
        assert figures["epochs_run"] == 1 and figures["seconds_per_epoch"] > 0
    from koemo.config.load import load_config
    cfg = load_config("tiny")
    expected = sum(steps["train"]["stages"][s]["fixed_seconds"]
                   + cfg.train.stage(s).epochs * steps["train"]["stages"][s]["seconds_per_epoch"]
                   for s in ("audio", "text", "multimodal")) / 60
    assert steps["projection"]["one_paper_run_minutes"] == pytest.approx(expected, abs=0.051)
    plan = steps["projection"]["plans"]["tiny"]
    assert plan["runs"] == sum(plan["runs_per_stage"].values()) > 3
    saved = json.loads((tmp_path / "out" / "paper_scale.json").read_text())
    assert saved["steps"].keys() == steps.keys()
    assert "## projection" in (tmp_path / "out" / "paper_scale.md").read_text()


def test_loop_benchmark_can_time_the_first_steps_of_an_epoch(module_workdir, tmp_path):
    """The paper-size check times 150 steps, not whole epochs: every side gets the same steps."""
    import torch

    from benchmarks.bench_loop import stage_rows
    from koemo.config.load import load_config

    rows = stage_rows("audio", module_workdir, load_config("tiny"), tmp_path, torch.device("cpu"),
                      repeats=1, warmup=1, max_steps=2)
    assert [row["benchmark"] for row in rows] == ["loop: audio (resident)", "loop: audio (DataLoader)"]
    assert all("first steps of an epoch: 2 steps" in row["notes"] for row in rows)
