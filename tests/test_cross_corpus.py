"""A workdir holding KEMDy19 and KEMDy20: pooled session folds and the train-on-one,
test-on-the-other protocols (koemo.dataset.combine)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from koemo.cli import main
from koemo.config.load import with_changes
from koemo.dataset.combine import prepare_corpora
from koemo.dataset.prepare import REPORT_MD, TABLE_FILE
from koemo.errors import KoemoInputError
from koemo.modeling.data import split_rows


@pytest.fixture(scope="module")
def both(kemdy19_corpus, tiny_corpus, tiny_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("both")
    return prepare_corpora([tiny_corpus, kemdy19_corpus], workdir, tiny_config, progress=False,
                           features=False)


def with_protocol(cfg, protocol, **data):
    return with_changes(cfg, {"data": {"protocol": protocol, **data}})


def test_both_corpora_in_one_table(both):
    table, report = both.table, both.report
    parts = {name: json.loads((both.workdir / "corpora" / name / "prepare_report.json")
                              .read_text(encoding="utf-8")) for name in ("kemdy19", "kemdy20")}
    assert table["corpus"].drop_duplicates().tolist() == ["kemdy19", "kemdy20"]
    for name, part in parts.items():
        assert (table["corpus"] == name).sum() == part["rows_kept"]
    assert report["rows_read"] == sum(p["rows_read"] for p in parts.values())
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    assert set(report["repeated_transcripts"]) == {"kemdy19", "kemdy20"}
    assert table["segment_id"].is_unique and table["speaker"].nunique() == 3 * 2 + 5 * 2
    assert "kemdy19" in (both.workdir / REPORT_MD).read_text(encoding="utf-8")


@pytest.mark.parametrize("source,target", [("kemdy19", "kemdy20"), ("kemdy20", "kemdy19")])
def test_cross_corpus_protocol_never_trains_or_validates_on_the_target(both, tiny_config,
                                                                      source, target):
    cfg = with_protocol(tiny_config, f"{source}_to_{target}")
    train, valid, test = (split_rows(both.table, cfg, s) for s in ("train", "valid", "test"))
    assert set(train["corpus"]) == set(valid["corpus"]) == {source}
    assert set(test["corpus"]) == {target}
    assert len(test) == (both.table["corpus"] == target).sum()
    assert len(train) + len(valid) == (both.table["corpus"] == source).sum()
    assert set(test["segment_id"]).isdisjoint(set(train["segment_id"]) | set(valid["segment_id"]))


def test_pooled_session_folds_test_on_both_corpora(both, tiny_config):
    for fold in range(5):
        cfg = with_protocol(tiny_config, "cv5", fold=fold)
        test = split_rows(both.table, cfg, "test")
        train = pd.concat([split_rows(both.table, cfg, s) for s in ("train", "valid")])
        assert set(test["speaker"]).isdisjoint(train["speaker"])
        assert ((test["session"] - 1) % 5 == fold).all()
        if fold < 3:      # KEMDy19 has three sessions here, KEMDy20 five
            assert set(test["corpus"]) == {"kemdy19", "kemdy20"}


def test_second_run_reuses_the_combined_table(both, kemdy19_corpus, tiny_corpus, tiny_config):
    again = prepare_corpora([kemdy19_corpus, tiny_corpus], both.workdir, tiny_config,
                            progress=False, features=False)
    assert again.reused
    pd.testing.assert_frame_equal(again.table, both.table)


def test_the_same_corpus_twice_is_refused(kemdy19_corpus, tiny_config, tmp_path):
    with pytest.raises(KoemoInputError, match="given twice"):
        prepare_corpora([kemdy19_corpus, kemdy19_corpus], tmp_path, tiny_config, progress=False,
                        features=False)


def test_cli_prepares_both_and_exports_their_folds(kemdy19_corpus, tiny_corpus, tmp_path):
    workdir, out = tmp_path / "w", tmp_path / "emobox"
    assert main(["prepare", "--data", str(kemdy19_corpus), "--data", str(tiny_corpus),
                 "--workdir", str(workdir), "--config", "tiny", "--no-features",
                 "--no-progress"]) == 0
    table = pd.read_parquet(workdir / TABLE_FILE)
    assert "split_kemdy19_to_kemdy20" in table and "split_kemdy20_to_kemdy19" in table
    assert main(["folds", "--export", str(out), "--workdir", str(workdir)]) == 0
    first = json.loads((out / "kemdy20" / "kemdy20.jsonl").read_text(encoding="utf-8")
                       .splitlines()[0])
    assert first["wav"].startswith(f"{tiny_corpus.name}/wav/Session01/")


def test_plan_runs_the_cross_corpus_protocols_where_both_corpora_are(both, tiny_workdir,
                                                                    tiny_config, capsys):
    from koemo.experiments.plan import main_plan
    cfg = with_changes(tiny_config, {"reproduce": {
        "protocols": ["kemdy19_to_kemdy20", "kemdy20_to_kemdy19"], "variants": ["faithful"],
        "seeds": [1]}})
    plan = main_plan(cfg, stages=("audio",), workdir=both.workdir)
    assert [(s.split, s.cfg.data.protocol) for s in plan] == \
        [("kemdy19_to_kemdy20", "kemdy19_to_kemdy20"), ("kemdy20_to_kemdy19", "kemdy20_to_kemdy19")]
    assert main_plan(cfg, stages=("audio",), workdir=tiny_workdir) == []
    assert "does not hold both corpora" in capsys.readouterr().out


@pytest.mark.parametrize("corpus", ["kemdy19", "kemdy20"])
def test_in_corpus_folds_split_one_corpus_as_its_own_workdir_does(both, tiny_config, corpus):
    own = pd.read_parquet(both.workdir / "corpora" / corpus / TABLE_FILE).set_index("segment_id")
    other = both.table[both.table["corpus"] != corpus]
    for fold in range(5):
        cfg = with_protocol(tiny_config, f"{corpus}_cv5", fold=fold)
        column = f"split_{corpus}_cv5_{fold}"
        assert (other[column] == "unused").all()           # never trained, validated or scored
        mine = both.table[both.table["corpus"] == corpus].set_index("segment_id")
        pd.testing.assert_series_equal(mine[column], own[f"split_cv5_{fold}"].loc[mine.index],
                                       check_names=False)
        if fold < (3 if corpus == "kemdy19" else 5):
            rows = pd.concat([split_rows(both.table, cfg, s) for s in ("train", "valid", "test")])
            assert set(rows["corpus"]) == {corpus}
            assert len(rows) == len(own)


def test_plan_names_the_in_corpus_folds_and_their_run_directories(both, tiny_config):
    from koemo.experiments.plan import main_plan, protocol_of, split_column_of
    from koemo.modeling.runs import run_dir_for, workdir_of_run
    cfg = with_changes(tiny_config, {"reproduce": {
        "protocols": ["kemdy19_cv5"], "variants": ["faithful"], "seeds": [1]}})
    plan = main_plan(cfg, stages=("audio",), workdir=both.workdir)
    # KEMDy19 has three sessions here: folds 3 and 4 hold no test session
    assert [s.split for s in plan] == ["kemdy19_cv5_f0", "kemdy19_cv5_f1", "kemdy19_cv5_f2"]
    dirs = [run_dir_for(both.workdir, s.cfg, "audio", 1) for s in plan]
    assert len(set(dirs)) == 3 and dirs[1].parts[-4] == "kemdy19_cv5_f1"
    assert workdir_of_run(dirs[0]) == both.workdir
    assert {protocol_of(s.split) for s in plan} == {"kemdy19_cv5"}
    assert split_column_of("kemdy19_cv5_f1") == "split_kemdy19_cv5_1"
    assert split_column_of("cv5_f3") == "split_cv5_3"
    assert split_column_of("kemdy20_to_kemdy19") == "split_kemdy20_to_kemdy19"
