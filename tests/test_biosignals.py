"""Bio-signal loader (EDA/TEMP/IBI per utterance, coverage) and the step 1-3 analysis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from koemo import biosignals as B
from koemo.errors import KoemoInputError

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
    seconds = B._timestamps_as_seconds(pd.Series(["1970-01-01 00:00:01.5", "1970-01-01 00:00:02"]))
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
