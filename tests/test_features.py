"""Mel+delta features (librosa reference vs batched torch) and the on-disk FeatureStore."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.config.load import load_config
from koemo.config.fingerprints import feature_fingerprint
from koemo.errors import KoemoInputError
from koemo.audio.feature_store import FeatureStore, build_feature_store, open_feature_store
from koemo.audio.features import PARITY_TOLERANCE_DB, extract_batch, extract_features, frames_for

SR = 16000


def chirp(seconds: float, f0: float = 150.0, f1: float = 6000.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))).astype(np.float32)


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t) * np.linspace(0.2, 1.0, t.size)).astype(np.float32)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.fixture(scope="module")
def paper_feats():
    return load_config("paper").features


@pytest.fixture(scope="module")
def tiny_cfg():
    # The paper's hop: the clip lengths below were chosen to give 38, 64 (full) and 22 frames.
    return load_config("tiny", ["features.hop_length=512"])


def test_torch_matches_librosa_within_stated_tolerance(paper_feats):
    # 0.4 s (fewer frames than the delta needs at the edges of both ends), a tone, noise, and a
    # 20 s chirp that is cut at T=512 frames.
    for wave in (chirp(0.4), tone(2.5), noise(3.7), chirp(20.0, 100.0, 7000.0)):
        ref, n_ref = extract_features(wave, paper_feats, backend="librosa")
        got, n_got = extract_features(wave, paper_feats, backend="torch")
        assert n_ref == n_got == min(frames_for(wave.size, 512), 512)
        assert got.shape == ref.shape == (2, 512, 128) and got.dtype == np.float32
        diff = np.abs(got[:, :n_ref] - ref[:, :n_ref]).max()
        assert diff <= PARITY_TOLERANCE_DB, f"max abs diff {diff} dB"
        assert not got[:, n_ref:].any() and not ref[:, n_ref:].any()


def test_db_range_is_relative_to_the_whole_utterance_even_beyond_T(paper_feats):
    # Quiet first 17 s (> 512 frames), loud tail: ref=max comes from the cut-off tail.
    wave = np.concatenate([0.01 * tone(17.0), tone(2.0, amp=0.9)])
    for backend in ("librosa", "torch"):
        feat, n = extract_features(wave, paper_feats, backend=backend)
        assert n == 512
        assert feat[0].min() >= -80.0
        assert feat[0].max() < -20.0        # the loudest frames were cut off
    short, _ = extract_features(tone(2.0), paper_feats, backend="torch")
    assert short[0].max() == 0.0 and short[0].min() >= -80.0


def test_batch_equals_single_utterances_despite_padding(paper_feats):
    waves = [chirp(0.6), noise(4.0, seed=3), tone(1.3, 880.0)]
    batch, n_frames = extract_batch(waves, paper_feats)
    assert batch.shape == (3, 2, 512, 128) and n_frames.dtype == np.int32
    for i, wave in enumerate(waves):
        single, n = extract_features(wave, paper_feats, backend="torch")
        assert n == n_frames[i]
        np.testing.assert_allclose(batch[i], single, atol=1e-4)
        assert not batch[i, :, n:].any()


@pytest.mark.parametrize("wave, message", [
    (np.zeros(1000, np.float32), "too short"),
    (np.zeros((2, 8000), np.float32), "1-D"),
    (np.full(8000, np.nan, np.float32), "NaN"),
])
def test_bad_waves_raise_input_errors(paper_feats, wave, message):
    with pytest.raises(KoemoInputError, match=message):
        extract_features(wave, paper_feats, backend="torch")


def test_unknown_backend_is_an_input_error():
    with pytest.raises(KoemoInputError, match="features.backend: \"essentia\" is not allowed: "
                                              "must be torch or librosa"):
        load_config("tiny", ["features.backend=essentia"])


# ------------------------------------------------------------------------------------- store
def write_table(directory, waves: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for sid, wave in waves.items():
        path = directory / f"{sid}.wav"
        sf.write(path, wave, SR, subtype="PCM_16")
        rows.append({"segment_id": sid, "wav_path": str(path)})
    return pd.DataFrame(rows)


@pytest.fixture()
def small_table(tmp_path):
    waves = {"Sess01_script01_User001F_001": tone(1.2),
             "Sess01_script01_User002M_001": chirp(2.9),        # 91 frames > T=64: cut
             "Sess01_script01_User001F_002": noise(0.7, seed=5)}
    return write_table(tmp_path, waves)


def test_store_round_trip_matches_extraction(tmp_path, small_table, tiny_cfg):
    store = build_feature_store(small_table, tmp_path / "w", tiny_cfg, progress=False)
    assert store.directory == tmp_path / "w" / "features" / feature_fingerprint(tiny_cfg)
    assert len(store) == 3 and store.segment_ids == small_table["segment_id"].tolist()
    assert store.mel.dtype == np.float16 and store.mel.shape == (3, 2, 64, 32)
    assert store.n_frames.tolist() == [38, 64, 22]
    for i, path in enumerate(small_table["wav_path"]):
        wave, _ = sf.read(path, dtype="float32")
        expected, n = extract_features(wave, tiny_cfg.features, backend="librosa")
        assert n == store.n_frames[i]
        got = store.get(i)
        assert got.dtype == np.float32 and got.shape == (2, 64, 32)
        np.testing.assert_allclose(got, expected, atol=0.05)   # float16 storage of [-80, 0]
    sid = small_table["segment_id"][2]
    np.testing.assert_array_equal(store.get_batch([2, 0])[0], store.get(store.index_of(sid)))
    with pytest.raises(KoemoInputError, match="not in this feature store"):
        store.index_of("Sess99_script01_User001F_001")
    meta = json.loads((store.directory / "meta.json").read_text())
    assert meta["complete"] is True and meta["fingerprint"] == feature_fingerprint(tiny_cfg)
    assert meta["features"]["n_mels"] == 32 and meta["backend"] == "torch"


def test_db_floor_padding_applies_to_mel_padding_only(tmp_path, small_table, tiny_cfg):
    store = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    n = int(store.n_frames[0])
    plain, floored = store.get(0), store.get(0, db_floor_padding=True)
    assert (plain[:, n:] == 0).all()
    assert (floored[0, n:] == -80.0).all() and (floored[1, n:] == 0).all()
    np.testing.assert_array_equal(floored[:, :n], plain[:, :n])
    full = store.get(1, db_floor_padding=True)                      # no padding: unchanged
    np.testing.assert_array_equal(full, store.get(1))


def test_build_is_idempotent_and_rebuilds_on_changes(tmp_path, small_table, tiny_cfg):
    store = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    mel = store.directory / "mel.npy"
    stamp = mel.stat().st_mtime_ns
    again = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    assert mel.stat().st_mtime_ns == stamp and again.segment_ids == store.segment_ids
    before = store.get_batch(range(3))
    fewer = small_table.iloc[:2]
    rebuilt = build_feature_store(fewer, tmp_path, tiny_cfg, progress=False)
    assert len(rebuilt) == 2 and mel.stat().st_mtime_ns != stamp
    np.testing.assert_array_equal(rebuilt.get(1), store.get(1))
    # A reader of the old store keeps its whole file (replaced, not truncated under it).
    np.testing.assert_array_equal(store.get_batch(range(3)), before)
    assert sorted(p.name for p in store.directory.iterdir()) == ["index.parquet", "mel.npy", "meta.json"]


def test_store_is_rebuilt_when_the_corpus_was_prepared_again(tmp_path, small_table, tiny_cfg):
    """Same segment ids, new wav files: `prepare` records a new input fingerprint, and features
    of the old files must not be reused."""
    report = tmp_path / "prepare_report.json"
    report.write_text(json.dumps({"input_fingerprint": "first"}))
    store = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    stamp = (store.directory / "mel.npy").stat().st_mtime_ns
    assert json.loads((store.directory / "meta.json").read_text())["source"] == "first"
    report.write_text(json.dumps({"input_fingerprint": "second"}))
    with pytest.raises(KoemoInputError, match="earlier preparation"):
        open_feature_store(tmp_path, tiny_cfg)
    rebuilt = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    assert (rebuilt.directory / "mel.npy").stat().st_mtime_ns != stamp
    assert json.loads((rebuilt.directory / "meta.json").read_text())["source"] == "second"


def test_interrupted_build_never_looks_complete(tmp_path, small_table, tiny_cfg, monkeypatch):
    import koemo.audio.feature_store as features
    build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")
    monkeypatch.setattr(features, "extract_batch", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        build_feature_store(small_table.iloc[::-1], tmp_path, tiny_cfg, progress=False)
    with pytest.raises(KoemoInputError, match="no feature store"):
        open_feature_store(tmp_path, tiny_cfg)
    monkeypatch.undo()
    store = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    assert open_feature_store(tmp_path, tiny_cfg).segment_ids == store.segment_ids


def test_librosa_backend_store_agrees_with_torch_store(tmp_path, small_table, tiny_cfg):
    librosa_cfg = load_config("tiny", ["features.hop_length=512", "features.backend=librosa"])
    a = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    b = build_feature_store(small_table, tmp_path, librosa_cfg, progress=False)
    assert a.directory != b.directory
    np.testing.assert_array_equal(a.n_frames, b.n_frames)
    np.testing.assert_allclose(a.get_batch(range(3)), b.get_batch(range(3)), atol=0.05)


def test_bad_files_are_all_reported_before_any_work(tmp_path, small_table, tiny_cfg):
    short = write_table(tmp_path, {"Sess01_script01_User001F_003": tone(0.1)})
    missing = pd.DataFrame([{"segment_id": "Sess01_script01_User001F_004",
                             "wav_path": str(tmp_path / "gone.wav")}])
    table = pd.concat([small_table, short, missing], ignore_index=True)
    with pytest.raises(KoemoInputError) as err:
        build_feature_store(table, tmp_path / "w", tiny_cfg, progress=False)
    text = str(err.value)
    assert "2 of 5" in text and "gone.wav: file not found" in text
    assert "Sess01_script01_User001F_003" in text and "too short" in text
    assert not (tmp_path / "w" / "features").exists()


def test_store_pickles_without_its_array(tmp_path, small_table, tiny_cfg):
    store = build_feature_store(small_table, tmp_path, tiny_cfg, progress=False)
    store.get(0)
    blob = pickle.dumps(store)
    assert len(blob) < store.mel.nbytes
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.get(2), store.get(2))


def test_open_rejects_a_folder_without_a_complete_store(tmp_path):
    with pytest.raises(KoemoInputError, match="not a complete feature store"):
        FeatureStore(tmp_path)


def test_length_sorted_batches_bound_rows_and_padded_samples():
    from koemo.audio.feature_store import length_sorted_batches
    lengths = np.array([50, 10, 400, 30, 20, 300, 60, 40])
    batches = length_sorted_batches(lengths, batch_size=3, max_samples=600)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 600
        assert list(lengths[batch]) == sorted(lengths[batch])
    assert [lengths[b].tolist() for b in batches] == [[10, 20, 30], [40, 50, 60], [300], [400]]


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"segment_id": ["a"]}), "missing column 'wav_path'"),
    (pd.DataFrame({"segment_id": ["a", "b", "a"], "wav_path": ["x", "y", "z"]}), "1 duplicate segment ids"),
    (pd.DataFrame({"segment_id": [], "wav_path": []}), "no rows"),
])
def test_bad_tables_are_input_errors(tmp_path, tiny_cfg, table, message):
    with pytest.raises(KoemoInputError, match=message):
        build_feature_store(table, tmp_path, tiny_cfg, progress=False)
