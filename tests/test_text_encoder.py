"""Stand-in build, frozen encoder loading, the on-disk state cache and the two text commands,
on a tiny stand-in (vocab ~300, hidden 32) built once for this module."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from koemo.errors import KoemoInputError
from tests.deadline import HANG_S, within_deadline
from koemo.text import (KoBERTTokenizer, TextStateCache, build_standin, load_kobert, random_delete,
                        random_swap, resolve_text_source)
from koemo.text.standin import STANDIN_DIRNAME
from test_tokenizer import KOREAN_SENTENCES

SIZES = {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
         "intermediate_size": 64}


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    return build_standin(KOREAN_SENTENCES, tmp_path_factory.mktemp("standin") / "kobert", seed=0, **SIZES)


@pytest.fixture(scope="session")
def tokenizer(standin):
    return KoBERTTokenizer.from_pretrained(standin)


@pytest.fixture(scope="session")
def encoder(standin):
    return load_kobert(standin)


def reference_states(encoder, input_ids, attention_mask=None):
    import torch

    ids = torch.as_tensor(input_ids)
    mask = (ids != 1).long() if attention_mask is None else torch.as_tensor(attention_mask)
    with torch.no_grad():
        return encoder(input_ids=ids, attention_mask=mask,
                       token_type_ids=torch.zeros_like(ids)).last_hidden_state.numpy()


def test_standin_has_kobert_layout_and_is_frozen(standin, tokenizer, encoder):
    from transformers import BertModel

    assert {"spiece.model", "config.json", "model.safetensors", "standin.json"} <= {
        p.name for p in standin.iterdir()}
    assert isinstance(encoder, BertModel)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert encoder.config.pad_token_id == 1 and encoder.config.hidden_size == 32
    assert encoder.config.vocab_size == tokenizer.vocab_size <= SIZES["vocab_size"]
    assert tokenizer.convert_tokens_to_ids(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]


def test_standin_is_deterministic_given_seed(standin, tmp_path):
    again = build_standin(KOREAN_SENTENCES, tmp_path / "again", seed=0, **SIZES)
    other = build_standin(KOREAN_SENTENCES, tmp_path / "other", seed=1, **SIZES)
    assert (again / "spiece.model").read_bytes() == (standin / "spiece.model").read_bytes()
    first, second, third = (load_kobert(d).state_dict() for d in (standin, again, other))
    assert all(np.array_equal(first[k].numpy(), second[k].numpy()) for k in first)
    assert not np.array_equal(first["embeddings.word_embeddings.weight"].numpy(),
                              third["embeddings.word_embeddings.weight"].numpy())


def test_standin_rejects_no_text_and_bad_head_count(tmp_path):
    with pytest.raises(KoemoInputError, match="no non-empty transcript"):
        build_standin(["", "   "], tmp_path / "x", **SIZES)
    with pytest.raises(KoemoInputError, match="not divisible"):
        build_standin(KOREAN_SENTENCES, tmp_path / "y", **dict(SIZES, num_heads=5))


def test_encoder_directory_without_weights_or_config_is_a_clear_error(standin, tmp_path):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(standin / "config.json", no_weights)
    with pytest.raises(KoemoInputError, match=rf"{no_weights}.*without model.safetensors"):
        load_kobert(no_weights)
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    shutil.copy(standin / "model.safetensors", no_config)
    with pytest.raises(KoemoInputError, match="without config.json"):
        load_kobert(no_config)


def test_hub_id_while_offline_is_a_fast_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KoemoInputError, match="hub is not reachable.*local_dir"):
        within_deadline(HANG_S, "load_kobert of a hub id while offline", load_kobert,
                        "skt/kobert-base-v1")


def test_cache_computes_once_then_hits(standin, tokenizer, encoder, tmp_path):
    batch = tokenizer.batch_encode(KOREAN_SENTENCES[:6] + KOREAN_SENTENCES[:2], max_length=16)
    cache = TextStateCache(tmp_path, encoder, tokenizer, encoder_id=str(standin))
    first = cache.ensure(batch["input_ids"], batch["attention_mask"], batch_size=4, progress=False)
    assert first == {"hits": 0, "misses": 8, "computed": 6}     # duplicates computed once
    states = cache.get_many(batch["input_ids"])
    assert states.dtype == np.float16 and states.shape == (8, 16, 32)
    np.testing.assert_allclose(states.astype(np.float32), reference_states(encoder, batch["input_ids"]),
                               atol=2e-2, rtol=1e-2)
    assert np.abs(states[0][batch["attention_mask"][0] == 0]).sum() > 0   # pad positions kept
    assert np.array_equal(cache.get(batch["input_ids"][3]), states[3])

    reopened = TextStateCache(tmp_path, encoder, tokenizer, encoder_id=str(standin))
    assert reopened.directory == cache.directory and len(reopened) == 6
    second = reopened.ensure(batch["input_ids"], progress=False)
    assert second == {"hits": 8, "misses": 0, "computed": 0}
    assert reopened.stats["hits"] == 8 and reopened.stats["misses"] == 0
    assert np.array_equal(reopened.get_many(batch["input_ids"]), states)
    meta = json.loads((cache.directory / "meta.json").read_text(encoding="utf-8"))
    assert meta["encoder_id"] == str(standin) and meta["dtype"] == "float16"


def test_a_new_max_length_misses_the_cache_and_gets_states_of_its_own_shape(tokenizer, encoder,
                                                                           tmp_path):
    """`text.max_length` changes the padded sequence the encoder reads (and so every state):
    states cached at one maximum are never served at another."""
    texts = [t for t in KOREAN_SENTENCES if len(tokenizer.tokenize(t)) <= 12][:4]
    assert len(texts) == 4                         # short enough: neither maximum truncates
    cache = TextStateCache(tmp_path, encoder, tokenizer)
    short = tokenizer.batch_encode(texts, max_length=16)["input_ids"]
    cache.ensure(short, progress=False)
    longer = tokenizer.batch_encode(texts, max_length=24)["input_ids"]
    assert cache.ensure(longer, progress=False) == {"hits": 0, "misses": 4, "computed": 4}
    states = cache.get_many(longer)
    assert states.shape == (4, 24, 32)
    np.testing.assert_allclose(states.astype(np.float32), reference_states(encoder, longer),
                               atol=2e-2, rtol=1e-2)
    assert cache.get_many(short).shape == (4, 16, 32)   # the first maximum's states stay


def test_two_cache_handles_on_one_directory_keep_each_others_rows(standin, tokenizer, encoder, tmp_path):
    """Parallel runs open the same cache: a writer must merge, not overwrite, the index."""
    batch = tokenizer.batch_encode(KOREAN_SENTENCES[:6], max_length=16)
    ids = np.asarray(batch["input_ids"])
    first = TextStateCache(tmp_path, encoder, tokenizer, encoder_id=str(standin))
    second = TextStateCache(tmp_path, encoder, tokenizer, encoder_id=str(standin))
    first.ensure(ids[:3], progress=False)
    call = second.ensure(ids, progress=False)      # opened before `first` wrote anything
    assert call["computed"] == 3                   # the rows `first` stored are not redone
    reopened = TextStateCache(tmp_path, encoder, tokenizer, encoder_id=str(standin))
    assert len(reopened) == 6
    assert len({p.name for p in reopened.directory.glob("states-*.npy")}) == 2
    np.testing.assert_array_equal(reopened.get_many(ids), second.get_many(ids))


def test_cache_shards_grow_and_augmented_pieces_get_their_own_entries(tokenizer, encoder, tmp_path):
    pieces = [tokenizer.tokenize(t) for t in KOREAN_SENTENCES[:5]]
    augmented = ([random_swap(p, 0.3, np.random.default_rng(824)) for p in pieces]
                 + [random_delete(p, 0.3, np.random.default_rng(824)) for p in pieces])
    cache = TextStateCache(tmp_path, encoder, tokenizer, shard_rows=3)
    original = tokenizer.batch_encode(pieces, 16)["input_ids"]
    cache.ensure(original, progress=False)
    more = tokenizer.batch_encode(augmented, 16)["input_ids"]
    call = cache.ensure(np.concatenate([original, more]), progress=False)
    assert call["hits"] == 5 and call["computed"] == len({r.tobytes() for r in more})
    assert len(list(cache.directory.glob("states-*.npy"))) >= 4
    both = np.concatenate([original, more])
    reopened = TextStateCache(tmp_path, encoder, tokenizer, shard_rows=3)
    np.testing.assert_allclose(reopened.get_many(both).astype(np.float32),
                               reference_states(encoder, both), atol=2e-2, rtol=1e-2)


def test_cache_refuses_unknown_rows_and_foreign_masks(tokenizer, encoder, tmp_path):
    cache = TextStateCache(tmp_path, encoder, tokenizer)
    batch = tokenizer.batch_encode(KOREAN_SENTENCES[:2], 16)
    with pytest.raises(KeyError, match="call ensure"):
        cache.get(batch["input_ids"][0])
    with pytest.raises(ValueError, match="attention_mask"):
        cache.ensure(batch["input_ids"], np.ones_like(batch["input_ids"]), progress=False)


def test_cache_attends_typed_pad_tokens_and_reads_tuple_outputs(standin, tokenizer, tmp_path):
    """A "[PAD]" in the text is attended (as transformers' tokenizer masks it); an encoder built
    with return_dict=False (as SKT's loader builds KoBERT) returns a tuple."""
    encoder = load_kobert(standin)
    encoder.config.return_dict = False
    batch = tokenizer.batch_encode(["[PAD] [PAD]", "오늘 [PAD] 좋네요", KOREAN_SENTENCES[0]], 16)
    assert batch["attention_mask"][0, :4].tolist() == [1, 1, 1, 1]
    cache = TextStateCache(tmp_path, encoder, tokenizer)
    cache.ensure(batch["input_ids"], batch["attention_mask"], progress=False)
    encoder.config.return_dict = True
    expected = reference_states(encoder, batch["input_ids"], batch["attention_mask"])
    # Same batch, same CPU kernels: the stored float16 states are exactly the rounded reference.
    np.testing.assert_array_equal(cache.get_many(batch["input_ids"]), expected.astype(np.float16))
    # Masked by id instead, the typed [PAD] states come out differently (an ordinary text's do not).
    by_id = reference_states(encoder, batch["input_ids"])
    assert np.abs(by_id[0, :4] - expected[0, :4]).max() > 1e-4
    assert np.array_equal(by_id[2], expected[2])
    with pytest.raises(ValueError, match="attention_mask"):
        cache.ensure(batch["input_ids"], (batch["input_ids"] != 1).astype(np.int64), progress=False)


def test_encoder_in_train_mode_is_run_in_eval_and_restored(standin, tokenizer, tmp_path):
    encoder = load_kobert(standin)
    encoder.config.hidden_dropout_prob = 0.5
    encoder.train()
    batch = tokenizer.batch_encode(KOREAN_SENTENCES[:3], 16)
    cache = TextStateCache(tmp_path, encoder, tokenizer)
    cache.ensure(batch["input_ids"], progress=False)
    assert encoder.training
    encoder.eval()
    np.testing.assert_allclose(cache.get_many(batch["input_ids"]).astype(np.float32),
                               reference_states(encoder, batch["input_ids"]), atol=2e-2, rtol=1e-2)


def test_other_encoder_weights_use_another_cache_directory(standin, tokenizer, encoder, tmp_path):
    other = build_standin(KOREAN_SENTENCES, tmp_path / "other", seed=7, **SIZES)
    a = TextStateCache(tmp_path / "w", encoder, tokenizer)
    b = TextStateCache(tmp_path / "w", load_kobert(other), tokenizer)
    assert a.directory != b.directory and a.directory.parent == tmp_path / "w" / "text"


def test_resolve_text_source():
    from koemo.config.load import load_config

    cfg = load_config("tiny", ["text.tokenizer=standin", "text.encoder=standin"])
    assert resolve_text_source(cfg, "/w") == f"/w/{STANDIN_DIRNAME}"
    cfg = load_config("tiny", ["text.tokenizer=skt/kobert-base-v1", "text.encoder=/models/kobert"])
    assert resolve_text_source(cfg, "/w", part="tokenizer") == "skt/kobert-base-v1"
    assert resolve_text_source(cfg, "/w", part="encoder") == "/models/kobert"
    with pytest.raises(KoemoInputError, match="differ"):
        resolve_text_source(cfg, "/w")


def write_utterances(workdir, texts):
    workdir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"segment_id": [f"Sess01_script01_User002M_{i:03d}" for i in range(len(texts))],
                          "text": texts})
    table.to_parquet(workdir / "utterances.parquet", index=False)
    return table


def test_commands_build_standin_and_fill_the_cache(tmp_path, capsys):
    from koemo.cli import main

    workdir = tmp_path / "w"
    long_text = " ".join(KOREAN_SENTENCES)
    table = write_utterances(workdir, KOREAN_SENTENCES[:20] + ["", long_text])
    args = ["--workdir", str(workdir), "--config", "tiny"]
    assert main(["kobert-standin", *args]) == 0
    assert "built" in capsys.readouterr().out
    assert main(["kobert-standin", *args]) == 0
    assert "reused" in capsys.readouterr().out

    assert main(["encode-text", *args, "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "22 utterances: 0 cached already" in first and "1 empty transcript" in first
    reports = list((workdir / "text").glob("*/encode_report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    assert report["empty_text"] == [table["segment_id"][20]]
    assert [r["segment_id"] for r in report["truncated"]] == [table["segment_id"][21]]
    assert main(["encode-text", *args, "--no-progress"]) == 0
    assert "22 cached already, 0 sequences computed" in capsys.readouterr().out


def test_commands_report_a_missing_utterance_table(tmp_path, capsys):
    from koemo.cli import main

    assert main(["encode-text", "--workdir", str(tmp_path), "--config", "tiny", "--no-progress"]) == 1
    assert "utterances.parquet: not found" in capsys.readouterr().err


def test_hub_id_is_fetched_file_by_file_when_the_hub_answers(standin, tokenizer, monkeypatch, tmp_path):
    """The online path, with hf_hub_download replaced by a copy from the stand-in directory
    (as a hub snapshot folder would hold it; there is no vocab.txt to fetch)."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError

    import koemo.text.tokenizer as tok_module

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    asked = []

    def fake_download(repo_id, filename, local_files_only=False, **kwargs):
        asked.append((repo_id, filename, local_files_only))
        if not (standin / filename).is_file():
            raise EntryNotFoundError(f"404: {filename}")
        shutil.copy(standin / filename, snapshot / filename)
        return str(snapshot / filename)

    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(flag, "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tok_module, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)

    fetched = KoBERTTokenizer.from_pretrained("skt/kobert-base-v1")
    assert fetched.fingerprint == tokenizer.fingerprint and fetched.source == "skt/kobert-base-v1"
    encoder = load_kobert("skt/kobert-base-v1")
    assert not encoder.training and encoder.koemo_source == "skt/kobert-base-v1"
    assert [name for _, name, _ in asked] == ["spiece.model", "vocab.txt", "config.json",
                                              "model.safetensors"]
    assert not any(local for _, _, local in asked)


def _damaged_copy(standin, folder, damage: str):
    """A copy of the stand-in whose model.safetensors is truncated, garbage, or replaced by the
    same weights as a pickle `pytorch_model.bin` (torch.save)."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(standin, folder)
    weights = folder / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage":
        weights.write_bytes(b"\x00" * 64)
    else:
        torch.save(load_file(str(weights)), folder / "pytorch_model.bin")
        weights.unlink()
    return folder


@pytest.mark.parametrize("damage, named, problem", [
    ("truncated", "model.safetensors", "not a readable safetensors file"),
    ("garbage", "model.safetensors", "not a readable safetensors file"),
    ("pickle", "pytorch_model.bin", "koemo loads no pickles")])
def test_damaged_or_pickle_encoder_weights_are_one_line_naming_the_file(
        standin, tmp_path, monkeypatch, damage, named, problem):
    import torch

    from koemo.text.encoder import load_text_encoder

    folder = _damaged_copy(standin, tmp_path / "kobert", damage)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load called: a pickle was opened")

    monkeypatch.setattr(torch, "load", no_unpickling)
    for load in (load_kobert, load_text_encoder):
        with pytest.raises(KoemoInputError) as err:
            load(folder)
        message = str(err.value)
        assert message.startswith(f"{folder / named}: ") and problem in message, message
        assert "\n" not in message


def test_koemo_train_with_a_damaged_encoder_folder_prints_one_line(standin, module_workdir,
                                                                   tmp_path, capsys):
    from koemo import cli

    folder = _damaged_copy(standin, tmp_path / "kobert", "truncated")
    code = cli.main(["train", "text", "--workdir", str(module_workdir), "--config", "tiny",
                     "--no-progress", "--set", f"text.encoder={folder}",
                     "--set", f"text.tokenizer={folder}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    # Found before training starts (koemo.inference.pretrained), in the one error line.
    assert len(err) == 1 and err[0].startswith("koemo train: error: "), err
    assert f"{folder / 'model.safetensors'}: not a readable safetensors file" in err[0], err
