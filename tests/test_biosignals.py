"""Bio-signal loader (EDA/TEMP/IBI per utterance, coverage) and the step 1-3 analysis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from koemo import biosignals as B
from koemo.biosignals.io import _timestamps_as_seconds
from koemo.errors import KoemoInputError
from koemo.dataset.labels import PAPER_CLASSES

HEADER1 = ["Numb", "WAV", " ", "Segment ID", "Total Evaluation", " ", " "] + \
    [x for i in range(1, 11) for x in (f"Eval{i:02d}F", " ", " ")]
HEADER2 = [" ", "start", "end", " ", "Emotion", "Valence", "Arousal"] + \
    ["Emotion", "Valence", "Arousal"] * 10


def write_annotation(root, session, labelled):
    """`labelled`: [(segment_id, total emotion)] -> annotation/SessNN_eval.csv (37 columns)."""
    lines = [",".join(HEADER1), ",".join(HEADER2)]
    for i, (segment_id, emotion) in enumerate(labelled, start=1):
        lines.append(",".join([str(i), f"{i}.0", f"{i + 1}.0", segment_id, emotion, "3.0", "3.0"]
                              + [emotion.split(";")[0], "3", "3"] * 10))
    path = root / "annotation" / f"Sess{session:02d}_eval.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def signal_path(root, signal, session, script, speaker):
    path = root / signal / f"Session{session:02d}" / f"Sess{session:02d}_script{script:02d}_{speaker}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_signal(path, signal, segments, gap=3, start=1591000000.0):
    """`segments`: {segment_id: values}; `gap` unlabelled samples before and between them."""
    lines = ([f"{start:.6f},IBI,2020-06-01 17:26:40"] if signal == "IBI" else
             [f"{start:.6f},2020-06-01 17:26:40", "4.000000,hz"])
    t = 0.0

    def row(value, segment=""):
        nonlocal t
        t += 0.25
        cells = [f"{t:.3f}", f"{value:.6f}"] if signal == "IBI" else [f"{value:.6f}"]
        cells.append(f"{start + t:.3f}")
        return ",".join(cells + ([segment] if segment else []))

    for segment_id, values in segments.items():
        lines += [row(0.5) for _ in range(gap)]
        lines += [row(v, segment_id) for v in values]
    lines += [row(0.5) for _ in range(gap)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading single files

def test_read_eda_file_cuts_by_segment_and_reports_bad_rows(tmp_path):
    path = write_signal(tmp_path / "eda.csv", "EDA",
                        {"Sess01_script01_User001F_001": [1.0, 2.0, 3.0]}, gap=2)
    lines = path.read_text().splitlines()
    lines.insert(4, "abc,1591000000.5")                      # line 5: value not a number
    lines.insert(6, "1.0,2.0,Sess01_script01_User001F_001,x")  # line 7: too many fields
    path.write_text("\n".join(lines) + "\n")

    parsed = B.read_signal_file(path, "EDA")
    assert parsed.start_unix == pytest.approx(1591000000.0) and parsed.rate_hz == 4.0
    assert [line for line, _ in parsed.bad_rows] == [5, 7]
    assert "not a number" in parsed.bad_rows[0][1] and "4 fields" in parsed.bad_rows[1][1]
    inside = parsed.samples[parsed.samples["segment_id"] != ""]
    assert inside["value"].tolist() == [1.0, 2.0, 3.0]
    assert len(parsed.samples) == 3 + 4                      # 2 + 2 unlabelled samples kept
    assert np.all(np.diff(parsed.samples["timestamp"]) > 0)


def test_read_ibi_file_keeps_offsets_and_intervals(tmp_path):
    path = write_signal(tmp_path / "ibi.csv", "IBI",
                        {"Sess01_script01_User001F_001": [0.81, 0.79]}, gap=1)
    parsed = B.read_signal_file(path, "IBI")
    assert parsed.rate_hz is None and not parsed.bad_rows
    inside = parsed.samples[parsed.samples["segment_id"] != ""]
    assert inside["value"].tolist() == [0.81, 0.79]
    assert inside["offset"].tolist() == [0.5, 0.75]


@pytest.mark.parametrize("signal, preamble, expected", [
    ("EDA", "garbage", "line 1"),
    ("TEMP", "1591000000.0,2020-06-01\n4.000000,Hz-ish", "line 2"),
    ("IBI", "1591000000.0,2020-06-01 17:26:40", "IBI"),
])
def test_broken_preamble_names_file_and_problem(tmp_path, signal, preamble, expected):
    path = tmp_path / "Sess01_script01_User001F.csv"
    path.write_text(preamble + "\n1.0,2.0\n")
    with pytest.raises(KoemoInputError, match=expected) as err:
        B.read_signal_file(path, signal)
    assert str(path) in str(err.value) and "preamble" in str(err.value)


def test_dates_as_timestamps_become_epoch_seconds():
    seconds = _timestamps_as_seconds(pd.Series(["1970-01-01 00:00:01.5", "1970-01-01 00:00:02"]))
    assert seconds.tolist() == [1.5, 2.0]


# ------------------------------------------------------------------ loading a corpus

@pytest.fixture
def small_corpus(tmp_path):
    """Session 1, two speakers, script 1: a 0-byte IBI file, a TEMP file with a broken
    preamble, an EDA segment without samples, and a file missing altogether."""
    root = tmp_path / "KEMDy20"
    f_ids = [f"Sess01_script01_User001F_{i:03d}" for i in (1, 2, 3)]
    m_ids = [f"Sess01_script01_User002M_{i:03d}" for i in (1, 2)]
    write_annotation(root, 1, [(f_ids[0], "neutral"), (m_ids[0], "happy"), (f_ids[1], "angry"),
                               (m_ids[1], "neutral;happy"), (f_ids[2], "sad")])
    rng = np.random.default_rng(0)
    for speaker, ids in (("User001F", f_ids), ("User002M", m_ids)):
        for signal in ("EDA", "TEMP", "IBI"):
            keep = [i for i in ids if not (signal == "EDA" and i == f_ids[2])]
            write_signal(signal_path(root, signal, 1, 1, speaker), signal,
                         {i: rng.uniform(0.5, 1.0, 6) for i in keep})
    signal_path(root, "IBI", 1, 1, "User001F").write_bytes(b"")
    broken = signal_path(root, "TEMP", 1, 1, "User002M")
    broken.write_text("not a preamble\n" + broken.read_text())
    signal_path(root, "EDA", 1, 1, "User002M").unlink()
    return root


def test_load_biosignals_reports_every_problem_and_continues(small_corpus):
    series, coverage = B.load_biosignals(small_corpus)
    files = coverage[coverage["level"] == "file"].set_index(["signal", "speaker"])
    assert files.index.is_unique and len(files) == 6
    assert files.loc[("IBI", "User001F"), "status"] == "empty"
    assert files.loc[("TEMP", "User002M"), "status"] == "broken"
    assert "Sess01_script01_User002M.csv" in files.loc[("TEMP", "User002M"), "problem"]
    assert files.loc[("EDA", "User002M"), "status"] == "missing"
    assert files.loc[("IBI", "User002M"), "status"] == "ok"

    # Good files still load: segments in file order with their own samples.
    assert series["EDA"]["segment_id"].tolist() == ["Sess01_script01_User001F_001",
                                                    "Sess01_script01_User001F_002"]
    assert series["TEMP"]["n_samples"].tolist() == [6, 6, 6]
    assert series["IBI"]["segment_id"].str.contains("User002M").all()
    assert set(series["IBI"].columns) >= {"values", "timestamps", "offsets"}

    lacking = coverage[coverage["status"] == "no_samples"].set_index(["signal", "segment_id"])
    assert lacking.loc[("EDA", "Sess01_script01_User001F_003"), "problem"] == \
        "no sample carries this segment id"
    assert lacking.loc[("EDA", "Sess01_script01_User002M_001"), "problem"] == "its file is missing"
    assert len(lacking.loc["IBI"]) == 3 and len(lacking.loc["TEMP"]) == 2

    summary = B.coverage_summary(coverage).set_index(["signal", "session"])
    assert summary.loc[("EDA", 1), "segments_with_samples"] == 2
    assert summary.loc[("EDA", 1), "segments_without_samples"] == 3
    assert summary.loc[("EDA", 1), ["ok", "missing", "empty", "broken"]].tolist() == [1, 1, 0, 0]


def test_bad_rows_are_listed_one_by_one(small_corpus):
    path = signal_path(small_corpus, "TEMP", 1, 1, "User001F")
    lines = path.read_text().splitlines()
    lines[5] = "warm," + lines[5].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    _, coverage = B.load_biosignals(small_corpus, signals=["TEMP"])
    bad = coverage[coverage["status"] == "bad_row"]
    assert bad["line"].tolist() == [6] and "'warm' is not a number" in bad["problem"].iloc[0]


def test_missing_root_and_unknown_signal_are_input_errors(tmp_path, small_corpus):
    with pytest.raises(KoemoInputError, match="not a directory"):
        B.load_biosignals(tmp_path / "nowhere")
    with pytest.raises(KoemoInputError, match="ECG"):
        B.load_biosignals(small_corpus, signals=["ECG"])


# ------------------------------------------------------------------ analysis building blocks

def test_stratified_sample_is_capped_proportional_and_deterministic():
    frame = pd.DataFrame({"label": ["neutral"] * 80 + ["happy"] * 15 + ["sad"] * 5,
                          "x": np.arange(100)})
    sample = B.stratified_sample(frame, "label", 20, seed=3)
    assert len(sample) == 20
    assert sample["label"].value_counts().to_dict() == {"neutral": 16, "happy": 3, "sad": 1}
    assert sample.index.is_monotonic_increasing
    assert sample.equals(B.stratified_sample(frame, "label", 20, seed=3))
    assert not sample.equals(B.stratified_sample(frame, "label", 20, seed=4))
    assert B.stratified_sample(frame, "label", 500, seed=3) is frame


def test_normalised_series_resamples_and_scales_each_series():
    X = B.normalised_series([np.array([1.0, 2.0, 3.0]), np.full(7, 33.1),
                             np.array([4.0, 0.0, 4.0, 0.0, 4.0])], length=5)
    assert X.shape == (3, 5, 1)
    np.testing.assert_allclose(X[0, :, 0], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(X[1, :, 0], 0)                # flat: no shape, all zeros
    assert X[2, :, 0].min() == 0 and X[2, :, 0].max() == 1


def test_dtw_kmeans_separates_rising_from_falling_series():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 16)
    raw = [t ** 2 + rng.normal(0, 0.02, 16) for _ in range(10)] + \
          [1 - t ** 2 + rng.normal(0, 0.02, 16) for _ in range(10)]
    X = B.normalised_series(raw, 16)
    table, models = B.dtw_kmeans_sweep(X, [2, 3, 25], seed=0)
    assert table["k"].tolist() == [2, 3, 25]
    assert "number of series" in table.loc[2, "problem"] and 25 not in models
    clusters = models[2].labels_
    assert len(set(clusters[:10])) == 1 and len(set(clusters[10:])) == 1
    assert clusters[0] != clusters[10]
    assert table.loc[0, "silhouette"] > 0.6 > table.loc[1, "silhouette"]

    # Fewer distinct series than k (flat series all become zeros): reported, not a fake score.
    flat = np.zeros((6, 16, 1))
    flat[0, 3] = 1.0
    table, models = B.dtw_kmeans_sweep(flat, [2, 3], seed=0)
    assert list(models) == [2] and np.isnan(table.loc[1, "silhouette"])
    assert "left a cluster empty" in table.loc[1, "problem"]


def test_cluster_association_perfect_and_independent():
    labels = np.array(["happy", "sad"] * 30)
    perfect = B.cluster_association((labels == "happy").astype(int), labels, seed=0)
    assert perfect["cramers_v"] == pytest.approx(1.0)
    assert perfect["p"] < 1e-10 and perfect["p_permutation"] <= 0.002
    assert perfect["contingency"].to_numpy().tolist() == [[0, 30], [30, 0]]
    independent = B.cluster_association(np.repeat([0, 1], 30), labels, seed=0)
    assert independent["chi2"] == pytest.approx(0.0) and independent["p_permutation"] > 0.5
    lone = B.cluster_association(np.zeros(10, int), labels[:10], seed=0)
    assert np.isnan(lone["chi2"]) and np.isnan(lone["cramers_v"])


def test_within_speaker_level_removes_personal_baselines():
    """Emotion shifts the level by 0.2 within each person, persons differ by 10 (a baseline
    skin temperature): the raw test misses the effect, the within-speaker test finds it."""
    rng = np.random.default_rng(0)
    rows = []
    for person in range(12):
        base = rng.uniform(20, 40)
        for i in range(10):
            label = "happy" if i % 2 else "neutral"
            rows.append({"speaker": f"p{person}", "label": label,
                         "level": base + 0.2 * (label == "happy") + rng.normal(0, 0.05)})
    tests, by_label = B.level_tests(pd.DataFrame(rows), alpha=0.05)
    tests = tests.set_index("measure")
    assert not tests.loc["mean_level", "associated"]
    assert tests.loc["within_speaker_level", "associated"]
    assert tests.loc["within_speaker_level", "p"] < 1e-6
    assert by_label.set_index("label")["n"].to_dict() == {"happy": 60, "neutral": 60}


# ------------------------------------------------------------------ the analysis end to end

@pytest.fixture(scope="module")
def tiny_report(tiny_corpus):
    """The synthetic corpus makes EDA follow arousal (level and shape) and TEMP pure noise
    (biosignal_effects default). Checked stable over corpus seeds 0-2 at this size."""
    return B.analyse(tiny_corpus, ks=(2, 3, 5), k=5, seed=0, max_series=200)


def test_analysis_finds_eda_associated_and_temp_not(tiny_report):
    eda, temp = tiny_report.results["EDA"], tiny_report.results["TEMP"]
    assert eda.clusters_associated and eda.cramers_v > 0.25
    assert eda.level_tests.set_index("measure").loc["within_speaker_level", "associated"]
    assert not temp.clusters_associated
    assert not temp.level_tests["associated"].any()
    assert "EDA: DTW k-means clusters (k=5" in eda.conclusion_clusters
    assert " are associated with emotion at alpha=0.05" in eda.conclusion_clusters
    assert " are not associated with emotion at alpha=0.05" in temp.conclusion_clusters
    assert f"Cramer's V = {temp.cramers_v:.3f}" in temp.conclusion_clusters
    assert tiny_report.conclusions[0] == temp.conclusion_clusters


def test_analysis_tables_are_consistent(tiny_report, tiny_corpus):
    eda = tiny_report.results["EDA"]
    assert eda.silhouette["k"].tolist() == [2, 3, 5]
    assert eda.silhouette["silhouette"].between(-1, 1).all()
    assert eda.centroids.shape == (5, B.DEFAULT_SERIES_LENGTH)
    assert eda.contingency.to_numpy().sum() == eda.n_clustered == len(eda.assignments)
    assert set(eda.assignments["label"]) <= set(PAPER_CLASSES)
    # Every labelled segment is either analysed or listed as skipped with a reason, per signal.
    labels, _ = B.read_labels(tiny_corpus)
    series, _ = B.load_biosignals(tiny_corpus, signals=["EDA"])
    skipped = tiny_report.skipped[tiny_report.skipped["signal"] == "EDA"]
    assert eda.n_labelled + len(skipped) == len(series["EDA"])
    assert skipped["reason"].str.len().gt(0).all()


def test_write_report_writes_tables_markdown_and_figures(tiny_report, tmp_path):
    written = B.write_report(tiny_report, tmp_path / "out")
    names = {p.name for p in written}
    assert {"summary.csv", "coverage.csv", "coverage_summary.csv", "skipped.csv", "report.md",
            "EDA_silhouette.csv", "EDA_contingency.csv", "TEMP_level_tests.csv",
            "EDA_centroids.png", "TEMP_silhouette.png"} <= names
    assert all(p.stat().st_size > 0 for p in written)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("signal")
    assert summary.loc["EDA", "cramers_v"] == pytest.approx(tiny_report.results["EDA"].cramers_v)
    assert bool(summary.loc["TEMP", "clusters_associated"]) is False
    text = (tmp_path / "out" / "report.md").read_text()
    assert tiny_report.results["EDA"].conclusion_level in text
    assert (tmp_path / "out" / "EDA_centroids.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_writes_into_workdir_biosignals(tiny_corpus, tmp_path, capsys):
    from koemo.cli import main

    code = main(["biosignals", "--data", str(tiny_corpus), "--workdir", str(tmp_path),
                 "--signals", "TEMP", "--ks", "2", "3", "--k", "3", "--max-series", "30"])
    assert code == 0
    out = tmp_path / "biosignals"
    assert (out / "report.md").is_file() and (out / "run.json").is_file()
    assert pd.read_csv(out / "TEMP_silhouette.csv")["k"].tolist() == [2, 3]
    assert pd.read_csv(out / "summary.csv")["n_clustered"].tolist() == [30]
    assert "TEMP: DTW k-means clusters (k=3, n=30)" in capsys.readouterr().out


def test_cli_without_annotations_is_a_one_line_error(tmp_path, capsys):
    from koemo.cli import main

    (tmp_path / "TEMP").mkdir()
    assert main(["biosignals", "--data", str(tmp_path), "--workdir", str(tmp_path / "w")]) == 1
    assert "annotation" in capsys.readouterr().err


def test_malformed_annotation_ids_are_reported_not_kept(small_corpus):
    write_annotation(small_corpus, 2, [("Sess02_script01_User003F_001", "happy"),
                                       ("Sess02-script01", "sad")])
    labels, problems = B.read_labels(small_corpus)
    assert labels["session"].tolist() == [1] * 5 + [2]
    assert problems["status"].tolist() == ["bad_row"]
    assert "Sess02_eval.csv: data row 2: segment id 'Sess02-script01'" in problems["problem"].iloc[0]


def test_repeated_annotation_ids_follow_prepares_rule(small_corpus):
    """A copy keeps one row, conflicting rows none (koemo.dataset.duplicates, as in prepare);
    before, every row was a label of its own and the series merge counted the segment twice."""
    write_annotation(small_corpus, 2, [("Sess02_script01_User003F_001", "happy"),
                                       ("Sess02_script01_User003F_002", "sad"),
                                       ("Sess02_script01_User003F_002", "happy")])
    path = small_corpus / "annotation" / "Sess02_eval.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines + [lines[2]]) + "\n", encoding="utf-8")   # a copy of row 1
    labels, problems = B.read_labels(small_corpus)
    assert labels.loc[labels["session"] == 2, "segment_id"].tolist() == \
        ["Sess02_script01_User003F_001"]
    assert problems["status"].tolist() == ["bad_row"] * 3
    reasons = [p.rsplit("(", 1)[1] for p in problems["problem"]]
    assert sorted(reasons) == ["conflicting_segment_id)"] * 2 + ["duplicate_segment_id)"]


# ------------------------------------------------------------------ bio-signal folders absent

@pytest.fixture
def corpus_without_biosignals(tiny_corpus, tmp_path):
    """The synthetic corpus as an audio + text download: no EDA/, TEMP/ or IBI/ folder."""
    import shutil

    root = tmp_path / "KEMDy20_v1_1"
    shutil.copytree(tiny_corpus, root, ignore=shutil.ignore_patterns(*B.SIGNALS))
    assert (root / "annotation").is_dir() and not any((root / s).exists() for s in B.SIGNALS)
    return root


def test_cli_without_biosignal_folders_names_them_in_one_line(corpus_without_biosignals,
                                                               tmp_path, capsys):
    from koemo.cli import main

    code = main(["biosignals", "--data", str(corpus_without_biosignals),
                 "--workdir", str(tmp_path / "w")])
    assert code != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert "not available" in lines[0]
    for signal in ("TEMP", "EDA"):                        # the default signals, full paths
        assert str(corpus_without_biosignals / signal) in lines[0]
    assert not (tmp_path / "w" / "biosignals").exists()   # nothing half-written


def test_missing_biosignal_folder_is_its_own_error_type(corpus_without_biosignals):
    from koemo.errors import BiosignalsNotAvailable

    (corpus_without_biosignals / "TEMP").mkdir()
    with pytest.raises(BiosignalsNotAvailable) as err:
        B.analyse(corpus_without_biosignals, signals=["TEMP", "EDA"])
    assert isinstance(err.value, KoemoInputError)          # the CLI's one-line error path
    assert err.value.missing == [corpus_without_biosignals / "EDA"]
    assert err.value.found == [corpus_without_biosignals / "TEMP"]
    assert "present: " + str(corpus_without_biosignals / "TEMP") in str(err.value)


def test_notebook_step_records_not_available_and_the_page_shows_it(corpus_without_biosignals,
                                                                   tmp_path, tiny_config):
    from koemo.reporting.page import write_paper_page

    out = tmp_path / "paper"
    outcome = B.analyse_and_write(corpus_without_biosignals, out, signals=["TEMP", "EDA"])
    assert not outcome.available and outcome.report is None
    assert outcome.missing == [corpus_without_biosignals / "TEMP", corpus_without_biosignals / "EDA"]
    table = (out / "tables" / "biosignals.md").read_text(encoding="utf-8")
    page = (out / "biosignals" / "report.md").read_text(encoding="utf-8")
    for text in (table, page, outcome.summary):
        assert "Not available" in text
        assert all(str(folder) in text for folder in outcome.missing)
    assert set(outcome.written) == {out / "tables" / "biosignals.md", out / "biosignals" / "report.md"}

    results = write_paper_page(tmp_path / "work", tiny_config, out).read_text(encoding="utf-8")
    section = results.split("## Bio-signals and emotion (step 1-3)", 1)[1]
    assert "Not available" in section and str(corpus_without_biosignals / "EDA") in section


def test_notebook_step_still_raises_other_input_errors(tmp_path):
    (tmp_path / "TEMP").mkdir()                            # no annotation/: not "not available"
    with pytest.raises(KoemoInputError, match="annotation") as err:
        B.analyse_and_write(tmp_path, tmp_path / "paper")
    assert not isinstance(err.value, B.BiosignalsNotAvailable)
    assert not (tmp_path / "paper" / "tables" / "biosignals.md").exists()


def test_notebook_step_with_biosignals_writes_report_and_summary(tiny_report, tmp_path,
                                                                 monkeypatch):
    import koemo.biosignals.report as step

    # The analysis itself is tested above; reuse its report instead of clustering again.
    monkeypatch.setattr(step, "analyse", lambda root, **settings: tiny_report)
    out = tmp_path / "paper"
    outcome = B.analyse_and_write("unused", out)
    assert outcome.available and outcome.report is tiny_report and not outcome.missing
    table = (out / "tables" / "biosignals.md").read_text(encoding="utf-8")
    assert all(line in table for line in tiny_report.conclusions)
    assert "Not available" not in table
    assert (out / "biosignals" / "summary.csv").is_file() and (out / "biosignals" / "report.md").is_file()


def test_parallel_k_sweep_gives_the_serial_results():
    """n_jobs only spreads the ks over threads: every table value and label is the same."""
    from koemo.biosignals.clustering import dtw_kmeans_sweep, normalised_series

    rng = np.random.default_rng(3)
    X = normalised_series([np.cumsum(rng.normal(size=rng.integers(6, 30))) for _ in range(24)], 10)
    serial, serial_models = dtw_kmeans_sweep(X, [2, 3, 30], seed=0, n_jobs=1)
    parallel, parallel_models = dtw_kmeans_sweep(X, [2, 3, 30], seed=0, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel, check_exact=True)
    assert serial["problem"].iloc[-1].startswith("needs 2 <= k")
    for k in (2, 3):
        assert np.array_equal(serial_models[k].labels_, parallel_models[k].labels_)
        assert np.array_equal(serial_models[k].cluster_centers_, parallel_models[k].cluster_centers_)


def test_unparsable_annotation_row_is_reported_and_the_rest_kept(small_corpus):
    """A row with a missing column costs that row (listed with its line), not the file."""
    path = small_corpus / "annotation" / "Sess01_eval.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]                  # line 4: 36 columns
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels, problems = B.read_labels(small_corpus)
    assert len(labels) == 4 and "Sess01_script01_User002M_001" not in set(labels["segment_id"])
    assert problems["status"].tolist() == ["bad_row"]
    assert f"{path} line 4 has 36 columns" in problems["problem"].iloc[0]
