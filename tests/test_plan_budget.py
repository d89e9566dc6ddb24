"""Plan sizes: the budget config, one run per effective identity, and `koemo plan --summary`."""
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest

from koemo.experiments import plan as ex
from koemo.reporting import page as results_page, report
from koemo.experiments import scaleout
from koemo.config.load import load_config
from koemo.modeling.resume import resume_fingerprint
from koemo.modeling.runs import run_dir_for
from koemo.reporting.plan_summary import expected_train_rows, summarize

CONFIGS = ("paper", "paper_budget", "demo", "tiny")


def _run_dir(spec):
    return run_dir_for("W", spec.cfg, spec.stage, spec.seed, spec.classifier_kind)


def test_budget_plan_trains_the_papers_tables_once_on_the_paper_protocol():
    cfg = load_config("paper_budget")
    plan = scaleout.full_plan(cfg)
    assert {s.split for s in plan} == {"paper"} and {s.seed for s in plan} == {1}
    assert Counter(s.stage for s in plan) == {"audio": 6, "text": 6, "multimodal": 4}
    assert {s.variant for s in ex.main_plan(cfg)} == {"faithful", "corrected"}
    assert ex.fusion_plan(cfg) == []
    for stage in ("audio", "text"):    # the n_layers ablation: faithful runs of depth 3-7
        depths = [s.cfg.models.stage(stage).n_layers for s in plan
                  if s.stage == stage and not any(s.cfg.fixes.model_dump().values())]
        assert sorted(depths) == [3, 4, 5, 6, 7]
    combos = {(s.cfg.models.audio.n_layers, s.cfg.models.text.n_layers)
              for s in ex.combination_plan(cfg) if s.stage == "multimodal"}
    assert combos == {(6, 6), (7, 6), (7, 5)}
    # the same run directories as the full plan's: a later `--config paper` reuses them all
    full = {_run_dir(s) for s in scaleout.full_plan(load_config("paper"))}
    assert {_run_dir(s) for s in plan} <= full


@pytest.mark.parametrize("name", CONFIGS)
def test_no_two_runs_of_a_plan_share_an_effective_identity(name):
    plan = [s for part in ex.plan_parts(load_config(name)).values() for s in part]
    dirs_of, identities_of = defaultdict(set), defaultdict(set)
    for spec in plan:
        dirs_of[ex.run_identity(spec)].add(_run_dir(spec))
        identities_of[_run_dir(spec)].add(ex.run_identity(spec))
    assert all(len(dirs) == 1 for dirs in dirs_of.values()), \
        [dirs for dirs in dirs_of.values() if len(dirs) > 1]
    assert all(len(ids) == 1 for ids in identities_of.values())


@pytest.mark.parametrize("name", CONFIGS)
def test_every_classifier_finds_regressors_of_its_depths_in_the_plan(name):
    plan = scaleout.full_plan(load_config(name))
    regressors = {_run_dir(s): s for s in plan if s.stage != "multimodal"}
    for spec in (s for s in plan if s.stage == "multimodal"):
        for stage in ("audio", "text"):
            found = regressors[run_dir_for("W", spec.cfg, stage, spec.seed)]
            assert found.cfg.models.stage(stage) == spec.cfg.models.stage(stage), spec.key
            assert (found.split, found.cfg.fixes) == (spec.split, spec.cfg.fixes)


def test_combination_regressors_are_the_ablation_runs_of_their_depth():
    cfg = load_config("paper")
    specs = {(s.variant, s.stage): s for s in ex.combination_plan(cfg)}
    assert _run_dir(specs["audio6/text6", "audio"]) == Path("W/runs/paper/paper-audioL6/audio/seed1")
    assert _run_dir(specs["audio7/text6", "audio"]) == Path("W/runs/paper/paper/audio/seed1")
    assert _run_dir(specs["audio7/text6", "text"]) == Path("W/runs/paper/paper-textL6/text/seed1")
    classifier = specs["audio6/text6", "multimodal"].cfg
    assert classifier.regressor_runs == {"audio": "paper-audioL6", "text": "paper-textL6"}
    # where the regressors live is no setting: a combination classifier trained before they
    # were shared keeps its identity and is reused as it is
    without = {k: v for k, v in classifier.as_dict().items() if k != "regressor_runs"}
    assert resume_fingerprint(classifier, "multimodal") == resume_fingerprint(without, "multimodal")


def test_a_combination_trains_no_regressor_of_its_own(tiny_workdir, tmp_path):
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    cfg = load_config("tiny", ["reproduce.ablation.combos=[[2,1]]", "train.audio.epochs=1",
                               "train.text.epochs=1", "train.multimodal.epochs=1"])
    runs = ex.run_plan(ex.combination_plan(cfg), workdir, progress=False, parallel_runs=1)
    assert (workdir / "runs/paper/tiny-audioL2/audio/seed1/test_metrics.json").is_file()
    assert (workdir / "runs/paper/tiny/text/seed1/test_metrics.json").is_file()
    assert not (workdir / "runs/paper/tiny-combo-a2t1/audio").exists()
    classifier = runs[runs["stage"] == "multimodal"].iloc[0]
    assert Path(classifier["run_dir"]) == workdir / "runs/paper/tiny-combo-a2t1/attention_lstm/seed1"


def test_summary_counts_the_plan_and_its_row_epochs(tiny_workdir):
    cfg = load_config("tiny")
    summary = summarize(cfg, tiny_workdir)
    total = summary["parts"][-1]
    plan = scaleout.full_plan(cfg, tiny_workdir)
    assert total["runs"] == len(plan)
    assert {s: total[s] for s in ("audio", "text", "multimodal")} == Counter(s.stage for s in plan)
    from koemo.modeling.data import stage_rows
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    expected = sum(len(stage_rows(table, s.cfg, "train", s.seed)) * cfg.train.audio.epochs
                   for s in plan if s.stage == "audio")
    assert total["audio row-epochs"] == expected
    assert summary["parts"][-1]["H100 estimate (min)"] is None     # not the paper's shapes


def test_summary_without_workdir_uses_the_expected_kemdy20_size(capsys):
    from koemo.cli import main

    assert main(["plan", "--config", "paper_budget", "--summary", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    parts = {row["part"]: row for row in summary["parts"]}
    assert (parts["total"]["runs"], parts["combinations"]["runs"], parts["fusion"]["runs"]) == (16, 2, 0)
    assert parts["total"]["text row-epochs"] == 6 * expected_train_rows() * 30
    assert parts["total"]["H100 estimate (min)"] > 0
    assert main(["plan", "--config", "paper", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "| total | 40 | 40 | 68 | 148 |" in out and "not a measurement" in out


def test_plan_without_summary_still_needs_a_workdir():
    from koemo.cli import main

    assert main(["plan", "--config", "tiny"]) != 0


def test_a_plan_without_fusion_study_says_so_instead_of_an_empty_table(tmp_path):
    cfg = load_config("paper_budget")
    runs = ex.run_plan(ex.fusion_plan(cfg), tmp_path)
    tables = report.fusion_tables(runs, cfg)
    for name in ("fusion", "paired"):
        text = report.markdown_table(tables[name])
        assert "not in this config's plan" in text and "|" not in text
    report.save_tables(tables, tmp_path / "tables", prefix="fusion_")
    page = results_page.write_paper_page(tmp_path, cfg, tmp_path).read_text()
    assert "## Fusion study" in page and "figures/fusion.png" not in page
    assert "same frozen regressors" not in page     # no description of a table not drawn
