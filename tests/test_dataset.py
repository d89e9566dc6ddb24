"""Readers of the KEMDy20 format (koemo.dataset.kemdy20) on small hand-made files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.dataset.kemdy20 import (ANNOTATION_COLUMNS, CorpusFileError, check_wav,
                                   check_wav_content, clean_transcript, parse_segment_id, read_annotations,
                                   read_transcript, read_transcript_with_encoding)
from koemo.errors import KoemoInputError

HEADER1 = ["Numb", "WAV", " ", "Segment ID", "Total Evaluation", " ", " "]
for _i, _g in enumerate("FMFMFMFMFM", start=1):
    HEADER1 += [f"Eval{_i:02d}{_g}", " ", " "]
HEADER2 = [" ", "start", "end", " ", "Emotion", "Valence", "Arousal"] + \
    ["Emotion", "Valence", "Arousal"] * 10


def annotation_line(numb, start, end, sid, total, valence, arousal):
    votes = ["neutral", "3", "3"] * 10
    return [str(numb), str(start), str(end), sid, total, str(valence), str(arousal)] + votes


def write_csv(path, rows, header=(HEADER1, HEADER2)):
    lines = [",".join(r) for r in list(header) + list(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def good_csv(tmp_path):
    return write_csv(tmp_path / "Sess01_eval.csv", [
        annotation_line(1, 1.5, 3.25, "Sess01_script01_User002M_001", "neutral", 3.1, 2.9),
        annotation_line(2, 4.0, 6.0, "Sess01_script01_User001F_001", "happy;neutral", 3.6, 3.3),
    ])


def test_read_annotations_two_header_rows(good_csv):
    frame = read_annotations(good_csv)
    assert list(frame.columns) == ["line"] + ANNOTATION_COLUMNS
    assert len(ANNOTATION_COLUMNS) == 37
    assert frame["segment_id"].tolist() == ["Sess01_script01_User002M_001",
                                            "Sess01_script01_User001F_001"]
    assert frame["line"].tolist() == [3, 4]
    assert frame["emotion_total"].tolist() == ["neutral", "happy;neutral"]
    assert frame["start"].tolist() == [1.5, 4.0] and frame["end"].tolist() == [3.25, 6.0]
    assert frame["valence"].tolist() == [3.1, 3.6] and frame["arousal"].tolist() == [2.9, 3.3]
    assert frame["rater10_valence"].tolist() == [3, 3]
    assert frame.attrs["raters"][:2] == ["Eval01F", "Eval02M"]


def test_read_annotations_accepts_bom_and_keeps_bad_numbers_as_nan(tmp_path):
    path = tmp_path / "Sess02_eval.csv"
    write_csv(path, [annotation_line(1, "x", 2.0, "Sess02_script01_User003F_001", "sad", 2, 2)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    frame = read_annotations(path)
    assert np.isnan(frame["start"].iloc[0]) and frame["end"].iloc[0] == 2.0


@pytest.mark.parametrize("mutate, problem", [
    (lambda rows: rows[:1], "two header rows"),
    (lambda rows: [rows[0][:-1]] + rows[1:], "header row 1 has 36 columns"),
    (lambda rows: [rows[0], [" ", "x"] + rows[1][2:]] + rows[2:], "header row 2 column 1"),
])
def test_read_annotations_malformed_names_file_and_problem(tmp_path, mutate, problem):
    rows = [HEADER1, HEADER2, annotation_line(1, 0, 1, "Sess01_script01_User001F_001", "sad", 2, 2)]
    path = write_csv(tmp_path / "Sess01_eval.csv", mutate(rows), header=())
    with pytest.raises(KoemoInputError, match=problem) as err:
        read_annotations(path)
    assert str(path) in str(err.value) and err.value.reason == "malformed_csv"


def test_read_annotations_rejects_non_utf8_header(tmp_path):
    path = tmp_path / "Sess01_eval.csv"
    path.write_bytes("Numb,감정".encode("cp949"))
    with pytest.raises(CorpusFileError, match="not UTF-8") as err:
        read_annotations(path)
    assert str(path) in str(err.value)


def test_read_annotations_reads_every_row_it_can(tmp_path):
    """One bad row costs that row alone (with its line), a stray trailing comma nothing."""
    rows = [annotation_line(k, k, k + 1, f"Sess01_script01_User001F_{k:03d}", "sad", 2, 2)
            for k in range(1, 7)]
    rows[0] = rows[0] + [""]                    # line 3: stray comma, row kept
    rows[1] = rows[1] + ["extra"]               # line 4: an extra value
    rows[2] = rows[2][:20]                      # line 5: columns missing
    rows[3] = rows[3][:5] + rows[3][6:]         # line 6: one column missing
    path = write_csv(tmp_path / "Sess01_eval.csv", rows)
    lines = path.read_bytes().split(b"\n")
    lines[7] = lines[7].replace(b"sad", b"s\xffd")   # line 8: a byte that is not UTF-8
    path.write_bytes(b"\n".join(lines))
    frame = read_annotations(path)
    assert frame["line"].tolist() == [3, 7]
    assert frame.attrs["data_rows"] == 6
    assert [(b["line"], b["segment_id"]) for b in frame.attrs["bad_rows"]] == [
        (4, "Sess01_script01_User001F_002"), (5, "Sess01_script01_User001F_003"),
        (6, "Sess01_script01_User001F_004"), (8, "Sess01_script01_User001F_006")]
    problems = [b["problem"] for b in frame.attrs["bad_rows"]]
    assert problems[:3] == ["line 4 has 38 columns, expected 37",
                            "line 5 has 20 columns, expected 37",
                            "line 6 has 36 columns, expected 37"]
    assert problems[3].startswith("line 8: not UTF-8")
    assert frame.attrs["repaired_rows"] == [{
        "line": 3, "segment_id": "Sess01_script01_User001F_001",
        "problem": "line 3: 1 empty field(s) after column 37 ignored (stray comma)"}]


def test_unreadable_annotation_file_names_it(tmp_path):
    folder = tmp_path / "Sess01_eval.csv"
    folder.mkdir()
    with pytest.raises(CorpusFileError, match="cannot read the annotation file") as err:
        read_annotations(folder)
    assert err.value.reason == "unreadable_csv" and str(folder) in str(err.value)
    link = tmp_path / "Sess02_eval.csv"
    link.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(CorpusFileError, match="dangling symbolic link") as err:
        read_annotations(link)
    assert err.value.reason == "missing_csv"


def test_parse_segment_id():
    sid = parse_segment_id("Sess42_script06_User034M_012")
    assert sid == (42, 6, 34, "M", 12) and sid.speaker == "User034M"
    for bad in ("Sess1_script01_User001F_001", "Sess01_script07_User001F_001",
                "Sess01_script01_User001X_001", "", "Sess01_script01_User001F_001.wav"):
        with pytest.raises(KoemoInputError, match="does not look like"):
            parse_segment_id(bad)


def test_read_transcript_cp949_then_utf8_fallback(tmp_path):
    cp = tmp_path / "a.txt"
    cp.write_bytes("n/ 아 친구들도? l/\r\n".encode("cp949"))
    assert read_transcript(cp) == "n/ 아 친구들도? l/"
    assert read_transcript_with_encoding(cp) == ("n/ 아 친구들도? l/", "cp949")
    utf = tmp_path / "b.txt"
    utf.write_text("오늘 정말 좋았어요.l/\n", encoding="utf-8")
    assert read_transcript_with_encoding(utf) == ("오늘 정말 좋았어요.l/", "utf-8")


def test_transcript_encoding_decided_by_content(tmp_path):
    """UTF-8 bytes that also decode as cp949 (into mojibake) are read as UTF-8."""
    text = "뭐야 그건."
    assert text.encode("utf-8").decode("cp949") == "萸먯빞 洹멸굔."     # the trap is real
    utf = tmp_path / "u.txt"
    utf.write_bytes(text.encode("utf-8") + b"\n")
    assert read_transcript_with_encoding(utf) == (text, "utf-8")
    cp = tmp_path / "c.txt"
    cp.write_bytes(text.encode("cp949") + b"\n")
    assert read_transcript_with_encoding(cp) == (text, "cp949")


@pytest.mark.parametrize("make, reason, problem", [
    (lambda p: p.mkdir(), "not_a_file", "is a directory"),
    (lambda p: p.symlink_to(p.with_name("nowhere.txt")), "broken_link", "dangling symbolic link"),
    (lambda p: p.symlink_to(p), "broken_link", "symbolic link loop"),
])
def test_transcript_that_is_no_file_names_it(tmp_path, make, reason, problem):
    path = tmp_path / "a.txt"
    make(path)
    with pytest.raises(CorpusFileError, match=problem) as err:
        read_transcript(path)
    assert err.value.reason == reason and str(path) in str(err.value)


def test_read_transcript_undecodable_and_missing_name_the_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xff\x80\x81")
    with pytest.raises(CorpusFileError, match="neither cp949 nor utf-8") as err:
        read_transcript(bad)
    assert str(bad) in str(err.value) and err.value.reason == "undecodable_txt"
    with pytest.raises(CorpusFileError, match="not found") as err:
        read_transcript(tmp_path / "none.txt")
    assert err.value.reason == "missing_txt"


@pytest.mark.parametrize("raw, clean", [
    ("n/ 아 친구들도? l/", "아 친구들도?"),
    ("그랬더라구.l/", "그랬더라구."),
    ("b/안녕n/하세요 c/ u/ N/ *정말* + OK 2개", "안녕 하세요 정말 OK 2개"),
    ("  아무   표시  없음 ", "아무 표시 없음"),
])
def test_clean_transcript(raw, clean):
    assert clean_transcript(raw) == clean


def write_wav(path, seconds=0.5, sr=16000, channels=1, subtype="PCM_16"):
    n = int(seconds * sr)
    wave = 0.1 * np.sin(np.linspace(0, 200, n))
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr,
             subtype=subtype)
    return path


def test_check_wav_good(tmp_path):
    assert check_wav(write_wav(tmp_path / "ok.wav", seconds=1.25)) == (20000, 1.25)
    # A float re-export is read; check_wav_content then looks at its values.
    assert check_wav(write_wav(tmp_path / "fl.wav", subtype="FLOAT")) == (8000, 0.5)


def test_8bit_pcm_is_read_and_scaled(tmp_path):
    """WAV's 8-bit PCM (unsigned) is one of the formats docs/kemdy20.md says are read."""
    path = write_wav(tmp_path / "u8.wav", subtype="PCM_U8")
    assert sf.info(path).subtype == "PCM_U8"
    assert check_wav(path) == (8000, 0.5)
    assert check_wav_content(path) is None
    wave, _ = sf.read(path, dtype="float32")
    reference = 0.1 * np.sin(np.linspace(0, 200, 8000))
    assert np.abs(wave - reference).max() <= 1 / 128      # one 8-bit step


def test_check_wav_problems(tmp_path):
    cases = {
        "wrong_sample_rate": write_wav(tmp_path / "sr.wav", sr=22050),
        "not_mono": write_wav(tmp_path / "st.wav", channels=2),
        "unsupported_sample_format": write_wav(tmp_path / "ulaw.wav", subtype="ULAW"),
        "missing_wav": tmp_path / "none.wav",
    }
    (tmp_path / "zero.wav").write_bytes(b"")
    cases["empty_wav"] = tmp_path / "zero.wav"
    sf.write(tmp_path / "nosamples.wav", np.zeros(0), 16000, subtype="PCM_16")
    full = write_wav(tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(full[: len(full) // 2])
    cases["truncated_wav"] = tmp_path / "cut.wav"
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    cases["corrupt_wav"] = tmp_path / "junk.wav"
    for reason, path in cases.items():
        with pytest.raises(CorpusFileError) as err:
            check_wav(path)
        assert err.value.reason == reason and str(path) in str(err.value), (reason, err.value)
    with pytest.raises(CorpusFileError, match="no samples"):
        check_wav(tmp_path / "nosamples.wav")


def test_annotation_columns_are_unique():
    assert pd.Index(ANNOTATION_COLUMNS).is_unique
