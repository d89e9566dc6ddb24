"""What `koemo predict` accepts: an exported predictor's encoder config.json is bounded before
anything is built, as its meta.json is; a wav that `koemo prepare` would drop is refused (cut)
or predicted with a note saying what is wrong with it (sample format), by prepare's own check."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from koemo.cli import main
from koemo.errors import CheckpointError, KoemoInputError
from koemo.inference.manifest import MANIFEST_FILE
from koemo.inference.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(exported_predictor_dir):
    return Predictor.from_checkpoint(exported_predictor_dir, asr="none")


@pytest.fixture(scope="module")
def spoken(tiny_workdir, tiny_transcript):
    """(wave, rate, transcript) of a tiny-corpus utterance."""
    import pandas as pd

    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    row = table.sort_values("segment_id").iloc[0]
    wave, rate = sf.read(row["wav_path"], dtype="float32")
    return wave, rate, tiny_transcript


# ----------------------------------------------------------------------------- encoder config

@pytest.mark.parametrize("key, value, bound", [("num_hidden_layers", 100000, "1-64"),
                                               ("hidden_size", 1e9, "1-16384"),
                                               ("num_attention_heads", 0, "1-64"),
                                               ("vocab_size", 2.5, "1-1048576")])
def test_text_encoder_config_is_bounded_before_building(exported_predictor_dir, tmp_path,
                                                        monkeypatch, capsys, key, value, bound):
    from koemo.text import encoder

    folder = tmp_path / "big"
    shutil.copytree(exported_predictor_dir, folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    config_path = folder / manifest["encoder"] / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config[key] = value
    config_path.write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr(encoder, "load_kobert", lambda *a, **k: pytest.fail("built the encoder"))
    monkeypatch.setattr(encoder, "load_text_encoder", lambda *a, **k: pytest.fail("built the encoder"))
    with pytest.raises(CheckpointError, match=f"{config_path}: {key} = .* is not a size koemo "
                                              f"builds \\(a whole number {bound}\\)"):
        Predictor.from_checkpoint(folder)
    assert main(["predict", "x.wav", "--text", "안녕", "--checkpoint", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{config_path}: {key}" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- prepare's wav checks

def half_cut(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def test_a_cut_wav_is_refused_in_one_line(predictor, exported_predictor_dir, spoken, tmp_path, capsys):
    wave, rate, text = spoken
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.tile(wave, 2), rate, subtype="PCM_16")
    cut = half_cut(whole, tmp_path / "cut.wav")
    with pytest.raises(KoemoInputError, match=f"{cut}: wav file is truncated: header declares "
                                              ".* data bytes, .* present: the prediction would be"):
        predictor.predict(cut, text)
    assert main(["predict", str(cut), "--text", text, "--checkpoint", str(exported_predictor_dir)]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and len(err.strip().splitlines()) == 1
    # --batch reports the row and goes on with the others.
    listing = tmp_path / "list.csv"
    listing.write_text(f"wav,text\ncut.wav,{text}\nwhole.wav,{text}\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["predict", "--batch", str(listing), "--out", str(out), "--checkpoint",
                 str(exported_predictor_dir), "--no-progress"]) == 1
    import pandas as pd
    table = pd.read_csv(out, keep_default_na=False)
    assert table["status"].tolist() == ["error", "ok"] and "truncated" in table["error"][0]
    # What predict converts is no problem: another rate and channel count, no prepare note.
    import soxr

    stereo = soxr.resample(np.tile(wave, 2), rate, 44100)
    sf.write(tmp_path / "stereo44k.wav", np.stack([stereo, stereo], axis=1), 44100, subtype="PCM_16")
    notes = predictor.predict(tmp_path / "stereo44k.wav", text).notes
    assert "2 channels averaged to mono" in notes
    assert not any("koemo prepare" in note for note in notes)


@pytest.mark.parametrize("fmt, subtype, shown", [("WAV", "ULAW", "sample format is ULAW"),
                                                 ("MP3", "MPEG_LAYER_III",
                                                  "sample format is MPEG_LAYER_III")])
def test_a_wav_prepare_would_drop_for_its_format_is_predicted_with_a_note(
        predictor, exported_predictor_dir, spoken, tmp_path, capsys, fmt, subtype, shown):
    wave, rate, text = spoken
    path = tmp_path / "odd.wav"                 # MP3 data under a .wav name: renamed
    sf.write(path, wave, rate, format=fmt, subtype=subtype)
    result = predictor.predict(path, text)
    note = next(n for n in result.notes if n.startswith(shown))
    assert "`koemo prepare` leaves such a wav out" in note
    assert main(["predict", str(path), "--text", text, "--checkpoint",
                 str(exported_predictor_dir), "--json"]) == 0
    assert note in json.loads(capsys.readouterr().out)["notes"]
