"""The experiment matrix: which runs `koemo reproduce` trains, and how configs vary."""
import pandas as pd
import pytest

from koemo.experiments import plan as ex
from koemo.config.load import load_config


@pytest.fixture(scope="module")
def paper_cfg():
    return load_config("paper")


def test_corrected_switches_every_fix_and_renames(paper_cfg):
    fixed = ex.corrected(paper_cfg)
    assert fixed.name == "paper-corrected"
    # Every switch reads the same way: false = as the original, true = fixed.
    fixes, original = fixed.fixes.model_dump(), paper_cfg.fixes.model_dump()
    assert fixes.keys() == original.keys() and "seed_per_sample" in fixes
    assert all(v is True for v in fixes.values())
    assert not any(original.values())


def test_corrected_matches_configs_corrected_yaml(paper_cfg):
    assert ex.corrected(paper_cfg).fixes == load_config("corrected").fixes


def test_split_config_sets_protocol_and_fold(paper_cfg):
    assert ex.split_config(paper_cfg, "paper").data.protocol == "paper"
    fold3 = ex.split_config(paper_cfg, "cv5_f3").data
    assert (fold3.protocol, fold3.fold) == ("cv5", 3)
    with pytest.raises(ValueError, match="unknown split"):
        ex.split_config(paper_cfg, "random")


def test_main_plan_covers_the_full_matrix(paper_cfg):
    plan = ex.main_plan(paper_cfg)
    # 2 variants x (paper + 5 folds) x 3 seeds x 3 stages
    assert len(plan) == 2 * 6 * 3 * 3
    assert len({spec.key for spec in plan}) == len(plan)
    corrected_runs = [s for s in plan if s.variant == "corrected"]
    assert all(s.cfg.fixes.length_padding_mask for s in corrected_runs)


def test_ablation_and_combination_plans_name_their_configs_apart(paper_cfg):
    audio = ex.layer_ablation_plan(paper_cfg, "audio")
    assert [s.cfg.models.audio.n_layers for s in audio] == [3, 4, 5, 6, 7]
    assert len({s.cfg.name for s in audio}) == 5
    combos = ex.combination_plan(paper_cfg)
    multimodal = [s for s in combos if s.stage == "multimodal"]
    assert [(s.cfg.models.audio.n_layers, s.cfg.models.text.n_layers)
            for s in multimodal] == [(6, 6), (7, 6), (7, 5)]


def test_fusion_plan_trains_each_kind_on_the_same_folds(paper_cfg):
    plan = ex.fusion_plan(paper_cfg)
    kinds = {s.classifier_kind for s in plan if s.stage == "multimodal"}
    assert kinds == set(paper_cfg.reproduce.fusion.kinds)
    assert {s.split for s in plan} == {f"cv5_f{k}" for k in range(5)}


def test_paired_fusion_gains_compare_runs_of_the_same_fold():
    from koemo.reporting.report import BETTER_SINGLE, paired_fusion_gains

    scores = {"audio_only": [0.30, 0.50], "text_only": [0.20, 0.55], "tensor": [0.35, 0.52]}
    runs = pd.DataFrame([{"stage": "multimodal", "split": f"cv5_f{k}", "seed": 1,
                          "classifier": kind, "macro_f1": values[k]}
                         for kind, values in scores.items() for k in range(2)])
    table = paired_fusion_gains(runs).set_index("versus")
    assert list(table["classifier"].unique()) == ["tensor"]
    # Fold 1 is easier for everyone: pairing compares tensor with 0.50/0.55 there, not 0.30.
    assert table.loc["audio_only", "wins"] == 2 and table.loc["audio_only", "mean_gain"] == 0.035
    assert table.loc["text_only", "wins"] == 1 and table.loc["text_only", "min_gain"] == -0.03
    assert table.loc[BETTER_SINGLE, "wins"] == 1
    assert table.loc[BETTER_SINGLE, "mean_gain"] == round((0.05 - 0.03) / 2, 3)


def test_mean_std_formats_over_seeds():
    runs = pd.DataFrame({"variant": ["a", "a", "b"], "macro_f1": [0.5, 0.7, 0.4]})
    table = ex.mean_std(runs, ["variant"], ["macro_f1"])
    assert table.loc[0, "macro_f1"] == "0.600 ± 0.141"
    assert table.loc[1, "macro_f1_std"] == 0.0 and table.loc[1, "n_runs"] == 1


def test_overrides_read_exponent_floats_without_a_dot():
    from koemo.config.load import load_config
    cfg = load_config("tiny", ["train.text.lr=1e-3", "name=x1e"])
    assert cfg.train.text.lr == 1e-3 and cfg.name == "x1e"


def _audio_specs(cfg: dict, seeds) -> list:
    paper = ex.split_config(cfg, "paper")
    return [ex.RunSpec("audio", "faithful", "paper", seed, paper) for seed in seeds]


def test_specs_naming_one_run_directory_train_once(tiny_workdir, tiny_config, tmp_path, monkeypatch):
    """An ablation at the config's own depth is the main run: one training, two table rows."""
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    trained = []
    real = ex._train
    monkeypatch.setattr(ex, "_train", lambda spec, w, progress: trained.append(spec) or real(spec, w, progress))
    main = _audio_specs(tiny_config, [1])
    ablation = ex.RunSpec("audio", "audio_layers=1", "paper", 1, main[0].cfg)
    table = ex.run_plan(main + [ablation], workdir, progress=False, parallel_runs=1)
    assert len(trained) == 1
    assert table["variant"].tolist() == ["faithful", "audio_layers=1"]
    assert table["run_dir"].nunique() == 1


def test_finished_runs_are_trained_again_after_the_corpus_is_prepared_again(
        tiny_corpus, tiny_workdir, tiny_config, tmp_path, monkeypatch):
    import shutil

    from koemo.dataset.prepare import prepare
    from koemo.audio.feature_store import open_feature_store
    from koemo.modeling.resume import run_is_finished

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    spec = _audio_specs(tiny_config, [1])
    run_dir = ex.run_plan(spec, workdir, progress=False, parallel_runs=1)["run_dir"][0]
    assert run_is_finished(run_dir, spec[0].cfg, "audio", workdir)
    # Another copy of the corpus (e.g. a corrected release): new inputs, same segment ids.
    prepare(shutil.copytree(tiny_corpus, tmp_path / "corpus2"), workdir, tiny_config, progress=False)
    assert open_feature_store(workdir, tiny_config).meta["source"] is not None
    assert not run_is_finished(run_dir, spec[0].cfg, "audio", workdir)
    trained = []
    real = ex._train
    monkeypatch.setattr(ex, "_train", lambda s, w, progress: trained.append(s) or real(s, w, progress))
    ex.run_plan(spec, workdir, progress=False, parallel_runs=1)
    assert len(trained) == 1 and run_is_finished(run_dir, spec[0].cfg, "audio", workdir)


def test_parallel_runs_train_in_worker_processes(tiny_workdir, tiny_config, tmp_path):
    """Two seeds in two spawned workers: both runs finish and score their test split."""
    import json
    import shutil
    from pathlib import Path

    workdir = tmp_path / "w"
    shutil.copytree(tiny_workdir, workdir)
    table = ex.run_plan(_audio_specs(tiny_config, [1, 2]), workdir, progress=False, parallel_runs=2)
    assert table["seed"].tolist() == [1, 2] and table["run_dir"].nunique() == 2
    for run_dir in table["run_dir"]:
        assert json.loads((Path(run_dir) / "test_metrics.json").read_text())["rmse"] > 0
    again = ex.run_plan(_audio_specs(tiny_config, [1, 2]), workdir, progress=False, parallel_runs=2)
    assert again["rmse"].tolist() == table["rmse"].tolist()     # finished runs are reused
