"""The three models and the fusion baselines: sizes, names, shapes and each `fixes:` switch.
Paper-size models are only built (parameter counts); every forward runs at the tiny config."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from koemo.config.load import load_config
from koemo.errors import CheckpointError
from koemo.modeling import (FUSION_KINDS, AudioRegressor, EmoClassifier, TextRegressor,
                            build_classifier, trainable_parameters)
from koemo.modeling.fusion import LateFusionClassifier, UnimodalClassifier
from koemo.modeling.models import text_input_dim
from koemo.modeling.layers import (MultiHeadAttention, length_mask, manual_attention,
                                   pick_step, sdpa_attention, set_attention_impl)
from tests.builders import regressors, sections

FIX_NAMES = ("eval_attention_dropout_off", "text_padding_mask", "length_padding_mask",
             "last_valid_step", "consistent_heads")
BATCH, LENGTHS, TEXT_LENGTHS = 3, (64, 40, 10), (5, 20, 32)


@pytest.fixture(autouse=True)
def seeded():
    """Model initialisation draws from the global RNG: same weights in every order of tests."""
    torch.manual_seed(0)


def tiny(*fixes_on: str, **overrides) -> dict:
    items = [f"fixes.{name}={'true' if name in fixes_on else 'false'}" for name in FIX_NAMES]
    items += [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    return load_config("tiny", items)


def audio_batch(cfg: dict, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mel-like features in [-80, 0) dB, zero-padded after each length (as stored)."""
    gen = torch.Generator().manual_seed(seed)
    steps, bins = cfg.features.max_frames, cfg.features.n_mels
    feats = -80 * torch.rand(BATCH, 2, steps, bins, generator=gen) - 1e-3
    lengths = torch.tensor(LENGTHS)
    for i, n in enumerate(LENGTHS):
        feats[i, :, n:] = 0
    return feats, lengths


def text_batch(cfg: dict, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    steps = cfg.text.max_length
    states = torch.randn(BATCH, steps, text_input_dim(cfg.models), generator=gen)
    mask = length_mask(torch.tensor(TEXT_LENGTHS), steps, BATCH).long()
    return states, mask


def layer_keys(prefix: str) -> set[str]:
    keys = {f"{prefix}.MHA.{n}.weight" for n in ("Q_fc", "K_fc", "V_fc", "Out_fc")}
    keys |= {f"{prefix}.{m}.{p}" for m in ("layerNorm1", "layerNorm2", "ffn.fc1", "ffn.fc2")
             for p in ("weight", "bias")}
    return keys


def rnn_keys(prefix: str) -> set[str]:
    return {f"{prefix}.weight_{w}_l{i}" for w in ("ih", "hh") for i in (0, 1)}


def original_audio_keys(n_layers: int) -> set[str]:
    keys = {f"Extractor.conv{i}.weight" for i in range(1, 5)} | rnn_keys("gru") | {"fc.weight", "fc.bias"}
    return keys.union(*(layer_keys(f"AEBlock1.AE1.{i}") for i in range(n_layers)))


def original_text_keys(n_layers: int) -> set[str]:
    keys = rnn_keys("gru") | {"fc.weight", "fc.bias"}
    return keys.union(*(layer_keys(f"TEBlock1.TE1.{i}") for i in range(n_layers)))


def original_classifier_keys(cfg: dict) -> set[str]:
    m = cfg.models
    keys = {f"AudioModel.{k}" for k in original_audio_keys(m.audio.n_layers)}
    keys |= {f"TextModel.{k}" for k in original_text_keys(m.text.n_layers)}
    keys |= rnn_keys("LSTM") | {"fc.weight", "fc.bias"}
    return keys.union(*(layer_keys(f"MBA.MB.{i}") for i in range(m.multimodal.n_layers)))


def test_paper_config_parameter_counts_match_the_paper():
    cfg = load_config("paper")
    audio, text = regressors(cfg)
    assert trainable_parameters(audio) == 27_748_865
    assert trainable_parameters(text) == 19_869_505
    clf = EmoClassifier(*sections(cfg), audio, text)
    assert trainable_parameters(clf) == 28_929_669
    assert (audio.num_heads, clf.audio_num_heads, clf.num_heads) == (6, 4, 6)


def test_state_dict_names_are_the_original_ones():
    cfg = load_config("paper", ["models.audio.n_layers=2", "models.text.n_layers=2",
                                "models.multimodal.n_layers=2"])
    audio, text = regressors(cfg)
    assert set(audio.state_dict()) == original_audio_keys(2)
    assert set(text.state_dict()) == original_text_keys(2)
    clf = EmoClassifier(*sections(cfg), audio, text)
    assert set(clf.state_dict()) == original_classifier_keys(cfg)
    # A state dict saved by the original code (same names) loads strictly into a new model.
    EmoClassifier(*sections(cfg), *regressors(cfg)).load_state_dict(clf.state_dict())


def test_forward_shapes_and_masks():
    cfg = tiny()
    feats, lengths = audio_batch(cfg)
    states, text_mask = text_batch(cfg)
    audio, text = regressors(cfg)
    a, t = audio(feats, lengths), text(states, text_mask)
    steps, d_model = cfg.features.max_frames, cfg.models.d_model
    assert a["pred"].shape == (BATCH,) and a["hidden"].shape == (BATCH, steps, d_model)
    assert a["mask"].dtype == torch.bool and a["mask"].sum(1).tolist() == list(LENGTHS)
    assert t["hidden"].shape == (BATCH, cfg.text.max_length, d_model)
    assert torch.equal(t["mask"], text_mask.bool())
    clf = EmoClassifier(*sections(cfg), audio, text)
    logits = clf(a["hidden"], a["mask"], t["hidden"], t["mask"])["logits"]
    assert logits.shape == (BATCH, len(cfg.data.classes))
    raw = clf.forward_raw(feats, lengths, states, text_mask)
    assert raw["logits"].shape == logits.shape and raw["arousal"].shape == (BATCH,)


def test_text_states_wider_than_d_model_enter_through_a_projection():
    cfg = tiny()                                   # stand-in states 256 wide, d_model 64
    assert text_input_dim(cfg.models) == 256 != cfg.models.d_model
    text = TextRegressor(cfg.models, cfg.fixes)
    assert {"input_proj.weight", "input_proj.bias"} <= set(text.state_dict())
    states, mask = text_batch(cfg)
    assert text(states, mask)["hidden"].shape[-1] == cfg.models.d_model
    with pytest.raises(ValueError, match="width 64 but the text model expects 256"):
        text(torch.randn(BATCH, states.size(1), 64), mask)
    same = tiny(models__text__input_dim="null", text__standin__hidden_size=64)
    assert not any(k.startswith("input_proj") for k in TextRegressor(same.models, same.fixes).state_dict())


def test_a_standin_width_other_than_the_text_input_is_a_config_error():
    from koemo.config.load import ConfigError

    with pytest.raises(ConfigError, match="text.standin.hidden_size=128"):
        tiny(text__standin__hidden_size=128)


def test_faithful_audio_mask_is_the_nonzero_mel_rule():
    cfg = tiny()
    feats, lengths = audio_batch(cfg)
    feats[0, 0, 3, 7] = 0.0  # a 0 dB bin inside a real frame: the original masks that frame
    mask = AudioRegressor(cfg.models, cfg.fixes)(feats, lengths)["mask"]
    assert not mask[0, 3] and mask[0, 2] and mask[0, 4]
    assert mask.sum(1).tolist() == [LENGTHS[0] - 1, LENGTHS[1], LENGTHS[2]]


def test_sdpa_and_manual_attention_agree_including_fully_masked_rows():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, 7, 8, generator=gen, requires_grad=True) for _ in range(3))
    key_mask = length_mask(torch.tensor([7, 3, 0]), 7, 3)  # last sample: no valid key
    expected = manual_attention(q, k, v, key_mask, 0.0)
    got = sdpa_attention(q, k, v, key_mask, 0.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[2], v[2].mean(dim=1, keepdim=True).expand_as(got[2]))
    grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    for g_sdpa, g_manual in zip(torch.autograd.grad(got.square().sum(), (q, k, v)), grads):
        torch.testing.assert_close(g_sdpa, g_manual, atol=1e-5, rtol=1e-4)


def test_models_give_the_same_outputs_with_sdpa_and_manual_attention():
    cfg = tiny("eval_attention_dropout_off")
    feats, lengths = audio_batch(cfg)
    states, text_mask = text_batch(cfg)
    clf = EmoClassifier(*sections(cfg), *regressors(cfg)).eval()
    with torch.no_grad():
        fast = clf.forward_raw(feats, lengths, states, text_mask)
        slow = set_attention_impl(clf, "manual").forward_raw(feats, lengths, states, text_mask)
    for key in ("logits", "arousal", "valence"):
        torch.testing.assert_close(fast[key], slow[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fixed", [False, True])
def test_eval_outputs_are_deterministic_only_with_attention_dropout_fix(fixed):
    cfg = tiny(*(["eval_attention_dropout_off"] if fixed else []))
    feats, lengths = audio_batch(cfg)
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        first, second = model(feats, lengths)["pred"], model(feats, lengths)["pred"]
    assert torch.equal(first, second) == fixed
    model.train()  # in training the attention dropout is on either way
    assert not torch.equal(model(feats, lengths)["pred"], model(feats, lengths)["pred"])


@pytest.mark.parametrize("fixed", [False, True])
def test_text_padding_content_reaches_valid_tokens_only_without_the_mask_fix(fixed):
    cfg = tiny("eval_attention_dropout_off", *(["text_padding_mask"] if fixed else []))
    states, mask = text_batch(cfg)
    other = states.clone()
    other[~mask.bool()] = torch.randn(int((~mask.bool()).sum()), states.size(-1))
    model = TextRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        a, b = model(states, mask)["hidden"], model(other, mask)["hidden"]
    valid = mask.bool()
    assert torch.allclose(a[valid], b[valid], atol=1e-6) == fixed


@pytest.mark.parametrize("fixed", [False, True])
def test_audio_padding_content_reaches_valid_frames_only_without_the_length_fix(fixed):
    cfg = tiny("eval_attention_dropout_off", *(["length_padding_mask"] if fixed else []))
    feats, lengths = audio_batch(cfg)
    floored = feats.clone()
    for i, n in enumerate(LENGTHS):
        floored[i, 0, n:] = -80.0  # padding at the dB floor instead of 0: no longer "all zero"
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        a, b = model(feats, lengths), model(floored, lengths)
    valid = length_mask(lengths, feats.size(2), BATCH)
    assert torch.allclose(a["hidden"][valid], b["hidden"][valid], atol=1e-6) == fixed
    assert torch.equal(b["mask"], valid) == fixed


def test_pick_step_reads_the_last_or_the_last_valid_step():
    outputs = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert pick_step(outputs, mask, last_valid=False).flatten().tolist() == [3.0, 7.0]
    assert pick_step(outputs, mask, last_valid=True).flatten().tolist() == [1.0, 7.0]


@pytest.mark.parametrize("fixed", [False, True])
def test_predictions_ignore_trailing_padding_only_with_last_valid_step(fixed):
    fixes = ["eval_attention_dropout_off", "text_padding_mask", "length_padding_mask"]
    cfg = tiny(*fixes, *(["last_valid_step"] if fixed else []))
    torch.manual_seed(0)
    states, mask = text_batch(cfg)
    other = states.clone()
    padding = ~mask.bool()
    other[padding] = torch.randn(int(padding.sum()), states.size(-1))
    text = TextRegressor(cfg.models, cfg.fixes).eval()
    feats, lengths = audio_batch(cfg)
    shifted = feats.clone()
    for i, n in enumerate(LENGTHS):
        shifted[i, :, n:] = -80 * torch.rand_like(shifted[i, :, n:]) - 1e-3
    audio = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        same_text = torch.allclose(text(states, mask)["pred"], text(other, mask)["pred"], atol=1e-6)
        same_audio = torch.allclose(audio(feats, lengths)["pred"], audio(shifted, lengths)["pred"],
                                    atol=1e-6)
    assert same_text == fixed and same_audio == fixed


def test_faithful_classifier_reuses_the_audio_weights_with_fewer_heads():
    cfg = tiny("eval_attention_dropout_off", models__multimodal__reuse_audio_num_heads=4)
    audio = AudioRegressor(cfg.models, cfg.fixes)
    clf = EmoClassifier(*sections(cfg), audio, TextRegressor(cfg.models, cfg.fixes))
    assert (audio.num_heads, clf.audio_num_heads) == (2, 4)
    reused = clf.AudioModel.state_dict()
    assert all(torch.equal(v, reused[k]) for k, v in audio.state_dict().items())
    feats, lengths = audio_batch(cfg)
    audio.eval(), clf.eval()
    with torch.no_grad():  # same weights, different head split: different features
        assert not torch.allclose(audio(feats, lengths)["hidden"], clf.AudioModel(feats, lengths)["hidden"])


def test_consistent_heads_refuses_a_head_count_change():
    cfg = tiny("consistent_heads")
    mismatched = AudioRegressor(cfg.models, cfg.fixes, num_heads=4)
    with pytest.raises(CheckpointError, match="4 attention heads.*asks for 2"):
        EmoClassifier(*sections(cfg), mismatched, TextRegressor(cfg.models, cfg.fixes))
    assert EmoClassifier(*sections(cfg), *regressors(cfg)).audio_num_heads == 2
    # with the fix the faithful reuse count (4) is never read: the regressor keeps its 2 heads
    cfg = tiny("consistent_heads", models__multimodal__reuse_audio_num_heads=4)
    assert EmoClassifier(*sections(cfg), *regressors(cfg)).audio_num_heads == 2


def test_num_heads_must_divide_d_model():
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(64, 5)


def cached_batch(cfg: dict, n: int = 10, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    d, steps, tokens = cfg.models.d_model, cfg.features.max_frames, cfg.text.max_length
    audio = torch.randn(n, steps, d, generator=gen)
    text = torch.randn(n, tokens, d, generator=gen)
    audio_mask = length_mask(torch.randint(5, steps + 1, (n,), generator=gen), steps, n)
    text_mask = length_mask(torch.randint(3, tokens + 1, (n,), generator=gen), tokens, n)
    labels = torch.arange(n) % len(cfg.data.classes)
    return audio, audio_mask, text, text_mask, labels


def test_tiny_classifier_overfits_one_batch():
    torch.manual_seed(0)
    cfg = tiny(*FIX_NAMES)
    clf = EmoClassifier(*sections(cfg), *regressors(cfg))
    *inputs, labels = cached_batch(cfg)
    params = [p for p in clf.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(clf(*inputs)["logits"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    clf.eval()
    with torch.no_grad():
        accuracy = (clf(*inputs)["logits"].argmax(1) == labels).float().mean().item()
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy == 1.0


@pytest.mark.parametrize("kind", FUSION_KINDS)
def test_every_fusion_kind_trains_on_cached_states_and_leaves_regressors_frozen(kind):
    torch.manual_seed(0)
    cfg = tiny(*FIX_NAMES)
    clf = build_classifier(kind, *sections(cfg), *regressors(cfg))
    *inputs, labels = cached_batch(cfg, n=4)
    logits = clf(*inputs)["logits"]
    assert logits.shape == (4, len(cfg.data.classes))
    torch.nn.functional.cross_entropy(logits, labels).backward()
    trainable = [p for p in clf.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    assert all(p.grad is None for p in clf.AudioModel.parameters())
    feats, lengths = audio_batch(cfg)
    states, text_mask = text_batch(cfg)
    assert clf.forward_raw(feats, lengths, states, text_mask)["logits"].shape == (BATCH, 5)


def test_unimodal_classifier_reads_only_its_modality():
    cfg = tiny(*FIX_NAMES)
    clf = build_classifier("audio_only", *sections(cfg)).eval()
    audio, audio_mask, text, text_mask, _ = cached_batch(cfg, n=3)
    with torch.no_grad():
        a = clf(audio, audio_mask, text, text_mask)["logits"]
        b = clf(audio, audio_mask, torch.randn_like(text), text_mask)["logits"]
    assert torch.equal(a, b)


def test_late_fusion_averages_the_unimodal_probabilities():
    cfg = tiny(*FIX_NAMES)
    audio_clf = UnimodalClassifier(*sections(cfg), "audio").eval()
    text_clf = UnimodalClassifier(*sections(cfg), "text").eval()
    late = LateFusionClassifier.from_unimodal(*sections(cfg), audio_clf, text_clf).eval()
    inputs = cached_batch(cfg, n=3)[:4]
    with torch.no_grad():
        expected = (audio_clf(*inputs)["logits"].softmax(-1) + text_clf(*inputs)["logits"].softmax(-1)) / 2
        got = late(*inputs)["logits"].exp()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(-1), torch.ones(3))


def test_sum_fusion_projects_each_modality_before_adding():
    cfg = tiny(*FIX_NAMES)
    clf = build_classifier("sum", *sections(cfg)).eval()
    audio, audio_mask, text, text_mask, _ = cached_batch(cfg, n=3)
    pooled_audio = (audio * audio_mask[..., None]).sum(1) / audio_mask.sum(1, keepdim=True)
    pooled_text = (text * text_mask[..., None]).sum(1) / text_mask.sum(1, keepdim=True)
    with torch.no_grad():
        got = clf(audio, audio_mask, text, text_mask)["logits"]
        expected = clf.mlp(torch.relu(clf.audio_proj[0](pooled_audio))
                           + torch.relu(clf.text_proj[0](pooled_text)))
        # Swapping the modalities changes the result: the two projections are not shared.
        swapped = clf(text, text_mask, audio, audio_mask)["logits"]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, swapped)


def test_unknown_fusion_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion kind"):
        cfg = tiny()
        build_classifier("mystery", *sections(cfg))


def test_attention_benchmark_runs_at_tiny_size():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_attention.py"
    spec = importlib.util.spec_from_file_location("bench_attention", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.run("tiny")
    assert rows and all(r["baseline_s"] > 0 and r["candidate_s"] > 0 for r in rows)
    assert all(r["max_abs_diff"] < 1e-4 for r in rows)


def tiny_bert(hidden_size: int, return_dict: bool = True):
    """A random transformers BertModel small enough to build in milliseconds (offline)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    return BertModel(BertConfig(vocab_size=40, hidden_size=hidden_size, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, pad_token_id=1,
                                return_dict=return_dict))


def token_batch(cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    steps = cfg.text.max_length
    ids = torch.ones(BATCH, steps, dtype=torch.long)
    for i, n in enumerate(TEXT_LENGTHS):
        ids[i, :n] = torch.arange(n) % 30 + 5
        ids[i, 0], ids[i, n - 1] = 2, 3
    return ids, (ids != 1).long()


def test_a_passed_encoder_is_frozen_and_outside_parameters_and_state_dict():
    cfg = tiny()
    bert = tiny_bert(text_input_dim(cfg.models)).train()
    plain, with_encoder = TextRegressor(cfg.models, cfg.fixes), TextRegressor(cfg.models, cfg.fixes, encoder=bert)
    assert with_encoder.encoder is bert
    assert set(with_encoder.state_dict()) == set(plain.state_dict())
    assert ([n for n, _ in with_encoder.named_parameters()]
            == [n for n, _ in plain.named_parameters()])
    assert not bert.training and not any(p.requires_grad for p in bert.parameters())
    # A state dict without KoBERT's keys (the authors' file once `kobert.*` is set aside) loads strictly.
    with_encoder.load_state_dict(plain.state_dict(), strict=True)
    # Training the text model leaves KoBERT untouched: no gradient, still in eval mode.
    with_encoder.train()
    ids, mask = token_batch(cfg)
    with_encoder.forward_tokens(ids, mask)["pred"].sum().backward()
    assert all(p.grad is None for p in bert.parameters())
    assert all(p.grad is not None for p in with_encoder.parameters())
    assert not bert.training
    # Assigning an encoder later follows the same rule.
    plain.encoder = tiny_bert(text_input_dim(cfg.models))
    assert set(plain.state_dict()) == set(with_encoder.state_dict())


def test_classifier_over_a_text_model_with_encoder_has_the_original_keys():
    cfg = tiny()
    text = TextRegressor(cfg.models, cfg.fixes, encoder=tiny_bert(text_input_dim(cfg.models)))
    clf = EmoClassifier(*sections(cfg), AudioRegressor(cfg.models, cfg.fixes), text)
    plain = EmoClassifier(*sections(cfg), *regressors(cfg))
    assert set(clf.state_dict()) == set(plain.state_dict())
    assert trainable_parameters(clf) == trainable_parameters(plain)
    clf.load_state_dict(plain.state_dict(), strict=True)


@pytest.mark.parametrize("return_dict", [True, False])
def test_encode_reads_the_states_of_a_model_output_or_a_tuple(return_dict):
    """SKT's loader builds KoBERT with return_dict=False: the model then returns a tuple."""
    cfg = tiny("eval_attention_dropout_off")   # deterministic eval, to compare two runs
    bert = tiny_bert(text_input_dim(cfg.models), return_dict=return_dict)
    text = TextRegressor(cfg.models, cfg.fixes, encoder=bert).eval()   # also puts KoBERT in eval mode
    ids, mask = token_batch(cfg)
    with torch.no_grad():
        out = bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert isinstance(out, tuple) != return_dict
    expected = out[0] if isinstance(out, tuple) else out.last_hidden_state
    states = text.encode(ids, mask)
    assert states.shape == (BATCH, cfg.text.max_length, text_input_dim(cfg.models))
    assert torch.equal(states, expected)
    assert torch.equal(text.forward_tokens(ids, mask)["pred"], text(expected, mask)["pred"])


# --- survivors of mutation testing (benchmarks/results/2026-12-03-mutation.md) -----------------
# Each test names the koemo.modeling.models mutants (mutmut ids) it kills.

def floor_padded(feats: torch.Tensor, lengths) -> torch.Tensor:
    """Padding at a non-zero dB value: the faithful masks then see it as frames."""
    out = feats.clone()
    for i, n in enumerate(lengths):
        out[i, :, n:] = -80 * torch.rand_like(out[i, :, n:]) - 1e-3
    return out


def last_valid_pred(model: AudioRegressor, out: dict, lengths) -> torch.Tensor:
    """What last_valid_step promises: the GRU output at each utterance's last frame."""
    outputs, _ = model.gru(out["hidden"])
    steps = torch.as_tensor(lengths) - 1
    return model.fc(outputs[torch.arange(outputs.size(0)), steps]).squeeze(-1)


def test_last_valid_step_reads_the_lengths_even_under_the_faithful_masks():
    """AudioRegressor.forward 20/21/22 (which mask picks the step) and 27/28 (length_mask's
    arguments): with the faithful nonzero-frame masks, floor-valued padding counts as frames
    for the layers, but the step read is still the last frame within `lengths`; without
    lengths, zero padding ends the utterance where its frames stop."""
    cfg = tiny("eval_attention_dropout_off", "last_valid_step")
    feats, lengths = audio_batch(cfg)
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        floored = floor_padded(feats, LENGTHS)
        out = model(floored, lengths)
        torch.testing.assert_close(out["pred"], last_valid_pred(model, out, LENGTHS))
        out = model(feats)                       # zero padding, no lengths: the nonzero rule
        torch.testing.assert_close(out["pred"], last_valid_pred(model, out, LENGTHS))
        assert not torch.allclose(out["pred"], model.fc(model.gru(out["hidden"])[0][:, -1]).squeeze(-1))


def test_length_masks_have_the_frames_shape_when_frames_differ_from_d_model():
    """AudioRegressor.masks 19 and forward 32 (`size(1)` -> `size(2)`: d_model for the frame
    count): 80 frames against d_model 64, an utterance using all 80."""
    cfg = tiny("eval_attention_dropout_off", "length_padding_mask", "last_valid_step",
               features__max_frames=80)
    assert cfg.models.d_model == 64
    feats, _ = audio_batch(cfg)
    feats[0] = -80 * torch.rand_like(feats[0]) - 1e-3     # first utterance: all 80 frames
    lengths = (80, 40, 10)
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        out = model(feats, torch.tensor(lengths))
        assert torch.equal(out["mask"], length_mask(torch.tensor(lengths), 80, BATCH))
        torch.testing.assert_close(out["pred"], last_valid_pred(model, out, lengths))


def test_length_padding_mask_without_lengths_means_every_frame_is_valid():
    """AudioRegressor.masks 12/16/20/21 (length_mask's batch size: None, the device, or the
    frame count): the fixed mask of a batch without lengths is all True, [B, T]."""
    cfg = tiny("eval_attention_dropout_off", "length_padding_mask")
    feats, _ = audio_batch(cfg)
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        mask = model(feats)["mask"]
    assert mask.shape == (BATCH, cfg.features.max_frames) and bool(mask.all())


def test_faithful_layer_mask_drops_the_all_zero_extractor_frames():
    """AudioRegressor.masks 24/25/26 (`extracted != 0` -> `!= 1`, `all(dim=-1)` -> dim +1 or
    -2): zero padding gives all-zero extractor output, which the layers' mask leaves out."""
    cfg = tiny()
    feats, lengths = audio_batch(cfg)
    model = AudioRegressor(cfg.models, cfg.fixes)
    layer_mask, out_mask = model.masks(feats, model.Extractor(feats), lengths)
    assert torch.equal(layer_mask, length_mask(lengths, cfg.features.max_frames, BATCH))
    assert torch.equal(out_mask, layer_mask)


def test_encoder_frontend_masks_by_lengths():
    """AudioRegressor.masks 8 (`lengths is not None` -> `is None`): cached speech-encoder states
    are padded with whatever the encoder gives, so with lengths the mask follows them, even
    with fixes.length_padding_mask off; without lengths every frame is valid."""
    cfg = load_config("tiny_ssl", ["fixes.length_padding_mask=false"])
    model = AudioRegressor(cfg.models, cfg.fixes)
    assert model.frontend == "encoder"
    enc = cfg.models.audio.encoder      # AudioRegressor.__init__ 14-20: the extractor's settings
    assert (model.Extractor.n_layers, model.Extractor.pooling) == (len(enc.layers), enc.pooling)
    assert model.Extractor.layer_weights.shape == (len(enc.layers),)
    assert model.Extractor.proj.weight.shape == (cfg.models.d_model, enc.input_dim)
    mean_cfg = load_config("tiny_ssl", ["models.audio.encoder.pooling=mean"])
    mean = AudioRegressor(mean_cfg.models, mean_cfg.fixes)
    assert mean.Extractor.pooling == "mean" and not hasattr(mean.Extractor, "layer_weights")
    n_layers, width = model.Extractor.n_layers, cfg.models.audio.encoder.input_dim
    states = torch.randn(BATCH, n_layers, 64, width)            # non-zero at every frame
    lengths = torch.tensor(LENGTHS)
    extracted = model.Extractor(states)
    layer_mask, out_mask = model.masks(states, extracted, lengths)
    assert torch.equal(layer_mask, length_mask(lengths, 64, BATCH)) and torch.equal(out_mask, layer_mask)
    states[:, :, 50:] = 0
    layer_mask, _ = model.masks(states, model.Extractor(states), None)
    assert bool(layer_mask[:, :50].all())


def test_models_compute_in_their_own_dtype_whatever_the_input_dtype():
    """AudioRegressor.forward 2, TextRegressor.forward 12 (`.to(weight dtype)` -> `.to(None)`):
    the feature store holds float16; a float32 model takes it (or float64) as float32."""
    cfg = tiny("eval_attention_dropout_off")
    feats, lengths = audio_batch(cfg)
    feats = feats.half()
    states, mask = text_batch(cfg)
    audio, text = AudioRegressor(cfg.models, cfg.fixes).eval(), TextRegressor(cfg.models, cfg.fixes).eval()
    with torch.no_grad():
        assert torch.equal(audio(feats, lengths)["pred"], audio(feats.float(), lengths)["pred"])
        assert torch.equal(text(states.double(), mask)["pred"], text(states, mask)["pred"])


def test_faithful_text_mask_leaves_out_all_zero_states():
    """TextRegressor.forward 20/21 (`states != 0` -> `== 0` or `!= 1`): the original layer mask
    is "states not all zero"; with zeroed padding it equals the attention mask, so the faithful
    and the fixed model agree on the valid tokens."""
    faithful_cfg = tiny("eval_attention_dropout_off")
    fixed_cfg = tiny("eval_attention_dropout_off", "text_padding_mask")
    states, mask = text_batch(faithful_cfg)
    states[~mask.bool()] = 0
    torch.manual_seed(3)
    faithful = TextRegressor(faithful_cfg.models, faithful_cfg.fixes).eval()
    torch.manual_seed(3)
    fixed = TextRegressor(fixed_cfg.models, fixed_cfg.fixes).eval()
    valid = mask.bool()
    with torch.no_grad():
        a, b = faithful(states, mask)["hidden"], fixed(states, mask)["hidden"]
    torch.testing.assert_close(a[valid], b[valid])


def test_forward_raw_passes_the_lengths_to_the_audio_regressor():
    """FrozenRegressors.forward_raw 3 (lengths -> None): with fixes.length_padding_mask the
    audio mask comes from the lengths, so floor-valued padding stays out of the logits."""
    cfg = tiny("eval_attention_dropout_off", "length_padding_mask", "text_padding_mask")
    feats, lengths = audio_batch(cfg)
    feats = floor_padded(feats, LENGTHS)
    states, mask = text_batch(cfg)
    audio, text = regressors(cfg)
    clf = EmoClassifier(*sections(cfg), audio, text).eval()
    with torch.no_grad():
        a, t = clf.AudioModel(feats, lengths), clf.TextModel(states, mask)
        expected = clf(a["hidden"], a["mask"], t["hidden"], t["mask"])["logits"]
        raw = clf.forward_raw(feats, lengths, states, mask)
    torch.testing.assert_close(raw["logits"], expected)
    torch.testing.assert_close(raw["arousal"], a["pred"])


def test_forward_tokens_passes_the_token_type_ids_on():
    """TextRegressor.forward_tokens 7/10 (token_type_ids dropped: zeros instead)."""
    cfg = tiny("eval_attention_dropout_off")
    bert = tiny_bert(text_input_dim(cfg.models))
    text = TextRegressor(cfg.models, cfg.fixes, encoder=bert).eval()
    ids, mask = token_batch(cfg)
    types = torch.ones_like(ids)
    with torch.no_grad():
        states = bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = text.forward_tokens(ids, mask, types)["pred"]
        assert torch.equal(got, text(states, mask)["pred"])
        assert not torch.equal(got, text.forward_tokens(ids, mask)["pred"])


def test_text_prediction_is_one_value_per_utterance():
    """TextRegressor.forward 48 (`squeeze(-1)` -> `squeeze(-2)`): a [B, 1] prediction would
    broadcast against [B] targets in the loss ([B, B]) instead of failing."""
    cfg = tiny()
    states, mask = text_batch(cfg)
    assert TextRegressor(cfg.models, cfg.fixes)(states, mask)["pred"].shape == (BATCH,)
    one = TextRegressor(cfg.models, cfg.fixes)(states[:1], mask[:1])["pred"]
    assert one.shape == (1,)


def test_classifier_computes_in_its_own_dtype():
    """AttentionLSTMHead.classify 6 (`x.to(weight dtype)` -> `x.to(None)`): cached hidden states
    stored in another precision are scored as float32."""
    cfg = tiny("eval_attention_dropout_off")
    clf = EmoClassifier(*sections(cfg), *regressors(cfg)).eval()
    audio, audio_mask, text, text_mask, _ = cached_batch(cfg, n=4)
    with torch.no_grad():
        expected = clf(audio, audio_mask, text, text_mask)["logits"]
        torch.testing.assert_close(clf(audio.double(), audio_mask, text.double(), text_mask)["logits"],
                                   expected)


def test_one_regressor_without_the_other_is_refused_with_a_reason():
    """FrozenRegressors.attach_regressors 4/5/6 (the message: None, or changed)."""
    cfg = tiny()
    with pytest.raises(ValueError, match="pass both regressors or neither"):
        EmoClassifier(*sections(cfg), AudioRegressor(cfg.models, cfg.fixes), None)


def test_audio_extractor_halves_the_frequency_axis_twice():
    """AudioExtractor.__init__ 21 (conv1 padding (0, 1) -> (0, 2)): F -> F/2 -> F/2 -> F/4 ->
    F/4, as the authors' layers; a wider padding gives F/2 + 1 bins after conv1 (and still F/4
    at the end for F = 32 or 128, so only the stages show it)."""
    from koemo.modeling.models import AudioExtractor

    for bins in (32, 128):
        ext = AudioExtractor((4, 8))
        x = torch.randn(2, 2, 5, bins)
        sizes = []
        for conv in (ext.conv1, ext.conv2, ext.conv3, ext.conv4):
            x = conv(x)
            sizes.append(x.shape[-1])
        assert sizes == [bins // 2, bins // 2, bins // 4, bins // 4]
        assert ext(torch.randn(2, 2, 5, bins)).shape == (2, 5, 8 * bins // 4)


def test_a_null_frontend_is_the_papers_mel_frontend():
    """AudioRegressor.__init__ 6/7/8 (`frontend or "mel"` -> `and`, or another name): the
    schema allows `frontend: null`, which means the mel extractor."""
    cfg = tiny(models__audio__frontend="null")
    model = AudioRegressor(cfg.models, cfg.fixes)
    assert model.frontend == "mel" and type(model.Extractor).__name__ == "AudioExtractor"


def test_dropout_heads_and_attention_kind_reach_every_layer():
    """_stack 16 (the stage's dropout dropped: the layers' default 0.1), 18 (attention_impl
    dropped: always sdpa), _recurrent 12 (the GRU/LSTM dropout dropped: 0), TextRegressor.
    __init__ 19/24 (num_heads dropped)."""
    cfg = tiny(models__audio__dropout=0.3, models__text__dropout=0.2, models__multimodal__dropout=0.4)
    audio = AudioRegressor(cfg.models, cfg.fixes, attention_impl="manual")
    text = TextRegressor(cfg.models, cfg.fixes, attention_impl="manual", num_heads=4)
    clf = EmoClassifier(*sections(cfg), audio, text, attention_impl="manual")
    for model, rnn, p in ((audio, audio.gru, 0.3), (text, text.gru, 0.2), (clf, clf.LSTM, 0.4)):
        assert rnn.dropout == p
        stack = model.MBA if model is clf else model.AEBlock1 if model is audio else model.TEBlock1
        assert {m.attention_dropout for m in stack.modules() if hasattr(m, "attention_dropout")} == {p}
        assert {m.p for m in stack.modules() if isinstance(m, torch.nn.Dropout)} == {p}
        assert {m.attention_impl for m in stack.modules() if hasattr(m, "attention_impl")} == {"manual"}
    assert text.num_heads == 4 and audio.num_heads == cfg.models.audio.num_heads
