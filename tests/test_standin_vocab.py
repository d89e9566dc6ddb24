"""Small configs on corpora with many distinct characters: the real KEMDy20 + KEMDy19 texts hold
877, more than the 800 pieces of the small configs' KoBERT stand-in, and the synthetic corpora
now carry that many too. Every small config's text front-end must build on them and encode
every text without an unknown piece."""
from __future__ import annotations

import inspect
import json

import pytest

from koemo.config.assets import configs_dir
from koemo.config.load import load_config
from koemo.dataset import kemdy19 as read19, kemdy20 as read20
from koemo.errors import KoemoInputError
from koemo.synth import corpus, kemdy19
from koemo.text import KoBERTTokenizer
from koemo.text.standin import (STANDIN_KEYWORD, STANDIN_MARKER, build_standin,
                                clean_training_texts, required_pieces, standin_settings,
                                train_kobert_spm)

SMALL_CONFIGS = ("demo", "tiny", "tiny_ssl")


def synthetic_transcripts(cfg) -> list[str]:
    """The transcripts of the config's synthetic KEMDy20 and KEMDy19, markers removed as
    `koemo prepare` removes them; planned, not written (no audio)."""
    k20, k19 = cfg.synthetic, cfg.synthetic.kemdy19
    durations = inspect.signature(corpus.write_corpus).parameters["duration_range"].default
    texts = [read20.clean_transcript(utt.text) for session in range(1, k20.sessions + 1)
             for utt in corpus.plan_session(session, k20.seed, k20.utterances_per_session,
                                            corpus.normalise_class_probs(None), k20.mean_duration,
                                            durations).utterances]
    probs = corpus.normalise_class_probs(kemdy19.DEFAULT_CLASS_PROBS)
    texts += [read19.clean_transcript(utt.text) for session in range(1, k19.sessions + 1)
              for utt in kemdy19.plan_session(session, k19.seed, k19.utterances_per_session,
                                              probs, k19.mean_duration, durations)]
    return texts


@pytest.fixture(scope="module")
def texts():
    """The demo's two synthetic corpora: the texts of its cross-corpus workdir (notebook 5-3)."""
    return clean_training_texts(synthetic_transcripts(load_config("demo")))


def test_every_shipped_config_with_the_standin_is_a_small_config_tested_here():
    uses = sorted(path.stem for path in configs_dir().glob("*.yaml")
                  if load_config(path.stem).text.encoder == STANDIN_KEYWORD)
    assert uses and set(uses) <= set(SMALL_CONFIGS)


def test_synthetic_corpora_have_more_characters_than_a_small_vocabulary(texts):
    needed, characters = required_pieces(texts)
    vocab = load_config("demo").text.standin.vocab_size
    assert characters > vocab and needed > vocab
    assert 1000 <= len(texts) <= 1200 and 850 <= characters <= 1100   # real: 877 over 2,201


def test_required_pieces_is_the_smallest_vocabulary_sentencepiece_trains(texts):
    needed, _ = required_pieces(texts)
    with pytest.raises(KoemoInputError, match=f"{needed - 1}-piece"):
        train_kobert_spm(texts, needed - 1)
    assert train_kobert_spm(texts, needed)


@pytest.mark.parametrize("name", SMALL_CONFIGS)
def test_small_config_text_front_end_builds_and_encodes_every_text(name, texts, tmp_path):
    cfg = load_config(name)
    if cfg.text.encoder != STANDIN_KEYWORD:        # a tiny encoder built from the texts
        from transformers import AutoTokenizer
        from koemo.synth.encoders import build_text_encoder

        tokenizer = AutoTokenizer.from_pretrained(build_text_encoder("roberta", tmp_path, texts))
        assert all(tokenizer.unk_token_id not in ids for ids in tokenizer(texts)["input_ids"])
        return
    settings = standin_settings(cfg.text)
    out_dir = build_standin(texts, tmp_path / "standin", **settings)
    meta = json.loads((out_dir / STANDIN_MARKER).read_text(encoding="utf-8"))
    needed, _ = required_pieces(texts)
    assert meta["vocab_size_requested"] == settings["vocab_size"]
    assert meta["vocab_size_trained"] == needed > settings["vocab_size"]
    tokenizer = KoBERTTokenizer.from_pretrained(out_dir)
    assert tokenizer.vocab_size == needed
    encoder_vocab = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    assert encoder_vocab == tokenizer.vocab_size == meta["vocab_size"]
    def ids(text):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))

    unknown = tokenizer.convert_tokens_to_ids("[UNK]")
    assert all(unknown not in ids(text) for text in texts)
    assert unknown in ids(texts[0] + " \u2603")         # a character of no text: the check bites


def test_a_vocabulary_large_enough_is_trained_as_configured(tmp_path):
    """A build whose configured size holds every character is the build before the raise:
    same size trained, same sentencepiece model, so no cache or run key moves."""
    texts = clean_training_texts(synthetic_transcripts(load_config("demo"))[:60])
    needed, _ = required_pieces(texts)
    out_dir = build_standin(texts, tmp_path / "s", vocab_size=needed, hidden_size=8,
                            num_layers=1, num_heads=2)
    meta = json.loads((out_dir / STANDIN_MARKER).read_text(encoding="utf-8"))
    assert meta["vocab_size_trained"] == meta["vocab_size_requested"] == needed
    assert (out_dir / "spiece.model").read_bytes() == train_kobert_spm(texts, needed)
