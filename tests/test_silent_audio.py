"""Recordings without signal, as real KEMDy20 has them: the prepare scan finds them, the
`data.silent_audio` policy keeps (paper) or drops (corrected) them without moving any other
row between splits, their features are what librosa gives for zeros, and neither attention
path turns an all-masked utterance into NaN."""
from __future__ import annotations

import json
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from koemo.config.load import load_config
from koemo.dataset.kemdy20 import check_wav_content
from koemo.dataset.prepare import REPORT_JSON, prepare
from koemo.dataset.splits import SPLIT_COLUMNS
from koemo.errors import KoemoInputError
from koemo.audio.feature_store import open_feature_store
from koemo.audio.features import librosa_features
from koemo.modeling import AudioRegressor
from koemo.modeling import data as D
from koemo.modeling.layers import manual_attention, sdpa_attention
from koemo.modeling.train import train_stage
from koemo.synth.corpus import NO_SIGNAL_KINDS

SR = 16000
# tiny.yaml plants one recording per session, kinds cycling from session 1.
PLANTED = {1: "silent", 2: "near_silent", 3: "constant", 4: "silent", 5: "near_silent"}
REASON = {"silent": "silent_audio", "constant": "constant_audio"}


@pytest.fixture(scope="module")
def report(tiny_workdir):
    return json.loads((tiny_workdir / REPORT_JSON).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def table(tiny_workdir):
    return pd.read_parquet(tiny_workdir / "utterances.parquet")


def _wav(path, wave, subtype="PCM_16"):
    sf.write(path, np.asarray(wave), SR, subtype=subtype)
    return path


@pytest.mark.parametrize("wave,subtype,reason", [
    (np.zeros(SR), "PCM_16", "silent_audio"),
    (np.full(SR, 1e-6, np.float32), "FLOAT", "silent_audio"),         # below one 16-bit step
    (np.full(SR, 0.01), "PCM_16", "constant_audio"),
    (np.r_[np.zeros(SR - 1), np.nan].astype(np.float32), "FLOAT", "nonfinite_audio"),
])
def test_content_check_names_the_problem(tmp_path, wave, subtype, reason):
    path = _wav(tmp_path / "x.wav", wave, subtype)
    found = check_wav_content(path)
    assert found is not None and found.reason == reason and str(path) in str(found)


def test_quiet_but_real_signal_passes(tmp_path):
    one_lsb = np.random.default_rng(0).integers(-1, 2, SR) / 32768.0
    assert check_wav_content(_wav(tmp_path / "q.wav", one_lsb)) is None


def test_synth_plants_each_kind_in_its_session(tiny_corpus, table):
    kinds = {}
    for sid in table["segment_id"]:
        wave, _ = sf.read(str(tiny_corpus / "wav" / f"Session{sid[4:6]}" / f"{sid}.wav"),
                          dtype="int16")
        if not wave.any():
            kinds[sid] = "silent"
        elif np.ptp(wave) == 0:
            kinds[sid] = "constant"
        elif np.abs(wave).max() <= 1:
            kinds[sid] = "near_silent"
    assert sorted(kinds.values()) == sorted(PLANTED.values())
    assert {int(sid[4:6]): kind for sid, kind in kinds.items()} == PLANTED
    assert set(NO_SIGNAL_KINDS) == set(PLANTED.values())


def test_report_lists_every_recording_without_signal(report, table):
    expected = sorted(REASON[k] for k in PLANTED.values() if k in REASON)
    assert sorted(r["reason"] for r in report["no_signal_rows"]) == expected
    flagged = table.loc[table["audio_problem"] != "", ["segment_id", "audio_problem"]]
    assert sorted(flagged["audio_problem"]) == expected
    assert set(flagged["segment_id"]) == {r["segment_id"] for r in report["no_signal_rows"]}
    # Kept in the table, so the drop report still adds up to the rows read.
    assert report["rows_kept"] + report["rows_dropped"] == report["rows_read"]


def test_silent_features_are_librosas_features_of_zeros(tiny_workdir, tiny_config, table):
    store = open_feature_store(tiny_workdir, tiny_config)
    expected, _ = librosa_features(np.zeros(SR, np.float32), tiny_config.features)
    for sid in table.loc[table["audio_problem"] == "silent_audio", "segment_id"]:
        feats = store.get(store.index_of(sid))
        assert np.array_equal(feats[:, :store.n_frames[store.index_of(sid)]],
                              expected[:, :store.n_frames[store.index_of(sid)]])
        assert not feats.any()                  # 0 dB everywhere, delta 0
    quiet = table.loc[table["session"] == 2, "segment_id"]
    assert all(np.isfinite(store.get(store.index_of(s))).all() for s in quiet)


def test_drop_policy_removes_only_those_rows_and_moves_no_other(tiny_config, table):
    drop = load_config("tiny", ["data.silent_audio=drop"])
    for column in SPLIT_COLUMNS:
        protocol = ({"data.protocol=paper"} if column == "split_paper" else
                    {"data.protocol=session"} if column == "split_session" else
                    {"data.protocol=cv5", f"data.fold={column[-1]}"})
        keep_cfg = load_config("tiny", sorted(protocol))
        drop_cfg = load_config("tiny", sorted(protocol) + ["data.silent_audio=drop"])
        for split in ("train", "valid", "test"):
            kept = D.split_rows(table, keep_cfg, split)
            dropped = D.split_rows(table, drop_cfg, split)
            assert dropped["segment_id"].tolist() == \
                kept.loc[kept["audio_problem"] == "", "segment_id"].tolist(), (column, split)
    assert drop.data.silent_audio == "drop"
    assert load_config("corrected").data.silent_audio == "drop"
    assert load_config("paper").data.silent_audio == "keep"


def test_unknown_policy_is_a_config_error():
    with pytest.raises(KoemoInputError, match="silent_audio: \"maybe\" is not allowed: must be keep or drop"):
        load_config("tiny", ["data.silent_audio=maybe"])


def test_strict_stops_on_silent_audio(tiny_corpus, tiny_config, tmp_path):
    with pytest.raises(KoemoInputError, match="silent_audio|digital silence"):
        prepare(tiny_corpus, tmp_path / "w", tiny_config, strict=True, progress=False,
                features=False)


def test_nonfinite_float_wav_is_dropped_with_its_reason(tiny_corpus, tiny_config, table, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = table.loc[table["audio_problem"] == "", "segment_id"].iloc[0]
    wave = np.full(SR, 0.1, np.float32) * np.sin(np.arange(SR))
    wave[100] = np.inf
    _wav(corpus / "wav" / f"Session{victim[4:6]}" / f"{victim}.wav", wave, "FLOAT")
    result = prepare(corpus, tmp_path / "w", tiny_config, progress=False, features=False)
    dropped = {d["segment_id"]: d["reason"] for d in result.report["dropped_rows"]}
    assert dropped[victim] == "nonfinite_audio"
    assert victim not in set(result.table["segment_id"])


@pytest.mark.parametrize("attend", [manual_attention, sdpa_attention])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_attention_over_no_valid_key_is_finite(attend, dtype):
    q = torch.randn(2, 2, 6, 4, dtype=dtype, requires_grad=True)
    mask = torch.tensor([[False] * 6, [True] * 3 + [False] * 3])
    out = attend(q, q, q, mask, 0.0)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all() and torch.isfinite(q.grad.float()).all()


@pytest.mark.parametrize("impl", ["manual", "sdpa"])
def test_faithful_audio_model_on_silence_trains_and_predicts_finite(tiny_config, impl):
    torch.manual_seed(0)
    model = AudioRegressor(tiny_config.models, tiny_config.fixes, attention_impl=impl)
    feats = torch.zeros(2, 2, tiny_config.features.max_frames, tiny_config.features.n_mels)
    feats[1, :, :10] = -20.0                      # a second, non-silent utterance
    out = model(feats)                            # faithful mask: silence is all padding
    assert not out["mask"][0].any()
    out["pred"].sum().backward()
    assert torch.isfinite(out["pred"]).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(feats)["pred"]).all()


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_training_and_scoring_under_each_policy(tiny_workdir, table, tmp_path, policy):
    """cv5 fold 0 tests on session 1, whose planted recording is digital silence."""
    work = tmp_path / "work"
    shutil.copytree(tiny_workdir, work, ignore=shutil.ignore_patterns("runs"))
    cfg = load_config("tiny", ["data.protocol=cv5", "data.fold=0", f"data.silent_audio={policy}",
                               "train.audio.epochs=1", "train.text.epochs=1",
                               "train.multimodal.epochs=1"])
    silent = set(table.loc[table["audio_problem"] == "silent_audio", "segment_id"])
    for stage in ("audio", "text", "multimodal"):
        run = train_stage(stage, work, cfg, seed=1, progress=False)
        predictions = pd.read_parquet(run / "test_predictions.parquet")
        numeric = predictions.select_dtypes("number")
        assert np.isfinite(numeric.to_numpy()).all(), stage
        assert bool(silent & set(predictions["segment_id"])) == (policy == "keep"), stage
        metrics = json.loads((run / "test_metrics.json").read_text(encoding="utf-8"))
        assert all(np.isfinite(v) for v in metrics.values() if isinstance(v, float)), stage


# ------------------------------------------------------------------ interrupted feature builds
SLOW_PREPARE = """
import sys, time
import koemo.audio.feature_store as F
read = F.read_wave
def slow(path, rate):          # slow enough to be caught mid-build
    time.sleep(0.05)
    return read(path, rate)
F.read_wave = slow
from koemo.cli import main
sys.exit(main(["prepare", "--data", sys.argv[1], "--workdir", sys.argv[2], "--config", "tiny",
               "--no-progress"]))
"""


def _start_and_catch_midway(corpus, work):
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, str(corpus), str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(work.glob("features/*/mel.npy.partial")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the feature build never started"
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_terminated_build_leaves_no_partial_files(tiny_corpus, tmp_path, signum):
    """A scheduler's SIGTERM or Ctrl-C mid-build: no partial file, and one line saying so."""
    work = tmp_path / "w"
    proc = _start_and_catch_midway(tiny_corpus, work)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 128 + signum
    store = next(p for p in (work / "features").iterdir() if p.is_dir())
    assert not list(store.glob("*.partial")) and not (store / "meta.json").exists()
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM"
    assert proc.stderr.read().decode().splitlines() == [
        f"koemo prepare: stopped by {name}; nothing half-written is left: the same command goes "
        "on from what finished"]


def test_killed_build_is_cleaned_up_by_the_next_build(tiny_corpus, tiny_config, tmp_path):
    import signal
    work = tmp_path / "w"
    proc = _start_and_catch_midway(tiny_corpus, work)
    proc.send_signal(signal.SIGKILL)                  # no chance to clean up
    proc.wait(timeout=60)
    store = next(p for p in (work / "features").iterdir() if p.is_dir())
    assert list(store.glob("*.partial"))
    result = prepare(tiny_corpus, work, tiny_config, progress=False)
    assert result.feature_store_path == store and not list(store.glob("*.partial"))
    assert len(open_feature_store(work, tiny_config)) == len(result.table)


def test_results_page_counts_every_dropped_row_and_the_recordings_without_signal(
        tiny_workdir, tiny_config, report):
    from koemo.reporting.report import data_summary, markdown_table

    summary = data_summary(tiny_workdir, tiny_config)
    dropped = summary["dropped_by_reason"]
    assert dropped["rows"].sum() == report["rows_dropped"] + len(report["problem_files"]) > 0
    no_signal = dict(zip(summary["no_signal"]["reason"], summary["no_signal"]["rows"]))
    assert no_signal == {"constant_audio": 1, "silent_audio": 2}
    assert "data.silent_audio: keep" in markdown_table(summary["no_signal"])
