"""The synthetic KEMDy20-format corpus: exact format, determinism, and what each modality carries."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.cli import main as cli_main
from koemo.config.schema import PAPER_CLASSES
from koemo.errors import KoemoInputError
from koemo.synth import sentences, speech, write_corpus
from koemo.synth.corpus import (DEFAULT_CLASS_PROBS, annotation_csv, class_counts,
                                normalise_class_probs, plan_session)

SEGMENT_RE = re.compile(r"^Sess(\d{2})_script(0[1-6])_User(\d{3})([MF])_(\d{3})$")
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
SR = 16000


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_eval(path: Path) -> pd.DataFrame:
    """Parse with the real two-row header: a (name, sub-name) MultiIndex, 37 columns."""
    return pd.read_csv(path, header=[0, 1], encoding="utf-8")


@pytest.fixture(scope="module")
def table(tiny_corpus) -> pd.DataFrame:
    """One row per annotated utterance of the tiny corpus, with the rater votes split out."""
    rows = []
    for csv in sorted((tiny_corpus / "annotation").glob("Sess*_eval.csv")):
        session = int(csv.name[4:6])
        frame = read_eval(csv)
        for values in frame.itertuples(index=False):
            wav_id = "Sess%02d" % session + values[3][6:]
            rows.append(dict(session=session, numb=values[0], start=values[1], end=values[2],
                             csv_id=values[3], segment_id=wav_id, emotion=values[4],
                             valence=values[5], arousal=values[6],
                             labels=list(values[7::3]), vals=list(values[8::3]), aros=list(values[9::3]),
                             wav=tiny_corpus / "wav" / f"Session{session:02d}" / f"{wav_id}.wav"))
    return pd.DataFrame(rows)


def test_same_arguments_give_same_bytes_and_another_seed_differs(tmp_path):
    a = write_corpus(tmp_path / "a", sessions=2, seed=3, utterances_per_session=12)
    b = write_corpus(tmp_path / "b", sessions=2, seed=3, utterances_per_session=12, workers=2)
    c = write_corpus(tmp_path / "c", sessions=2, seed=4, utterances_per_session=12)
    assert digest(a) == digest(b)
    other, same = digest(c), set(digest(a).values()) & set(digest(c).values())
    assert len(other) > 100 and len(same) <= 2  # at most the empty-IBI digest is shared


def test_layout_speakers_scripts_and_segment_ids(tiny_corpus, table):
    assert sorted(p.name for p in (tiny_corpus / "annotation").iterdir()) == \
        [f"Sess{s:02d}_eval.csv" for s in range(1, 6)]
    for session, group in table.groupby("session"):
        speakers = {SEGMENT_RE.match(i).group(3) + SEGMENT_RE.match(i).group(4) for i in group.segment_id}
        assert {s[:3] for s in speakers} == {f"{2 * session - 1:03d}", f"{2 * session:03d}"}
        assert {SEGMENT_RE.match(i).group(2) for i in group.segment_id} == {f"0{k}" for k in range(1, 7)}
        wavs = sorted(p.name for p in (tiny_corpus / "wav" / f"Session{session:02d}").iterdir())
        assert wavs == sorted([f"{i}.txt" for i in group.segment_id] + [f"{i}.wav" for i in group.segment_id])
        # Each speaker's utterances within a script count from 001 without holes.
        for _, ids in group.groupby(group.segment_id.str[:24]).segment_id:
            assert sorted(int(i[-3:]) for i in ids) == list(range(1, len(ids) + 1))
        for signal in ("EDA", "TEMP", "IBI"):
            names = sorted(p.name for p in (tiny_corpus / signal / f"Session{session:02d}").iterdir())
            assert names == sorted({i[:24] + ".csv" for i in group.segment_id})
    assert table.numb.tolist() == [n for _, g in table.groupby("session") for n in range(1, len(g) + 1)]
    # Gender letters vary by session.
    assert len({tuple(sorted(i[16:24] for i in g.segment_id.unique())) for _, g in table.groupby("session")}) > 1


def test_annotation_bytes_and_two_row_header(tiny_corpus):
    headers = set()
    for csv in sorted((tiny_corpus / "annotation").glob("*.csv")):
        raw = csv.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n")
        first, second = raw.decode("utf-8").split("\n")[:2]
        raters = re.fullmatch(r"Numb,WAV, ,Segment ID,Total Evaluation, , ," + ",".join([r"(Eval\d\d[FM]), , "] * 10),
                              first)
        assert raters and [r[4:6] for r in raters.groups()] == [f"{k:02d}" for k in range(1, 11)]
        assert second == " ,start,end, ,Emotion,Valence,Arousal" + ",Emotion,Valence,Arousal" * 10
        headers.add(first)
        frame = read_eval(csv)
        assert frame.shape[1] == 37
        assert frame.columns[3] == ("Segment ID", " ") and frame.columns[1] == ("WAV", "start")
        assert all(len(line.split(",")) == 37 for line in raw.decode().splitlines())
    assert len(headers) > 1  # rater ids differ per file


def test_totals_are_rounded_vote_means_and_tied_top_labels(table):
    for row in table.itertuples():
        assert all(isinstance(v, (int, np.integer)) and 1 <= v <= 5 for v in row.vals + row.aros)
        assert row.valence == round(np.mean(row.vals), 1) and row.arousal == round(np.mean(row.aros), 1)
        assert "disqust" not in row.labels
        counts = pd.Series(row.labels).value_counts()
        top = {("disqust" if c == "disgust" else c) for c in counts[counts == counts.max()].index}
        assert set(row.emotion.split(";")) == top
    emotions = set(table.emotion)
    assert any(";" in e for e in emotions) and {"disqust", "fear"} <= emotions
    assert any("disgust" in labels for labels in table.labels)


def test_every_paper_class_is_in_every_session_as_single_label(table):
    for _, group in table.groupby("session"):
        counts = group.emotion.value_counts()
        assert all(counts.get(c, 0) >= 2 for c in PAPER_CLASSES)
    assert table.emotion.value_counts().idxmax() == "neutral"


def test_class_counts_fill_sessions_and_track_probabilities():
    probs = normalise_class_probs(None)
    totals = dict.fromkeys(probs, 0)
    for session in range(1, 41):
        counts = class_counts(probs, 336, session)
        assert sum(counts.values()) == 336 and min(counts[c] for c in PAPER_CLASSES) >= 2
        for name, k in counts.items():
            totals[name] += k
    for name, p in DEFAULT_CLASS_PROBS.items():
        assert abs(totals[name] - p * 40 * 336) <= 2
    assert class_counts(normalise_class_probs({"neutral": 1, "happy": 1}), 12, 1) == {"neutral": 6, "happy": 6}


def test_wavs_are_16k_mono_pcm16_and_as_long_as_end_minus_start(table):
    for row in table.itertuples():
        info = sf.info(row.wav)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
        assert info.frames == round((row.end - row.start) * SR)
        assert row.wav.stat().st_size == 44 + 2 * info.frames  # plain 44-byte header
        assert len(re.sub(r"^\d+\.?", "", f"{row.start}")) <= 4
    durations = table.end - table.start
    assert durations.min() >= 1.0 - 1e-9 and durations.max() <= 8.0 + 1e-9 and 2.5 < durations.mean() < 4.5


def test_transcripts_are_cp949_single_lines_with_markers(table):
    texts, endings = [], set()
    for wav in table.wav:
        raw = wav.with_suffix(".txt").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        text = raw.decode("cp949")
        endings.add("\r\n" if text.endswith("\r\n") else "\n")
        body = text.rstrip("\r\n")
        assert "\n" not in body and "\r" not in body and re.search("[가-힣]", body)
        assert 5 <= len(body) <= 186
        texts.append(body)
    joined = "\n".join(texts)
    assert endings == {"\n", "\r\n"}
    for marker in ("b/", "l/", "n/", "u/", "c/"):
        assert marker in joined
    assert re.search(r"[가-힣.!?]l/", joined)  # glued to the word: `...더라구.l/`
    assert re.search(r"[A-Za-z]", joined) and re.search(r"\d", joined)


def test_long_tail_words_are_neutral_ks_x_1001_and_leave_the_sentence_intact():
    assert len(sentences.SYLLABLES) == 2350
    fixed = sentences.SURNAMES + sentences.NAME_TAILS + sentences.THINGS + sentences.ENGLISH
    rng = np.random.default_rng(5)
    drawn = [w for _ in range(400) for w in sentences.long_tail_words(rng)]
    assert {"'", '"', ",", "~", "%"} <= set("".join(drawn))
    for word in fixed + tuple(drawn):
        assert all(len(ch.encode("euc_kr")) <= 2 for ch in word), word     # KS X 1001
        assert not any(sentences.bank_word_counts(word).values()), word
    for seed in range(300):
        text = sentences.transcript(float(seed % 5 + 1), rng)
        dressed = sentences.with_long_tail(text, np.random.default_rng(seed))
        assert sentences.bank_word_counts(dressed) == sentences.bank_word_counts(text), dressed
        assert dressed.startswith(text)     # the valence words stay where they were


def test_biosignal_preambles_rows_and_segment_ids(tiny_corpus, table):
    own = table.groupby(table.segment_id.str[:24]).segment_id.apply(set).to_dict()
    empty_ibi, tagged, gaps = 0, set(), 0
    for path in sorted(tiny_corpus.glob("*/Session*/*.csv")):
        signal, stem = path.parts[-3], path.stem
        text = path.read_text(encoding="ascii")
        lines = text.split("\n")
        assert text == "" or text.endswith("\n")
        if signal == "IBI":
            if not text:
                empty_ibi += 1
                continue
            assert re.fullmatch(r"\d{10}\.\d{6},IBI," + STAMP, lines[0])
            body = [line.split(",") for line in lines[1:-1]]
            assert {len(f) for f in body} <= {3, 4}
            offsets = np.array([float(f[0]) for f in body])
            assert np.all(np.diff(offsets) > 0) and np.ptp(np.diff(offsets)) > 0.3  # irregular
        else:
            assert re.fullmatch(r"\d{10}\.\d{6}," + STAMP, lines[0]) and lines[1] == "4.000000,hz"
            body = [line.split(",") for line in lines[2:-1]]
            widths = {len(f) for f in body}  # the segment id only inside segments
            # An EDA gap may swallow all of a speaker's few segments in a tiny script.
            assert widths == {2, 3} or (signal == "EDA" and widths == {2})
            stamps = pd.to_datetime([f[1] for f in body])
            steps = np.diff(stamps.values).astype("timedelta64[ms]").astype(int)
            assert steps.min() == 250
            gaps += signal == "EDA" and steps.max() > 250
        ids = {f[-1] for f in body if len(f) in (3, 4) and f[-1].startswith("Sess")}
        assert ids <= own[stem]
        tagged |= ids
    assert empty_ibi >= 1 and gaps >= 1
    assert len(tagged) > 0.9 * len(table)


def test_sess17_quirk_only_when_session_17_exists(table):
    assert not table.csv_id.str.startswith("Sess42").any()
    plan = plan_session(17, 0, 12, normalise_class_probs(None), 3.5, (1.0, 8.0))
    csv_ids = [line.split(",")[3] for line in annotation_csv(plan).splitlines()[2:]]
    quirky = [i for i in csv_ids if i.startswith("Sess42_")]
    assert quirky and all(i.startswith("Sess42_script06_") for i in quirky)
    assert all(SEGMENT_RE.match(i) for i in csv_ids)
    assert {u.segment_id[:6] for u in plan.utterances} == {"Sess17"}
    assert sorted(i[6:] for i in csv_ids) == sorted(u.segment_id[6:] for u in plan.utterances)


def pitch_hz(wave: np.ndarray) -> float:
    """Median autocorrelation pitch of the loud 40 ms frames (a prosody proxy, 70-450 Hz)."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, 640)[::320]
    energy = (frames ** 2).mean(axis=1)
    frames = frames[energy > 0.3 * energy.max()] - frames[energy > 0.3 * energy.max()].mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=1280, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, SR // 450: SR // 70]
    return float(np.median(SR / (np.argmax(ac, axis=1) + SR // 450)))


@pytest.fixture(scope="module")
def audio_stats(table) -> pd.DataFrame:
    single = table[table.emotion.isin(PAPER_CLASSES)].copy()
    waves = [sf.read(w, dtype="float32")[0] for w in single.wav]
    # Leave out the planted recordings without signal (tiny.yaml: one per session).
    speech_like = [np.abs(w).max() > 2 / 32768 and np.ptp(w) > 0 for w in waves]
    single = single[speech_like]
    waves = [w for w, keep in zip(waves, speech_like) if keep]
    single["rms_db"] = [20 * np.log10(np.sqrt(np.mean(w ** 2))) for w in waves]
    single["pitch"] = [pitch_hz(w) for w in waves]
    single["speaker"] = single.segment_id.str[16:24]
    # Pitch relative to the speaker's median: gender/speaker differences cancel out.
    single["rel_pitch"] = np.log2(single.pitch / single.groupby("speaker").pitch.transform("median"))
    return single


def test_audio_carries_arousal_but_not_valence(audio_stats):
    means = audio_stats.groupby("emotion")[["rms_db", "rel_pitch"]].mean()
    for col in ("rms_db", "rel_pitch"):
        high = means.loc[["happy", "angry", "surprise"], col]
        assert high.min() > means.loc["neutral", col] > means.loc["sad", col]
        # happy vs angry (same arousal, opposite valence) differ far less than high vs low arousal.
        assert abs(means.loc["happy", col] - means.loc["angry", col]) < \
            0.35 * (high.mean() - means.loc["sad", col])


def test_text_carries_valence_but_not_arousal(table):
    single = table[table.emotion.isin(PAPER_CLASSES)]
    texts = [w.with_suffix(".txt").read_bytes().decode("cp949") for w in single.wav]
    counts = pd.DataFrame([sentences.bank_word_counts(t) for t in texts], index=single.index)
    rate = counts.div(counts.sum(axis=1), axis=0).groupby(single.emotion).mean()
    assert rate.loc["happy", "positive"] > rate.loc["angry", "positive"] + 0.4
    assert rate.loc["angry", "negative"] > rate.loc["happy", "negative"] + 0.4
    # Equal valence, different arousal: word choice alike.
    assert abs(rate.loc["neutral", "positive"] - rate.loc["surprise", "positive"]) < 0.2
    assert abs(rate.loc["sad", "negative"] - rate.loc["angry", "negative"]) < 0.2


def segment_levels(root: Path, signal: str, table: pd.DataFrame) -> pd.Series:
    """Per segment: mean value inside it minus its file's median (speaker/drift baseline removed)."""
    levels = {}
    for path in sorted(root.glob(f"{signal}/Session*/*.csv")):
        rows = [line.split(",") for line in path.read_text().splitlines()[2:]]
        values = np.array([float(r[0]) for r in rows])
        baseline = np.median(values)
        frame = pd.DataFrame({"v": values, "id": [r[2] if len(r) == 3 else "" for r in rows]})
        for seg, group in frame[frame.id != ""].groupby("id"):
            levels[seg] = group.v.mean() - baseline
    return pd.Series(levels).reindex(table.segment_id.values)


def test_eda_follows_arousal_and_temp_does_not(tiny_corpus, table):
    arousal = table.arousal.values
    eda = segment_levels(tiny_corpus, "EDA", table).values
    temp = segment_levels(tiny_corpus, "TEMP", table).values
    ok_eda, ok_temp = ~np.isnan(eda), ~np.isnan(temp)
    assert np.corrcoef(arousal[ok_eda], eda[ok_eda])[0, 1] > 0.6
    assert abs(np.corrcoef(arousal[ok_temp], temp[ok_temp])[0, 1]) < 0.3
    assert ok_temp.all() and not ok_eda.all()  # the EDA gaps leave some segments without rows


def test_class_probs_and_biosignal_effects_are_honoured(tmp_path):
    root = write_corpus(tmp_path / "k", sessions=2, seed=1, utterances_per_session=30,
                        class_probs={"neutral": 1.0, "sad": 1.0}, biosignal_effects={"EDA": 0.0, "TEMP": 1.0})
    frames = [read_eval(p) for p in sorted((root / "annotation").glob("*.csv"))]
    table = pd.concat([pd.DataFrame({"segment_id": f.iloc[:, 3], "emotion": f.iloc[:, 4],
                                     "arousal": f.iloc[:, 6]}) for f in frames], ignore_index=True)
    # Generating classes follow class_probs; ties may still name a class raters confused it with.
    assert set(table.emotion[~table.emotion.str.contains(";")]) == {"neutral", "sad"}
    assert (table.emotion == "sad").sum() >= 20
    arousal = table.arousal.values
    eda = segment_levels(root, "EDA", table).values
    temp = segment_levels(root, "TEMP", table).values
    ok_eda, ok_temp = ~np.isnan(eda), ~np.isnan(temp)
    assert np.corrcoef(arousal[ok_temp], temp[ok_temp])[0, 1] > 0.6
    assert abs(np.corrcoef(arousal[ok_eda], eda[ok_eda])[0, 1]) < 0.3


def test_speech_prosody_rises_with_arousal():
    voice = speech.make_voice("F", np.random.default_rng(0))
    calm, excited = (speech.synthesize(3 * SR, a, voice, np.random.default_rng(1)) for a in (2.0, 4.0))
    assert np.sqrt(np.mean(excited ** 2)) > 1.8 * np.sqrt(np.mean(calm ** 2))
    assert pitch_hz(excited) > 1.25 * pitch_hz(calm)
    assert np.array_equal(calm, speech.synthesize(3 * SR, 2.0, voice, np.random.default_rng(1)))


def test_bad_arguments_are_named(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(KoemoInputError, match="not empty"):
        write_corpus(tmp_path / "full", sessions=1, utterances_per_session=12)
    with pytest.raises(KoemoInputError, match="utterances_per_session"):
        write_corpus(tmp_path / "a", sessions=1, utterances_per_session=5)
    with pytest.raises(KoemoInputError, match="unknown classes"):
        write_corpus(tmp_path / "b", sessions=1, class_probs={"joy": 1.0})
    with pytest.raises(KoemoInputError, match="unknown signal"):
        write_corpus(tmp_path / "c", sessions=1, biosignal_effects={"ECG": 1.0})
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_a_refused_recipe_leaves_the_corpus_it_would_replace(tmp_path):
    """The schema's synthetic bounds are checked before overwrite removes anything."""
    root = write_corpus(tmp_path / "c", sessions=1, utterances_per_session=12)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(KoemoInputError, match="silent_recordings"):
        write_corpus(root, sessions=1, utterances_per_session=12, silent_recordings=4,
                     overwrite=True)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_cli_writes_a_corpus(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["synth", "--out", str(out), "--sessions", "1", "--utterances-per-session", "12",
                     "--seed", "5"]) == 0
    assert "12 utterances" in capsys.readouterr().out
    assert len(list((out / "wav" / "Session01").glob("*.wav"))) == 12
    assert cli_main(["synth", "--out", str(out), "--sessions", "1"]) == 1  # not empty: one-line error
    assert "not empty" in capsys.readouterr().err
