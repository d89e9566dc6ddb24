"""Conversion of the authors' checkpoints. The test writes files the way their code did
(torch.save of state dicts under their key names, KoBERT inside the text files), at the tiny
config, converts them and checks where every tensor went. The "original" state dicts are built
here from the original architecture's key names and shapes (docs/paper.md, "The models"), never
by koemo's own modules, so a wrong key mapping cannot pass as a round trip would."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from koemo.cli import main
from koemo.config.load import load_config
from koemo.modeling.convert import convert_original, read_original_state
from koemo.errors import CheckpointError, KoemoInputError
from koemo.modeling import AudioRegressor, build_from_checkpoint
from koemo.modeling.checkpoint import read_meta

# Faithful tiny config where the classifier reuses the 2-head audio model with 4 heads, like
# the paper's 6 -> 4; the text states are d_model wide, as KoBERT's 768 are (no projection:
# the original has none).
OVERRIDES = ["models.multimodal.reuse_audio_num_heads=4", "models.text.input_dim=64",
             "text.standin.hidden_size=64"]
KOBERT_KEYS = ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight")
CLASSES = 5


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny", OVERRIDES)


def fake_kobert(prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": torch.randn(4, 3) for k in KOBERT_KEYS}


# ----------------------------------------------------------------------------- the original's names and shapes

def attention_layer(prefix: str, d: int, inner: int) -> dict[str, tuple]:
    """One post-LayerNorm layer: bias-free Q/K/V/Out, two LayerNorms, FFN fc1 -> fc2."""
    shapes = {f"{prefix}.MHA.{name}.weight": (d, d) for name in ("Q_fc", "K_fc", "V_fc", "Out_fc")}
    for norm in ("layerNorm1", "layerNorm2"):
        shapes |= {f"{prefix}.{norm}.weight": (d,), f"{prefix}.{norm}.bias": (d,)}
    return shapes | {f"{prefix}.ffn.fc1.weight": (inner, d), f"{prefix}.ffn.fc1.bias": (inner,),
                     f"{prefix}.ffn.fc2.weight": (d, inner), f"{prefix}.ffn.fc2.bias": (d,)}


def recurrent(prefix: str, gates: int, d: int, hidden: int) -> dict[str, tuple]:
    """Bias-free 2-layer GRU (3 gates) or LSTM (4 gates)."""
    return {f"{prefix}.weight_ih_l0": (gates * hidden, d), f"{prefix}.weight_hh_l0": (gates * hidden, hidden),
            f"{prefix}.weight_ih_l1": (gates * hidden, hidden), f"{prefix}.weight_hh_l1": (gates * hidden, hidden)}


def regressor_head(hidden: int) -> dict[str, tuple]:
    return {"fc.weight": (1, hidden), "fc.bias": (1,)}


def original_shapes(m: dict) -> dict[str, dict[str, tuple]]:
    """Key -> shape of the authors' three state dicts (without KoBERT), from their architecture."""
    d, (c1, c2) = m["d_model"], m["audio"]["conv_channels"]
    audio = {"Extractor.conv1.weight": (c1, 2, 1, 4), "Extractor.conv2.weight": (c1, c1, 1, 7),
             "Extractor.conv3.weight": (c2, c1, 1, 4), "Extractor.conv4.weight": (c2, c2, 1, 7)}
    for i in range(m["audio"]["n_layers"]):
        audio |= attention_layer(f"AEBlock1.AE1.{i}", d, m["audio"]["inner_dim"])
    audio |= recurrent("gru", 3, d, m["audio"]["rnn_hidden"]) | regressor_head(m["audio"]["rnn_hidden"])
    text = {}
    for i in range(m["text"]["n_layers"]):
        text |= attention_layer(f"TEBlock1.TE1.{i}", d, m["text"]["inner_dim"])
    text |= recurrent("gru", 3, d, m["text"]["rnn_hidden"]) | regressor_head(m["text"]["rnn_hidden"])
    hidden = m["multimodal"]["rnn_hidden"]
    clf = {f"AudioModel.{k}": v for k, v in audio.items()} | {f"TextModel.{k}": v for k, v in text.items()}
    for i in range(m["multimodal"]["n_layers"]):
        clf |= attention_layer(f"MBA.MB.{i}", d, m["multimodal"]["inner_dim"])
    clf |= recurrent("LSTM", 4, d, hidden) | {"fc.weight": (CLASSES, hidden), "fc.bias": (CLASSES,)}
    return {"audio": audio, "text": text, "multimodal": clf}


def random_state(shapes: dict[str, tuple], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Distinct values in every tensor, so a tensor loaded under another key cannot match."""
    return {key: 0.1 * torch.randn(shape, generator=gen) for key, shape in shapes.items()}


@pytest.fixture(scope="module")
def originals(cfg, tmp_path_factory):
    """The authors' three files, and the state dicts (without KoBERT) they hold."""
    gen = torch.Generator().manual_seed(0)
    shapes = original_shapes(cfg.as_dict()["models"])
    audio, text = random_state(shapes["audio"], gen), random_state(shapes["text"], gen)
    clf = random_state(shapes["multimodal"], gen)
    # Their classifier file holds its own (here: the same) copies of both regressors.
    clf |= {f"AudioModel.{k}": v for k, v in audio.items()} | {f"TextModel.{k}": v for k, v in text.items()}
    folder = tmp_path_factory.mktemp("authors")
    paths = {name: folder / name for name in
             ("audio_arousal.pt", "text_valence.pt", "Multi_Modal_Classifier_ye.pt")}
    torch.save(audio, paths["audio_arousal.pt"])
    torch.save({**text, **fake_kobert("kobert.")}, paths["text_valence.pt"])
    torch.save({**clf, **fake_kobert("TextModel.kobert.")}, paths["Multi_Modal_Classifier_ye.pt"])
    return paths, {"audio": audio, "text": text, "multimodal": clf}


def original_extractor(state: dict, feats: torch.Tensor) -> torch.Tensor:
    """The authors' conv extractor (docs/paper.md), in torch.nn.functional: [B, 2, T, F] ->
    [B, T, C * F/4], channels major."""
    x = F.relu(F.conv2d(feats, state["Extractor.conv1.weight"], stride=(1, 2), padding=(0, 1)))
    x = F.relu(F.conv2d(x, state["Extractor.conv2.weight"], padding=(0, 3)))
    x = F.relu(F.conv2d(x, state["Extractor.conv3.weight"], stride=(1, 2), padding=(0, 1)))
    x = F.conv2d(x, state["Extractor.conv4.weight"], padding=(0, 3))
    return x.permute(0, 2, 1, 3).flatten(2)


def test_every_original_tensor_lands_under_its_key_unchanged(cfg, originals, tmp_path):
    paths, states = originals
    written = convert_original(paths["audio_arousal.pt"], paths["text_valence.pt"],
                               paths["Multi_Modal_Classifier_ye.pt"], tmp_path, cfg)
    assert written == {s: tmp_path / s for s in ("audio", "text", "multimodal")}
    for stage, expected in states.items():
        converted = load_file(written[stage] / "model.safetensors")
        assert sorted(converted) == sorted(expected), stage
        moved = [k for k in expected if not torch.equal(converted[k], expected[k])]
        assert not moved, f"{stage}: tensors not where the original had them: {moved[:5]}"
        model = build_from_checkpoint(written[stage], expect_stage=stage)
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_converted_audio_model_runs_the_original_extractor(cfg, originals, tmp_path):
    paths, states = originals
    written = convert_original(paths["audio_arousal.pt"], None, None, tmp_path, cfg)
    model = build_from_checkpoint(written["audio"], expect_stage="audio")
    gen = torch.Generator().manual_seed(3)
    feats = -80 * torch.rand(2, 2, cfg.features.max_frames, cfg.features.n_mels, generator=gen)
    with torch.no_grad():
        assert torch.allclose(model.Extractor(feats), original_extractor(states["audio"], feats), atol=1e-5)


def test_conversion_records_heads_kobert_and_provenance(cfg, originals, tmp_path):
    paths, _ = originals
    written = convert_original(paths["audio_arousal.pt"], paths["text_valence.pt"],
                               paths["Multi_Modal_Classifier_ye.pt"], tmp_path, cfg)
    meta = read_meta(written["multimodal"])
    assert meta["num_heads"] == {"multimodal": 2, "audio": 4, "text": 2}
    assert "faithful reuse" in meta["heads_resolution"] and "4 heads of 16 dims" in meta["heads_resolution"]
    assert meta["kobert_tensors_set_aside"] == len(KOBERT_KEYS)
    assert meta["audio_weights_match_audio_file"] is True
    assert meta["source_file"].endswith("Multi_Modal_Classifier_ye.pt") and len(meta["source_sha256"]) == 64
    assert read_meta(written["text"])["kobert_file"] is None
    # KoBERT runs beside the converted text model, not inside its weights.
    from transformers import BertConfig, BertModel
    bert = BertModel(BertConfig(vocab_size=40, hidden_size=cfg.models.d_model, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32))
    with_encoder = build_from_checkpoint(written["text"], encoder=bert)
    plain = build_from_checkpoint(written["text"])
    assert with_encoder.encoder is bert
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in with_encoder.state_dict().items())


def test_consistent_heads_config_keeps_six_of_six_and_says_so(originals, tmp_path):
    paths, _ = originals
    cfg = load_config("tiny", OVERRIDES + ["fixes.consistent_heads=true"])
    written = convert_original(None, None, paths["Multi_Modal_Classifier_ye.pt"], tmp_path, cfg)
    meta = read_meta(written["multimodal"])
    assert meta["num_heads"]["audio"] == 2 and meta["heads_resolution"].startswith("consistent")
    assert "audio_weights_match_audio_file" not in meta


def test_cli_converts_and_keeps_kobert_on_request(originals, tmp_path, capsys):
    paths, _ = originals
    args = ["convert-original", "--text", str(paths["text_valence.pt"]), "--out", str(tmp_path),
            "--config", "tiny", "--keep-kobert"] + [x for o in OVERRIDES for x in ("--set", o)]
    assert main(args) == 0
    assert "text:" in capsys.readouterr().out
    kobert = load_file(tmp_path / "text" / "kobert.safetensors")
    assert sorted(kobert) == sorted(KOBERT_KEYS)
    assert json.loads((tmp_path / "text" / "meta.json").read_text())["kobert_file"] == "kobert.safetensors"


def test_wrapped_state_dicts_are_accepted(originals, tmp_path):
    paths, states = originals
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 4, "model_state_dict": states["audio"]}, wrapped)
    state = read_original_state(wrapped)
    assert state.keys() == states["audio"].keys()


def test_pickled_whole_module_gets_a_resave_recipe(cfg, tmp_path, capsys):
    path = tmp_path / "audio_arousal.pt"
    torch.save(AudioRegressor(cfg.models, cfg.fixes), path)
    with pytest.raises(KoemoInputError, match=r"not a state dict.*torch\.save\(m\.state_dict\(\)"):
        read_original_state(path)
    assert main(["convert-original", "--audio", str(path), "--out", str(tmp_path / "o"),
                 "--config", "tiny"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"definitely not torch", b""])
def test_unreadable_files_are_input_errors(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(KoemoInputError, match="broken.pt: not a"):
        read_original_state(path)
    with pytest.raises(KoemoInputError, match="file not found"):
        read_original_state(tmp_path / "absent.pt")


def test_non_state_dict_content_is_rejected(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "loss": 0.2}, path)
    with pytest.raises(KoemoInputError, match="does not hold a state dict"):
        read_original_state(path)


def test_wrong_config_names_the_mismatch_and_suggests_the_config(originals, tmp_path):
    paths, _ = originals
    deeper = load_config("tiny", OVERRIDES + ["models.audio.n_layers=2"])
    with pytest.raises(CheckpointError, match=r"audio_arousal\.pt: .*missing: AEBlock1\.AE1\.1.*--config"):
        convert_original(paths["audio_arousal.pt"], None, None, tmp_path, deeper)


def test_nothing_to_convert_is_an_input_error(cfg, tmp_path):
    with pytest.raises(KoemoInputError, match="nothing to convert"):
        convert_original(None, None, None, tmp_path, cfg)
