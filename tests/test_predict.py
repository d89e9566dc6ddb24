"""koemo.inference.predictor / `koemo predict`: a raw wav plus transcript -> emotion, arousal, valence.

The predictor is trained once per module on the tiny synthetic corpus (one epoch per stage)
and assembled with export_from_workdir, exactly as a user would."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from koemo.cli import main
from koemo.config.load import with_changes
from koemo.errors import CheckpointError, KoemoInputError
from koemo.inference.predictor import Predictor
from koemo.inference.windows import frame_windows, window_starts
from koemo.inference.manifest import MANIFEST_FILE
from koemo.inference.export import export_from_workdir, export_predictor
from tests.builders import sections

SEED = 1


@pytest.fixture(scope="module")
def trained_cfg(tiny_config):
    # own run directories: no clash with other test modules
    return with_changes(tiny_config, {"name": "tiny-predict", "train": {
        stage: {"epochs": 1} for stage in ("audio", "text", "multimodal")}})


@pytest.fixture(scope="module")
def predictor_dir(tiny_workdir, trained_cfg, tmp_path_factory):
    from koemo.modeling.train import train_stage

    for stage in ("audio", "text", "multimodal"):
        train_stage(stage, tiny_workdir, trained_cfg, SEED, progress=False)
    return export_from_workdir(tiny_workdir, trained_cfg, SEED,
                               tmp_path_factory.mktemp("predictor") / "tiny")


@pytest.fixture(scope="module")
def predictor(predictor_dir):
    # No speech recognition here (asr none): tests/test_asr.py covers it with a tiny Whisper.
    return Predictor.from_checkpoint(predictor_dir, asr="none")


@pytest.fixture(scope="module")
def utterance(tiny_workdir):
    """An utterance of median length from the tiny corpus: (wav path, raw transcript)."""
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    row = table.sort_values("duration").iloc[len(table) // 2]
    return row["wav_path"], row["text_raw"]


def cli_json(capsys, *args) -> dict:
    assert main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------- windows

def test_window_starts_cover_the_recording_with_half_overlap():
    assert window_starts(50, 64) == [0]
    assert window_starts(64, 64) == [0]
    assert window_starts(200, 64, "cut") == [0]
    starts = window_starts(200, 64)
    assert starts[0] == 0 and starts[-1] == 200 - 64
    assert all(0 < b - a <= 32 for a, b in zip(starts, starts[1:]))
    with pytest.raises(KoemoInputError, match="long_audio must be one of"):
        window_starts(200, 64, "stretch")


def test_frame_windows_pad_and_count_valid_frames():
    feats = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3) + 1
    out, lengths = frame_windows(feats, 10, 6, [0, 4])
    assert out.shape == (2, 2, 6, 3) and lengths.tolist() == [6, 6]
    np.testing.assert_array_equal(out[1], feats[:, 4:10])
    out, lengths = frame_windows(feats[:, :4], 4, 6, [0])
    assert lengths.tolist() == [4] and not out[0, :, 4:].any()


# ----------------------------------------------------------------------------- predictions

def test_prediction_has_every_output(predictor, utterance):
    wav, text = utterance
    result = predictor.predict(wav, text)
    assert list(result.probabilities) == ["neutral", "sad", "happy", "surprise", "angry"]
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert 1.0 <= result.arousal <= 5.0 and 1.0 <= result.valence <= 5.0
    assert "/" not in result.text                           # markers removed as in training
    assert result.audio.source == str(wav) and result.windows.n_windows >= 1
    assert result.windows.used_s == pytest.approx(result.audio.duration_s)
    # Seeded: the same call gives the same numbers although eval dropout is on (faithful).
    again = predictor.predict(wav, text)
    assert again.probabilities == result.probabilities and again.arousal == result.arousal
    assert any("attention dropout on in eval" in note for note in result.notes)


def test_cli_and_api_agree(predictor, predictor_dir, utterance, capsys, tmp_path):
    wav, text = utterance
    api = predictor.predict(wav, text)
    out = cli_json(capsys, str(wav), "--text", text, "--checkpoint", str(predictor_dir))
    assert out["label"] == api.label
    for name, p in api.probabilities.items():
        assert out["probabilities"][name] == pytest.approx(p, abs=1e-6)
    assert out["arousal"] == pytest.approx(api.arousal, abs=1e-6)
    assert out["valence"] == pytest.approx(api.valence, abs=1e-6)
    text_file = tmp_path / "t.txt"
    text_file.write_bytes(text.encode("cp949"))             # KEMDy20 transcripts are cp949
    from_file = cli_json(capsys, str(wav), "--text-file", str(text_file), "--checkpoint", str(predictor_dir))
    assert from_file["probabilities"] == out["probabilities"]
    assert main(["predict", str(wav), "--text", text, "--checkpoint", str(predictor_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"emotion:  {api.label}" in shown and f"arousal:  {api.arousal:.2f}" in shown


def test_stereo_44k1_gives_the_result_of_its_16k_mono_version(predictor, utterance, tmp_path):
    wav, text = utterance
    mono16, rate = sf.read(wav, dtype="float32")
    assert rate == 16000
    up = soxr.resample(mono16, 16000, 44100, quality="HQ")
    down = soxr.resample(up, 44100, 16000, quality="HQ")     # the 16 kHz mono conversion
    side = 0.01 * np.sin(2 * np.pi * 300 * np.arange(up.size) / 44100)
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, np.stack([up + side, up - side], axis=1), 44100, subtype="FLOAT")
    mono_file = tmp_path / "mono16k.wav"
    sf.write(mono_file, down, 16000, subtype="FLOAT")
    a, b = predictor.predict(stereo, text), predictor.predict(mono_file, text)
    assert a.audio.original_channels == 2 and a.audio.original_sample_rate == 44100
    assert a.windows.n_windows == b.windows.n_windows
    assert a.arousal == pytest.approx(b.arousal, abs=1e-3)
    for name in a.probabilities:
        assert a.probabilities[name] == pytest.approx(b.probabilities[name], abs=1e-3)
    # And the array API with an explicit rate equals the file.
    c = predictor.predict(np.stack([up + side, up - side]), text, sample_rate=44100)
    assert c.arousal == pytest.approx(a.arousal, abs=1e-5)


def test_without_transcript_only_arousal(predictor, utterance):
    wav, text = utterance
    result = predictor.predict(wav, None)
    assert result.label is None and result.probabilities is None and result.valence is None
    assert any("text path skipped" in note and "emotion not predicted" in note for note in result.notes)
    # The audio pass has its own seed: arousal does not depend on the transcript being there.
    assert result.arousal == pytest.approx(predictor.predict(wav, text).arousal, abs=1e-6)


def test_long_audio_windows_or_cut(predictor, utterance, tmp_path):
    wav, text = utterance
    wave, rate = sf.read(wav, dtype="float32")
    long_wave = np.tile(wave, int(np.ceil(3 * predictor.window_seconds * rate / wave.size)))
    windows = predictor.predict(long_wave, text, sample_rate=rate)
    assert windows.windows.mode == "windows" and windows.windows.n_windows >= 3
    assert windows.windows.used_s == pytest.approx(long_wave.size / rate)
    assert any("overlapping windows" in note for note in windows.notes)
    cut = Predictor.from_checkpoint(predictor.source, long_audio="cut").predict(long_wave, text, rate)
    assert cut.windows.mode == "cut" and cut.windows.n_windows == 1
    assert cut.windows.used_s == pytest.approx(predictor.window_seconds)
    assert any("only the first" in note for note in cut.notes)


def all_at_once(predictor, item):
    """The earlier path, as reference: every window cut at once, each pass over all of them."""
    from koemo.inference.predictor import _seeded

    src, size = item.frames, predictor.batch_size
    whole = np.concatenate(list(src.feature_blocks()), axis=1)
    feats, lengths = frame_windows(whole, src.n_frames, src.max_frames, src.starts)
    feats = src.finish(feats, lengths)
    batches = [slice(i, i + size) for i in range(0, len(feats), size)]
    tensors = lambda rows: (torch.as_tensor(feats[rows]), torch.as_tensor(lengths[rows]))  # noqa: E731
    with torch.inference_mode():
        with _seeded(predictor.seed, predictor.device):
            outs = [predictor.audio_model(*tensors(rows)) for rows in batches]
        with _seeded(predictor.seed + 1, predictor.device):
            text_out = predictor._text_pass([item])
        with _seeded(predictor.seed + 2, predictor.device):
            probs = [torch.softmax(predictor.classifier(
                out["hidden"], out["mask"], text_out["hidden"][[0] * len(out["mask"])],
                text_out["mask"][[0] * len(out["mask"])])["logits"].float(), dim=-1).numpy()
                for out in outs]
    arousal = np.concatenate([out["pred"].float().numpy() for out in outs]).astype(np.float64)
    return arousal.mean(), np.concatenate(probs).mean(axis=0)


def test_long_input_windows_are_cut_a_batch_at_a_time(predictor, utterance, tmp_path, monkeypatch):
    """A long recording never holds all its windows: they are cut lazily, at most two batches
    ahead of the model, and the result is exactly the all-at-once path's."""
    import inspect

    from koemo.inference import windows as windows_module

    wav, text = utterance
    wave, rate = sf.read(wav, dtype="float32")
    long_wave = np.tile(wave, int(np.ceil(8 * predictor.window_seconds * rate / wave.size)))
    monkeypatch.setattr(predictor, "batch_size", 3)
    item = predictor.prepare(long_wave, text, rate)
    n_windows = len(item.frames)
    assert n_windows >= 12 and predictor.shared_audio
    chunks = item.frames.chunks(5)
    assert inspect.isgenerator(chunks)
    sizes = [len(lengths) for _, lengths in chunks]
    assert sizes == [5] * (n_windows // 5) + ([n_windows % 5] if n_windows % 5 else [])
    cut, ahead = [0], []
    original_chunks, audio_model = windows_module.WindowSource.chunks, predictor.audio_model

    def counting_chunks(self, size):
        for feats, lengths in original_chunks(self, size):
            cut[0] += len(lengths)
            yield feats, lengths

    def counting_model(feats, lengths):
        ahead.append(cut[0] - sum(len(f) for f in batches))
        batches.append(feats)
        return audio_model(feats, lengths)

    batches = []
    monkeypatch.setattr(windows_module.WindowSource, "chunks", counting_chunks)
    monkeypatch.setattr(predictor, "audio_model", counting_model)
    result = predictor.predict(long_wave, text, sample_rate=rate)
    assert result.windows.n_windows == n_windows == cut[0]
    assert max(len(f) for f in batches) == 3 and max(ahead) <= 2 * 3       # never all windows
    monkeypatch.setattr(predictor, "audio_model", audio_model)
    arousal, probs = all_at_once(predictor, item)
    assert result.arousal == arousal
    assert list(result.probabilities.values()) == probs.tolist()
    assert result.per_window.arousal.mean() == arousal and len(result.per_window.arousal) == n_windows


def test_batch_cli_writes_every_row(predictor, predictor_dir, utterance, tmp_path, capsys):
    wav, text = utterance
    shutil.copy(wav, tmp_path / "a.wav")
    (tmp_path / "notes.wav").write_text("not audio", encoding="utf-8")
    listing = tmp_path / "list.csv"
    pd.DataFrame({"wav": ["a.wav", "a.wav", "missing.wav", "notes.wav"],
                  "text": [text, "", text, text]}).to_csv(listing, index=False)
    out = tmp_path / "pred.csv"
    status = main(["predict", "--batch", str(listing), "--out", str(out), "--checkpoint",
                   str(predictor_dir), "--no-progress", "--asr", "none"])
    assert status == 1                                       # some rows failed ...
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 4                                   # ... and every row is in the output
    assert table["status"].tolist() == ["ok", "ok", "error", "error"]
    assert "missing.wav: audio file not found" in table.loc[2, "error"]
    assert "notes.wav: not a readable audio file" in table.loc[3, "error"]
    assert table.loc[1, "label"] == "" and "text path skipped" in table.loc[1, "notes"]
    assert "row 4 (missing.wav)" in capsys.readouterr().err
    api = list(predictor.predict_many([(tmp_path / "a.wav", text), (tmp_path / "a.wav", None),
                                       (tmp_path / "missing.wav", text)]))
    assert isinstance(api[2], KoemoInputError)
    bare = next(predictor.predict_many([tmp_path / "a.wav"]))    # a bare path: no transcript
    assert bare.label is None
    assert bare.arousal == pytest.approx(predictor.predict(tmp_path / "a.wav").arousal, abs=1e-6)
    assert table.loc[0, "label"] == api[0].label
    assert float(table.loc[0, "arousal"]) == pytest.approx(api[0].arousal, abs=1e-6)
    assert float(table.loc[0, f"prob_{api[0].label}"]) == pytest.approx(
        api[0].probabilities[api[0].label], abs=1e-6)


# ----------------------------------------------------------------------------- bad input

def not_audio(path):
    path.write_text("hello", encoding="utf-8")
    return path


def silent_wav(path):
    sf.write(path, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    return path


def empty_wav(path):
    sf.write(path, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "nope.wav", "nope.wav: audio file not found"),
    (lambda d: not_audio(d / "text.wav"), "text.wav: not a readable audio file"),
    (lambda d: empty_wav(d / "empty.wav"), "empty.wav: audio has zero length"),
    (lambda d: silent_wav(d / "silent.wav"), "silent.wav: audio is silent"),
])
def test_bad_audio(predictor, predictor_dir, utterance, tmp_path, capsys, make, message):
    path = make(tmp_path)
    with pytest.raises(KoemoInputError, match=message):
        predictor.predict(path, utterance[1])
    assert main(["predict", str(path), "--text", utterance[1], "--checkpoint", str(predictor_dir)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_too_short_audio(predictor):
    with pytest.raises(KoemoInputError, match="array: audio too short"):
        predictor.predict(np.full(100, 0.1, np.float32), "안녕하세요", sample_rate=16000)


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("n/ l/ b/", "is empty after removing markers"),
    ("I am so happy today", "no Korean \\(Hangul\\) characters"),
])
def test_bad_transcripts(predictor, utterance, text, message):
    with pytest.raises(KoemoInputError, match=message) as err:
        predictor.predict(utterance[0], text)
    assert str(utterance[0]) in str(err.value)


def test_unknown_pieces_are_noted(predictor, utterance):
    result = predictor.predict(utterance[0], "좋아 🎉🎉🎉 ✨✨✨ ♪♪♪ 🙂🙂🙂")
    assert any("[UNK]" in note for note in result.notes)


# ----------------------------------------------------------------------------- checkpoints

def test_directory_errors(predictor_dir, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="predictor checkpoint directory not found"):
        Predictor.from_checkpoint(tmp_path / "none")
    with pytest.raises(CheckpointError, match=f"{MANIFEST_FILE}: missing"):
        Predictor.from_checkpoint(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(predictor_dir, broken)
    (broken / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        Predictor.from_checkpoint(broken)
    assert main(["predict", "x.wav", "--text", "안녕", "--checkpoint", str(broken)]) == 1
    assert "corrupt JSON" in capsys.readouterr().err
    assert main(["predict", "x.wav"]) == 1
    assert "--checkpoint DIR is required" in capsys.readouterr().err


def edited_copy(predictor_dir, folder, edit_manifest=None) -> "Path":
    shutil.copytree(predictor_dir, folder)
    if edit_manifest is not None:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        edit_manifest(manifest)
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_untrusted_folders_stay_inside_themselves(predictor_dir, tmp_path, capsys):
    shutil.copytree(predictor_dir, tmp_path / "other")
    outside = edited_copy(predictor_dir, tmp_path / "a",
                          lambda m: m["stages"].update(audio="../other/audio"))
    with pytest.raises(CheckpointError, match="stages.audio '../other/audio' points outside the predictor"):
        Predictor.from_checkpoint(outside)
    absolute = edited_copy(predictor_dir, tmp_path / "b",
                           lambda m: m["stages"].update(text=str(tmp_path / "other" / "text")))
    with pytest.raises(CheckpointError, match="stages.text .* points outside"):
        Predictor.from_checkpoint(absolute)
    linked = edited_copy(predictor_dir, tmp_path / "c")
    shutil.rmtree(linked / "multimodal")
    (linked / "multimodal").symlink_to(tmp_path / "other" / "multimodal")
    with pytest.raises(CheckpointError, match="stages.multimodal 'multimodal' points outside"):
        Predictor.from_checkpoint(linked)
    hub = edited_copy(predictor_dir, tmp_path / "d", lambda m: m.update(tokenizer="someone/any-model"))
    with pytest.raises(CheckpointError, match="tokenizer 'someone/any-model' is neither a folder inside"):
        Predictor.from_checkpoint(hub)
    up = edited_copy(predictor_dir, tmp_path / "e", lambda m: m.update(encoder="../other/kobert"))
    with pytest.raises(CheckpointError, match="encoder '../other/kobert' points outside"):
        Predictor.from_checkpoint(up)
    # A manifest missing a stage: one line naming the file (was KeyError: 'text').
    missing = edited_copy(predictor_dir, tmp_path / "f", lambda m: m["stages"].pop("text"))
    assert main(["predict", "x.wav", "--text", "안녕", "--checkpoint", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"{missing / MANIFEST_FILE}: `stages` lacks text" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("key, value", [("inner_dim", 1e9), ("n_layers", 100000), ("num_heads", 0),
                                        ("rnn_hidden", 2.5), ("conv_channels", [8, 10 ** 8])])
def test_meta_sizes_are_bounded_before_building(predictor_dir, tmp_path, monkeypatch, key, value):
    from koemo.modeling import checkpoint

    folder = edited_copy(predictor_dir, tmp_path / "big")
    meta_path = folder / "audio" / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["config"]["models"]["audio"][key] = value
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    monkeypatch.setattr(checkpoint, "build_model", lambda *a, **k: pytest.fail("built the model"))
    with pytest.raises(CheckpointError, match=f"{meta_path}: models.audio.{key} = .* is not a size"):
        Predictor.from_checkpoint(folder)


def test_predictor_says_what_it_was_trained_on(predictor, predictor_dir, utterance, tmp_path, capsys):
    from koemo.inference.provenance import SYNTHETIC_NOTE, UNKNOWN_NOTE

    wav, text = utterance
    manifest = json.loads((predictor_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    record = manifest["provenance"]
    assert record["synthetic"] is True and record["config_name"] == "tiny-predict"
    assert record["corpus"] and {"macro_f1", "accuracy"} <= set(record["test_metrics"]["multimodal"])
    assert "ccc" in record["test_metrics"]["audio"] and "ccc" in record["test_metrics"]["text"]
    assert SYNTHETIC_NOTE in predictor.predict(wav, text).notes
    assert SYNTHETIC_NOTE in predictor.predict(wav, None).notes         # every result
    assert main(["predict", str(wav), "--text", text, "--checkpoint", str(predictor_dir)]) == 0
    shown = capsys.readouterr().out
    assert "predictor: trained on synthetic corpus" in shown and "config tiny-predict" in shown
    assert "multimodal macro_f1" in shown and SYNTHETIC_NOTE in shown
    out = cli_json(capsys, str(wav), "--text", text, "--checkpoint", str(predictor_dir))
    assert out["predictor"]["provenance"] == record and SYNTHETIC_NOTE in out["notes"]
    # A folder exported before the record existed still loads, and says it does not know.
    old = edited_copy(predictor_dir, tmp_path / "old", lambda m: m.pop("provenance"))
    result = Predictor.from_checkpoint(old, asr="none").predict(wav, text)
    assert UNKNOWN_NOTE in result.notes and SYNTHETIC_NOTE not in result.notes
    assert main(["predict", str(wav), "--text", text, "--checkpoint", str(old)]) == 0
    assert "predictor: provenance unknown" in capsys.readouterr().out


def test_printed_transcripts_cannot_drive_the_terminal(predictor_dir, utterance, capsys):
    wav, text = utterance
    hostile = f"{text} \x1b[2J\x07\x1b]0;owned\x07 끝"
    assert main(["predict", str(wav), "--text", hostile, "--checkpoint", str(predictor_dir)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b[2J\\x07" in shown                          # escaped, still visible
    long = "좋아요 " * 3000
    assert main(["predict", str(wav), "--text", long, "--checkpoint", str(predictor_dir)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("text:"))
    assert len(line) < 400 and "characters; --json prints all" in line
    assert cli_json(capsys, str(wav), "--text", long, "--checkpoint", str(predictor_dir))["text"] == long.strip()


def replace_stage(predictor_dir, tmp_path, stage: str, model, cfg) -> "Path":
    from koemo.modeling.checkpoint import save_checkpoint

    mixed = tmp_path / f"mixed-{stage}"
    shutil.copytree(predictor_dir, mixed)
    shutil.rmtree(mixed / stage)
    save_checkpoint(mixed / stage, model, cfg)
    return mixed


def test_stage_from_another_config(predictor_dir, trained_cfg, tmp_path):
    from koemo.modeling.models import AudioRegressor

    other = with_changes(trained_cfg, {"features": {"max_frames": 48}})
    mixed = replace_stage(predictor_dir, tmp_path, "audio", AudioRegressor(other.models, other.fixes), other)
    with pytest.raises(CheckpointError, match="different configs: features.max_frames"):
        Predictor.from_checkpoint(mixed)


def test_regressor_that_is_not_the_classifiers(predictor_dir, trained_cfg, utterance, tmp_path):
    from koemo.modeling.models import AudioRegressor

    torch.manual_seed(123)
    mixed = replace_stage(predictor_dir, tmp_path, "audio", AudioRegressor(trained_cfg.models, trained_cfg.fixes), trained_cfg)
    with pytest.raises(CheckpointError, match="trained on other audio regressor weights"):
        Predictor.from_checkpoint(mixed)
    # Allowed explicitly (e.g. the authors' files from different runs): loads, and says so.
    manifest = json.loads((mixed / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["allow_mismatched_regressors"] = True
    (mixed / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    result = Predictor.from_checkpoint(mixed).predict(utterance[0], utterance[1])
    assert any("arousal comes from the audio regressor whose weights differ" in n for n in result.notes)


def test_corrupt_stage_weights(predictor_dir, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(predictor_dir, corrupt)
    weights = corrupt / "text" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Predictor.from_checkpoint(corrupt)


def test_export_errors(predictor_dir, tiny_workdir, tmp_path):
    stage = {s: predictor_dir / s for s in ("audio", "text", "multimodal")}
    with pytest.raises(CheckpointError, match="a text checkpoint given as the audio stage"):
        export_predictor(stage["text"], stage["audio"], stage["multimodal"], tmp_path / "x",
                         workdir=tiny_workdir)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("keep me")
    with pytest.raises(KoemoInputError, match="exists and is not empty"):
        export_predictor(stage["audio"], stage["text"], stage["multimodal"], tmp_path / "full",
                         workdir=tiny_workdir)
    assert (tmp_path / "full" / "file").read_text() == "keep me"
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        export_predictor(tmp_path, stage["text"], stage["multimodal"], tmp_path / "y")


def test_matches_the_classifiers_own_raw_forward(predictor_dir, trained_cfg, tiny_workdir, utterance, tmp_path):
    """Deterministic config (eval dropout off) whose classifier runs the audio regressor with
    other heads (the faithful 6->4 reuse, here 2->4): the predictor must give exactly what
    features -> classifier.forward_raw gives, and the audio regressor's own arousal."""
    from koemo.audio.features import extract_features
    from koemo.modeling.checkpoint import save_checkpoint
    from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor

    # Read the last valid frame: after a long zero-padded tail the GRU state no longer
    # depends on the head split (padded queries average V the same way with any split).
    cfg = with_changes(trained_cfg, {
        "fixes": {"eval_attention_dropout_off": True, "last_valid_step": True},
        "models": {"multimodal": {"reuse_audio_num_heads": 4}}})
    torch.manual_seed(0)
    audio, text = AudioRegressor(cfg.models, cfg.fixes).eval(), TextRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():               # outputs inside 1-5, so nothing is clipped
        audio.fc.bias += 3.0
        text.fc.bias += 3.0
    classifier = EmoClassifier(*sections(cfg), audio, text).eval()
    for stage, model in (("audio", audio), ("text", text), ("multimodal", classifier)):
        save_checkpoint(tmp_path / stage, model, cfg)
    out = export_predictor(tmp_path / "audio", tmp_path / "text", tmp_path / "multimodal",
                           tmp_path / "pred", text_model=str(predictor_dir / "kobert"))
    pred = Predictor.from_checkpoint(out)
    assert not pred.shared_audio and pred.shared_text
    wav, transcript = utterance
    wave, _ = sf.read(wav, dtype="float32")
    wave = wave[: int(0.9 * pred.window_seconds * 16000)]     # one window
    result = pred.predict(wave, transcript, sample_rate=16000)
    assert not any("attention dropout" in note for note in result.notes)

    feats, n = extract_features(wave, cfg.features, cfg.features.backend)
    feats = torch.from_numpy(feats.astype(np.float16).astype(np.float32))[None]
    encoded = pred.tokenizer.encode(result.text, cfg.text.max_length)
    ids = torch.as_tensor(encoded["input_ids"])[None]
    mask = torch.as_tensor(encoded["attention_mask"])[None]
    with torch.no_grad():
        states = pred.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.half().float()
        expected = classifier.forward_raw(feats, torch.tensor([n]), states, mask)
        arousal = audio(feats, torch.tensor([n]))["pred"]
    probs = torch.softmax(expected["logits"], -1)[0].numpy()
    np.testing.assert_allclose(list(result.probabilities.values()), probs, atol=1e-5)
    assert not any("clipped" in note for note in result.notes)
    assert float(arousal) == pytest.approx(result.arousal, abs=1e-5)
    assert float(expected["valence"]) == pytest.approx(result.valence, abs=1e-5)
    assert not np.isclose(float(arousal), float(expected["arousal"]))   # 2 vs 4 heads differ
