"""koemo.inference.app / `koemo app`: the page's logic without a browser, its figures and command line.
The page in a real browser is tests/test_app_browser.py."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.inference import app
from koemo.inference.app import AppSettings, analyse, probability_figure, va_figure
from koemo.cli import build_parser, main
from koemo.errors import KoemoInputError
from koemo.inference.predictor import Predictor
from koemo.synth.speech import SAMPLE_RATE, make_voice, synthesize


def sine(path, seconds: float, hz: float = 220.0):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), SAMPLE_RATE)
    return str(path)


@pytest.fixture(scope="module")
def predictor(exported_predictor_dir):
    # No speech recognition here: without a transcript the page shows arousal only
    # (the page with speech recognition: test_long_recording_shows_the_real_timeline).
    return Predictor.from_checkpoint(exported_predictor_dir, asr="none")


def speech(path, seconds: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(path, synthesize(int(seconds * SAMPLE_RATE), 3.5, make_voice("M", rng), rng), SAMPLE_RATE)
    return str(path)


def test_prediction_shows_label_probabilities_and_plane(predictor, tmp_path, tiny_transcript):
    wav = speech(tmp_path / "a.wav", 1.5)
    out = analyse(predictor, wav, None, tiny_transcript)
    direct = predictor.predict(wav, tiny_transcript)
    assert out.error is None
    assert out.label == direct.label and out.probabilities == direct.probabilities
    assert (out.arousal, out.valence) == (direct.arousal, direct.valence)
    assert f"**Emotion: {direct.label}**" in out.summary
    assert f"**Arousal:** {direct.arousal:.2f}" in out.summary and direct.text in out.summary
    assert out.timeline is None                           # fits the model's window
    # The upload wins over a microphone recording.
    other = speech(tmp_path / "b.wav", 1.5, seed=9)
    assert analyse(predictor, wav, other, tiny_transcript).probabilities == out.probabilities


def test_without_transcript_arousal_only(predictor, tmp_path):
    out = analyse(predictor, None, speech(tmp_path / "rec.wav", 1.5), "   ")
    assert out.error is None and out.label is None and out.valence is None
    assert "not predicted (no transcript" in out.summary and "**Arousal:**" in out.summary


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no recording: upload an audio file"),
    (lambda p: (p.write_text("안녕하세요, this is not audio\n"), p)[1], "not an audio file koemo can read"),
    (lambda p: (p.write_bytes(b""), p)[1], "the file is empty"),
    (lambda p: sf.write(p, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE) or p, "audio is silent"),
    (lambda p: sf.write(p, np.zeros(0, dtype=np.float32), SAMPLE_RATE) or p, "the recording is empty"),
    (lambda p: sine(p, 0.02), "audio too short"),
])
def test_bad_recordings_give_one_message(predictor, tmp_path, tiny_transcript, make, message):
    upload = make(tmp_path / "upload.wav")
    out = analyse(predictor, upload and str(upload), None, tiny_transcript)
    assert out.error is not None and message in out.error
    assert "Traceback" not in out.error and out.summary == "" and out.label is None


def test_limits_refuse_before_predicting(predictor, tmp_path, tiny_transcript, monkeypatch):
    wav = speech(tmp_path / "long.wav", 3.0)
    monkeypatch.setattr(predictor, "predict", lambda *a, **k: pytest.fail("predicted past a limit"))
    out = analyse(predictor, wav, None, tiny_transcript, AppSettings(max_seconds=2.5))
    assert "3.0 s is longer than this page accepts (2.5 s)" in out.error
    out = analyse(predictor, wav, None, tiny_transcript, AppSettings(max_upload_mb=0.05))
    assert "over the upload limit of 0.05 MB" in out.error
    with pytest.raises(KoemoInputError, match="must be positive"):
        AppSettings(max_seconds=0)


def test_bad_transcript_and_unexpected_failures(predictor, tmp_path, monkeypatch, caplog):
    wav = speech(tmp_path / "a.wav", 1.5)
    assert "no Korean (Hangul) characters" in analyse(predictor, wav, None, "hello there").error

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA fell over")

    monkeypatch.setattr(predictor, "predict", broken)
    out = analyse(predictor, wav, None, None)
    assert out.error.startswith("the prediction failed on the server")
    assert "CUDA" not in out.error                         # details go to the log, not the page
    assert "CUDA fell over" in caplog.text


def png_plot(table, path):
    """plot_timeline's stand-in: a real (tiny) PNG at `path`."""
    from PIL import Image

    Image.new("RGB", (4, 3), "white").save(path)
    return path


def test_long_recording_uses_the_timeline_when_segments_exists(predictor, tmp_path, monkeypatch):
    wav = speech(tmp_path / "long.wav", 3 * predictor.window_seconds)
    frame = pd.DataFrame({"start": [0.0, 2.0], "end": [2.0, 4.0], "label": ["sad", "happy"]})
    seen = {}

    def predict_timeline(pred, audio):
        seen["args"] = (pred, audio)
        return frame

    def plot_timeline(table, path):
        seen["plotted"] = table
        return png_plot(table, path)

    # No transcript typed: the timeline is the utterances voice activity finds, and says so.
    monkeypatch.setattr(app, "load_timeline_tools", lambda: (predict_timeline, plot_timeline))
    out = analyse(predictor, wav, None, None)
    assert out.error is None and seen["args"] == (predictor, wav) and seen["plotted"] is frame
    assert out.timeline is frame and out.timeline_image.size == (4, 3)
    assert "utterances voice activity finds" in out.timeline_caption
    # Short recordings never ask for a timeline.
    seen.clear()
    analyse(predictor, speech(tmp_path / "short.wav", 1.0), None, None)
    assert not seen
    # Without koemo.inference.segments: windows averaged, and a note says the timeline is missing.
    monkeypatch.setattr(app, "load_timeline_tools", lambda: None)
    out = analyse(predictor, wav, None, None)
    assert out.timeline is None and out.valence is None
    assert "timeline not shown: koemo.inference.segments is not installed" in out.notes[-1]


@pytest.fixture()
def speech_model_unavailable(exported_predictor_dir, monkeypatch):
    """The predictor as `koemo app` loads it (asr from the config: openai/whisper-small),
    on a server where that model cannot load."""
    from koemo.inference import asr

    calls = []

    def no_whisper(settings, device="cpu"):
        calls.append(settings)
        raise KoemoInputError(asr.offline_message(settings.model))

    monkeypatch.setattr(asr.Transcriber, "load", staticmethod(no_whisper))
    return Predictor.from_checkpoint(exported_predictor_dir), calls


def test_typed_transcript_timeline_loads_no_speech_model_and_agrees(
        speech_model_unavailable, tmp_path, tiny_transcript, monkeypatch):
    """A 6 s recording (longer than the model's window: 4.1 s in tiny, 3.1 s in the demo) with
    a typed transcript: no speech model is touched, the timeline is the windows the result
    averages, and no koemo-app-* folder is left behind."""
    import tempfile

    predictor, whisper_loads = speech_model_unavailable
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    wav = speech(tmp_path / "six.wav", 6.0)
    assert 6.0 > predictor.window_seconds
    out = analyse(predictor, wav, None, tiny_transcript)
    assert out.error is None and not whisper_loads and predictor._transcriber is None
    direct = predictor.predict(wav, tiny_transcript)
    assert len(out.timeline) == direct.windows.n_windows >= 2
    assert out.timeline["arousal"].mean() == pytest.approx(out.arousal, abs=1e-9)
    for name, p in out.probabilities.items():
        assert out.timeline[f"prob_{name}"].mean() == pytest.approx(p, abs=1e-6)
    assert (out.timeline["valence"] == out.valence).all()
    assert "windows" in out.timeline_caption and "typed transcript" in out.timeline_caption
    assert out.timeline_image.size[0] > 100            # the figure, drawn
    assert list(temp.glob("koemo-app-*")) == []               # the figure's folder is gone


def test_page_errors_show_no_server_paths_or_command_line_advice(
        speech_model_unavailable, tmp_path, tiny_transcript):
    predictor, _ = speech_model_unavailable
    upload_dir = tmp_path / "gradio" / "5f0c1d2e"          # as Gradio stores an upload
    upload_dir.mkdir(parents=True)
    bad = upload_dir / "memo.wav"
    bad.write_text("not audio\n", encoding="utf-8")
    error = analyse(predictor, str(bad), None, tiny_transcript).error
    assert error.startswith("memo.wav: not an audio file") and str(tmp_path) not in error
    long_wav = speech(tmp_path / "long.wav", 3.0)
    error = analyse(predictor, long_wav, None, tiny_transcript, AppSettings(max_seconds=2.5)).error
    assert "longer than this page accepts" in error and "--" not in error
    error = analyse(predictor, long_wav, None, "hello there").error
    assert "no Korean (Hangul)" in error and "type the Korean transcript" in error
    assert "(None)" not in error and str(tmp_path) not in error
    # No transcript, and the server's speech model cannot load: ask for the transcript.
    error = analyse(predictor, long_wav, None, None).error
    assert "speech recognition is not available on this server" in error
    assert "--asr" not in error and "--text" not in error and "whisper" not in error


def test_page_message_rewording():
    assert app.page_message("/tmp/gradio/ab12/x.wav: audio too short (0.010 s)") == \
        "x.wav: audio too short (0.010 s)"
    assert app.page_message("model missing; pass --asr DIR (or asr.model); or --text") == "model missing"
    assert "https://huggingface.co/x" in app.page_message("see https://huggingface.co/x")


def test_port_in_use_is_one_line(exported_predictor_dir, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["app", "--checkpoint", str(exported_predictor_dir), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}: cannot listen there" in err and "--port" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_timeline_tools_absent_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "koemo.inference.segments", None)     # as if not installed
    assert app.load_timeline_tools() is None


def test_probability_bars_and_plane():
    classes = ["neutral", "sad", "happy", "surprise", "angry"]
    probs = dict(zip(classes, [0.1, 0.2, 0.4, 0.05, 0.25]))
    ax = probability_figure(probs, classes).axes[0]
    widths = {t.get_text(): bar.get_width() for t, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert widths == pytest.approx(probs)
    ax = va_figure(4.2, 1.7, "happy").axes[0]
    assert ax.get_xlim() == (1.0, 5.0) and ax.get_ylim() == (1.0, 5.0)
    assert ax.collections[0].get_offsets().tolist() == [[1.7, 4.2]]      # (valence, arousal)
    assert "valence" in ax.get_xlabel() and "arousal" in ax.get_ylabel()
    empty = probability_figure(None, classes).axes[0]
    assert "not predicted" in empty.texts[-1].get_text()
    line = va_figure(2.5, None).axes[0]
    assert not line.collections and line.get_legend().get_title().get_text() == "valence not predicted"


def test_command_line_defaults_and_errors(capsys, tmp_path):
    args = build_parser().parse_args(["app", "--checkpoint", "x"])
    assert (args.host, args.port, args.max_upload_mb, args.max_seconds) == ("127.0.0.1", 7860, 50.0, 600.0)
    assert main(["app", "--checkpoint", "x", "--port", "0"]) == 1
    assert "--port must be 1-65535" in capsys.readouterr().err
    assert main(["app", "--checkpoint", str(tmp_path / "missing")]) == 1
    assert "neither a predictor directory nor a hub id" in capsys.readouterr().err


def test_long_recording_shows_the_real_timeline(asr_predictor_dir, standin_whisper, tmp_path):
    """koemo.inference.segments wired in: a five-utterance recording longer than the model's window gets
    one timeline row per utterance Silero finds, and its figure."""
    from koemo.inference.segments import timeline_columns
    from koemo.synth.recording import long_recording

    predictor = Predictor.from_checkpoint(asr_predictor_dir,
                                          asr={"model": str(standin_whisper), "max_new_tokens": 6})
    wave, spans = long_recording(n_utterances=5, seed=1)
    path = tmp_path / "long.wav"
    sf.write(path, wave, SAMPLE_RATE)
    assert len(wave) / SAMPLE_RATE > predictor.window_seconds
    out = analyse(predictor, str(path), None, None)
    assert out.error is None and out.timeline is not None
    assert list(out.timeline.columns) == timeline_columns(predictor.classes)
    assert len(out.timeline) == len(spans)
    assert np.isfinite(out.timeline["arousal"]).all()
    assert out.timeline_image.size[0] > 100


def test_one_palette_for_the_bars_the_plane_and_the_timeline():
    """Each class has one colour on the page: the probability bars, the valence-arousal point
    and the timeline's bands and stacked probabilities all read koemo.inference.palette."""
    import pandas as pd
    from matplotlib.colors import to_rgba

    from koemo.inference.palette import class_colours
    from koemo.inference.segments import timeline_columns, timeline_figure

    classes = ["neutral", "sad", "happy", "surprise", "angry"]
    palette = {c: to_rgba(colour) for c, colour in class_colours(classes).items()}
    probs = dict(zip(classes, [0.1, 0.2, 0.4, 0.05, 0.25]))
    ax = probability_figure(probs, classes).axes[0]
    bars = {t.get_text(): bar.get_facecolor() for t, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert bars == palette
    point = va_figure(4.2, 1.7, "happy", classes).axes[0].collections[0].get_facecolor()[0]
    assert tuple(point) == palette["happy"]
    frame = pd.DataFrame([{"start": float(k), "end": k + 0.9, "label": c,
                           **{f"prob_{o}": float(o == c) for o in classes},
                           "arousal": 3.0, "valence": 3.0, "text": "", "text_source": "",
                           "notes": ""} for k, c in enumerate(classes)],
                         columns=timeline_columns(classes))
    label_ax, prob_ax, _ = timeline_figure(frame).axes
    bands = [patch.get_facecolor() for patch in label_ax.patches]
    assert bands == [palette[c][:3] + (0.9,) for c in classes]      # alpha 0.9 bands
    stacked = {patch.get_facecolor() for patch in prob_ax.patches}
    assert stacked == set(palette.values())
