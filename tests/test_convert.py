"""Conversion of the authors' checkpoints. The test writes files the way their code did
(torch.save of state dicts under their key names, KoBERT inside the text files), at the tiny
config, converts them and checks that the converted models compute the same outputs."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from koemo.cli import main
from koemo.config.load import load_config
from koemo.modeling.convert import convert_original, read_original_state
from koemo.errors import CheckpointError, KoemoInputError
from koemo.modeling import AudioRegressor, EmoClassifier, TextRegressor, build_from_checkpoint
from koemo.modeling.checkpoint import read_meta
from koemo.modeling.models import text_input_dim

# Faithful tiny config where the classifier reuses the 2-head audio model with 4 heads,
# like the paper's 6 -> 4.
OVERRIDES = ["models.multimodal.reuse_audio_num_heads=4"]
KOBERT_KEYS = ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight")


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny", OVERRIDES)


def fake_kobert(prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": torch.randn(4, 3) for k in KOBERT_KEYS}


@pytest.fixture(scope="module")
def originals(cfg, tmp_path_factory):
    """The authors' three files, plus the models that wrote them."""
    torch.manual_seed(0)
    audio, text = AudioRegressor(cfg), TextRegressor(cfg)
    clf = EmoClassifier(cfg, AudioRegressor(cfg), TextRegressor(cfg))
    # Their classifier file holds its own (here: the same) copies of both regressors.
    clf.AudioModel.load_state_dict(audio.state_dict())
    clf.TextModel.load_state_dict(text.state_dict())
    folder = tmp_path_factory.mktemp("authors")
    paths = {name: folder / name for name in
             ("audio_arousal.pt", "text_valence.pt", "Multi_Modal_Classifier_ye.pt")}
    torch.save(audio.state_dict(), paths["audio_arousal.pt"])
    torch.save({**text.state_dict(), **fake_kobert("kobert.")}, paths["text_valence.pt"])
    torch.save({**clf.state_dict(), **fake_kobert("TextModel.kobert.")},
               paths["Multi_Modal_Classifier_ye.pt"])
    return paths, {"audio": audio.eval(), "text": text.eval(), "multimodal": clf.eval()}


def inputs(cfg: dict) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    steps, bins, tokens = cfg.features.max_frames, cfg.features.n_mels, cfg.text.max_length
    feats = -80 * torch.rand(2, 2, steps, bins, generator=gen) - 1e-3
    feats[1, :, 30:] = 0
    lengths = torch.tensor([steps, 30])
    states = torch.randn(2, tokens, text_input_dim(cfg), generator=gen)
    mask = (torch.arange(tokens)[None] < torch.tensor([[tokens], [9]])).long()
    return feats, lengths, states, mask


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, call) -> bool:
    """Equal outputs under the same RNG (faithful eval keeps attention dropout on)."""
    results = []
    for model in (a, b):
        torch.manual_seed(7)
        with torch.no_grad():
            results.append(call(model))
    return torch.equal(*results)


def test_converted_checkpoints_reproduce_the_original_models(cfg, originals, tmp_path):
    paths, models = originals
    written = convert_original(paths["audio_arousal.pt"], paths["text_valence.pt"],
                               paths["Multi_Modal_Classifier_ye.pt"], tmp_path, cfg)
    assert written == {s: tmp_path / s for s in ("audio", "text", "multimodal")}
    feats, lengths, states, mask = inputs(cfg)
    converted = {stage: build_from_checkpoint(d, expect_stage=stage) for stage, d in written.items()}
    assert same_outputs(models["audio"], converted["audio"], lambda m: m(feats, lengths)["pred"])
    assert same_outputs(models["text"], converted["text"], lambda m: m(states, mask)["pred"])
    assert same_outputs(models["multimodal"], converted["multimodal"],
                        lambda m: m.forward_raw(feats, lengths, states, mask)["logits"])

    meta = read_meta(written["multimodal"])
    assert meta["num_heads"] == {"multimodal": 2, "audio": 4, "text": 2}
    assert "faithful reuse" in meta["heads_resolution"] and "4 heads of 16 dims" in meta["heads_resolution"]
    assert meta["kobert_tensors_set_aside"] == len(KOBERT_KEYS)
    assert meta["audio_weights_match_audio_file"] is True
    assert meta["source_file"].endswith("Multi_Modal_Classifier_ye.pt") and len(meta["source_sha256"]) == 64
    assert read_meta(written["text"])["kobert_file"] is None
    # KoBERT runs beside the converted text model, not inside its weights.
    from transformers import BertConfig, BertModel
    bert = BertModel(BertConfig(vocab_size=40, hidden_size=text_input_dim(cfg), num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32))
    with_encoder = build_from_checkpoint(written["text"], encoder=bert)
    assert with_encoder.encoder is bert and same_outputs(
        models["text"], with_encoder, lambda m: m(states, mask)["pred"])


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
    paths, models = originals
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 4, "model_state_dict": models["audio"].state_dict()}, wrapped)
    state = read_original_state(wrapped)
    assert state.keys() == models["audio"].state_dict().keys()


def test_pickled_whole_module_gets_a_resave_recipe(cfg, tmp_path, capsys):
    path = tmp_path / "audio_arousal.pt"
    torch.save(AudioRegressor(cfg), path)
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
