"""KoBERTTokenizer: SKT's ids, preprocessing, padding/truncation, save/load and bad inputs, on a
sentencepiece model trained here with KoBERT's special-id layout (no hub access)."""
from __future__ import annotations

import io
import shutil
import unicodedata

import numpy as np
import pytest

from tests.deadline import HANG_S, within_deadline
from koemo.errors import KoemoInputError
from koemo.text.standin import train_kobert_spm
from koemo.text.tokenizer import (CONFIG_FILE, MODEL_FILE, SPIECE_UNDERLINE, KoBERTTokenizer,
                                  preprocess_text, split_digit_comma_pieces)

# A few dozen everyday Korean sentences (varied valence) to train the test vocabulary on.
KOREAN_SENTENCES = [
    "오늘 날씨가 정말 좋네요", "어제는 하루 종일 비가 왔어요", "친구들이랑 같이 밥을 먹었어",
    "생일 선물로 용돈을 받았어요", "엄마가 미역국을 끓여 주셨어", "시험을 망쳐서 너무 속상해",
    "강아지가 아파서 병원에 갔어요", "주말에 영화 보러 갈래요", "회사에서 칭찬을 받아서 기뻐요",
    "버스를 놓쳐서 지각했어", "그 소식을 듣고 깜짝 놀랐어요", "왜 나한테 그런 말을 해",
    "정말 화가 나서 참을 수가 없어", "혼자 있으니까 외롭고 슬퍼요", "맛있는 케이크를 만들었어요",
    "내일은 학교에 일찍 가야 해", "여행 계획을 세우는 게 즐거워요", "길에서 지갑을 잃어버렸어",
    "동생이랑 크게 싸웠어요", "할머니 댁에 놀러 갔었어", "새로 산 신발이 마음에 들어요",
    "숙제가 너무 많아서 힘들어", "갑자기 전화가 와서 당황했어요", "좋아하는 가수의 공연을 봤어",
    "운동을 하고 나니까 기분이 상쾌해요", "그 사람 때문에 정말 짜증 나", "아무것도 하기 싫은 날이야",
    "고양이가 창밖을 보고 있어요", "커피를 마시면서 책을 읽었어", "드디어 시험이 끝났어요",
    "가격이 천 원이나 올랐어요", "우리 가족은 네 명이에요", "가방에 책이 두 권 있어",
    "비행기 표를 싸게 샀어요", "이사 준비 때문에 바빠요", "선생님께 편지를 썼어요",
]
VOCAB_REQUEST = 300


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    (folder / MODEL_FILE).write_bytes(train_kobert_spm(KOREAN_SENTENCES, VOCAB_REQUEST, seed=0))
    return KoBERTTokenizer.from_pretrained(folder)


def test_special_ids_follow_kobert_layout(tokenizer):
    specials = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.convert_tokens_to_ids(specials) == [0, 1, 2, 3, 4]
    assert (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.cls_token_id,
            tokenizer.sep_token_id, tokenizer.mask_token_id) == (0, 1, 2, 3, 4)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == specials
    assert 100 < tokenizer.vocab_size <= VOCAB_REQUEST


def test_encode_known_pieces_gives_known_ids_and_masks(tokenizer):
    out = tokenizer.encode(["[MASK]", "[UNK]", "not-a-piece"], max_length=8)
    assert out["input_ids"].tolist() == [2, 4, 0, 0, 3, 1, 1, 1]
    assert out["attention_mask"].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert out["token_type_ids"].tolist() == [0] * 8
    assert all(v.dtype == np.int64 and v.shape == (8,) for v in out.values())


def test_encode_text_is_cls_pieces_sep_then_pad(tokenizer):
    text = "오늘 날씨가 정말 좋네요"
    pieces = tokenizer.tokenize(text)
    ids = tokenizer.convert_tokens_to_ids(pieces)
    assert pieces[0].startswith(SPIECE_UNDERLINE) and 0 not in ids   # training text: all known
    out = tokenizer.encode(text, max_length=64)
    n = len(pieces) + 2
    assert out["input_ids"].tolist() == [2, *ids, 3] + [1] * (64 - n)
    assert out["attention_mask"].tolist() == [1] * n + [0] * (64 - n)


def test_pieces_round_trip(tokenizer):
    for text in KOREAN_SENTENCES[:10]:
        pieces = tokenizer.tokenize(text)
        assert tokenizer.convert_tokens_to_string(pieces) == text
        assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(pieces)) == pieces
        for key, value in tokenizer.encode(pieces, 32).items():
            assert np.array_equal(value, tokenizer.encode(text, 32)[key])
        assert tokenizer.decode(tokenizer.encode(text, 32)["input_ids"]) == text


def test_preprocessing_matches_xlnet_rules(tokenizer):
    assert preprocess_text("  a\t b \n c  ") == "a b c"
    assert preprocess_text("``quoted''") == '"quoted"'
    assert preprocess_text("café naïve") == "cafe naive"           # keep_accents=False
    assert preprocess_text("ABC") == "ABC"                           # do_lower_case=False
    assert tokenizer.tokenize("  오늘   날씨가\t정말 \n좋네요 ") == tokenizer.tokenize("오늘 날씨가 정말 좋네요")
    # NFKD splits Hangul into jamo; the sentencepiece normaliser (NFKC) composes them again.
    decomposed = unicodedata.normalize("NFD", "오늘 날씨가 정말 좋네요")
    assert decomposed != "오늘 날씨가 정말 좋네요"
    assert tokenizer.tokenize(decomposed) == tokenizer.tokenize("오늘 날씨가 정말 좋네요")


def test_digit_comma_pieces_split_off_their_comma():
    def word_start(text):
        return [SPIECE_UNDERLINE + text]

    assert split_digit_comma_pieces(["▁12,", "요,"], word_start) == ["▁12", ",", "요,"]
    # Mid-word piece: the word-start marker the re-encoding adds is removed again.
    assert split_digit_comma_pieces(["3,"], word_start) == ["3", ","]
    assert split_digit_comma_pieces(["3,"], lambda text: [SPIECE_UNDERLINE, text]) == ["3", ","]


def test_special_tokens_in_text_stay_whole(tokenizer):
    pieces = tokenizer.tokenize("오늘 [MASK] 좋네요")
    assert "[MASK]" in pieces
    assert tokenizer.encode("오늘 [MASK]", 16)["input_ids"].tolist().count(4) == 1


def test_typed_pad_tokens_are_attended_like_any_token(tokenizer):
    """transformers' KoBERT tokenizer masks only the padding it adds, not a "[PAD]" in the text."""
    out = tokenizer.encode("[PAD] [PAD]", max_length=6)
    assert out["input_ids"].tolist() == [2, 1, 1, 3, 1, 1]
    assert out["attention_mask"].tolist() == [1, 1, 1, 1, 0, 0]
    cut = tokenizer.encode("오늘 [PAD] 날씨가 정말 좋네요", max_length=4)
    assert cut["input_ids"].tolist()[-1] == 3 and cut["attention_mask"].tolist() == [1] * 4


def test_attention_mask_for_ids_is_the_mask_encode_gives(tokenizer):
    texts = ["[PAD] [PAD]", "오늘 [PAD]", "[PAD]", "", "오늘 날씨가 정말 좋네요", KOREAN_SENTENCES[0]]
    batch = tokenizer.batch_encode(texts, 12)
    assert np.array_equal(tokenizer.attention_mask_for(batch["input_ids"]), batch["attention_mask"])
    assert np.array_equal(tokenizer.attention_mask_for(batch["input_ids"][0]), batch["attention_mask"][0])


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
def test_empty_or_whitespace_text_encodes_as_cls_sep(tokenizer, text):
    assert tokenizer.tokenize(text) == []
    out = tokenizer.encode(text, max_length=6)
    assert out["input_ids"].tolist() == [2, 3, 1, 1, 1, 1]
    assert out["attention_mask"].tolist() == [1, 1, 0, 0, 0, 0]


def test_marker_only_transcript_is_empty_after_cleaning(tokenizer):
    from koemo.dataset.kemdy20 import clean_transcript

    cleaned = clean_transcript("c/ n/ l/ b/ * +")
    assert tokenizer.encode(cleaned, 4)["input_ids"].tolist() == [2, 3, 1, 1]


def test_long_text_is_truncated_keeping_sep(tokenizer):
    text = " ".join(KOREAN_SENTENCES)
    pieces = tokenizer.tokenize(text)
    assert len(pieces) > 64
    out = tokenizer.encode(text, max_length=64)
    assert out["input_ids"].shape == (64,)
    assert out["input_ids"][0] == 2 and out["input_ids"][-1] == 3
    assert out["input_ids"][1:-1].tolist() == tokenizer.convert_tokens_to_ids(pieces[:62])
    assert out["attention_mask"].tolist() == [1] * 64


def test_latin_digits_and_emoji_do_not_break_encoding(tokenizer):
    text = "OK 좋아요 2024년 😀 café"
    pieces = tokenizer.tokenize(text)
    joined = "".join(pieces).replace(SPIECE_UNDERLINE, "")
    assert "😀" in joined and "cafe" in joined and "é" not in joined and "2024" in joined
    ids = tokenizer.convert_tokens_to_ids(pieces)
    emoji_ids = [i for p, i in zip(pieces, ids) if "😀" in p]
    assert emoji_ids == [0]                     # unseen characters -> [UNK]
    out = tokenizer.encode(text, 32)
    assert out["input_ids"][: len(ids) + 2].tolist() == [2, *ids, 3]


def test_batch_encode_stacks_rows(tokenizer):
    items = ["오늘 날씨가 정말 좋네요", "", ["[MASK]"]]
    batch = tokenizer.batch_encode(items, max_length=16)
    assert batch["input_ids"].shape == (3, 16) and batch["input_ids"].dtype == np.int64
    for i, item in enumerate(items):
        assert np.array_equal(batch["attention_mask"][i], tokenizer.encode(item, 16)["attention_mask"])
    assert tokenizer.batch_encode([], 16)["input_ids"].shape == (0, 16)


def test_save_and_load_keep_ids_and_fingerprint(tokenizer, tmp_path):
    saved = tokenizer.save_pretrained(tmp_path / "tok")
    assert (saved / MODEL_FILE).is_file() and (saved / CONFIG_FILE).is_file()
    again = KoBERTTokenizer.from_pretrained(saved)
    assert again.fingerprint == tokenizer.fingerprint
    text = KOREAN_SENTENCES[3]
    assert np.array_equal(again.encode(text)["input_ids"], tokenizer.encode(text)["input_ids"])
    lowered = KoBERTTokenizer.from_pretrained(saved, do_lower_case=True)
    assert lowered.fingerprint != tokenizer.fingerprint
    lowered.save_pretrained(tmp_path / "lower")
    assert KoBERTTokenizer.from_pretrained(tmp_path / "lower").do_lower_case is True


def test_directory_without_model_file_is_a_clear_error(tokenizer, tmp_path):
    folder = tokenizer.save_pretrained(tmp_path / "tok")
    (folder / MODEL_FILE).unlink()
    with pytest.raises(KoemoInputError, match=rf"{folder}.*without spiece.model"):
        KoBERTTokenizer.from_pretrained(folder)
    with pytest.raises(KoemoInputError, match="directory not found"):
        KoBERTTokenizer.from_pretrained(tmp_path / "does" / "not" / "exist")


def test_sentencepiece_model_without_kobert_ids_is_rejected(tmp_path):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(KOREAN_SENTENCES), model_writer=model,
                                   vocab_size=400, hard_vocab_limit=False, minloglevel=2)
    (tmp_path / MODEL_FILE).write_bytes(model.getvalue())
    with pytest.raises(KoemoInputError, match="special token ids"):
        KoBERTTokenizer.from_pretrained(tmp_path)


def test_hub_id_while_offline_fails_fast_with_local_directory_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KoemoInputError, match="not a local tokenizer directory.*HF_HUB_OFFLINE"):
        within_deadline(HANG_S, "KoBERTTokenizer.from_pretrained(hub id, offline)",
                        KoBERTTokenizer.from_pretrained, "skt/kobert-base-v1")


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, tmp_path):
    from huggingface_hub import constants

    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(flag, "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")      # discard port: refused at once
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(KoemoInputError, match="not reachable"):
        within_deadline(HANG_S, "KoBERTTokenizer.from_pretrained(hub id, hub unreachable)",
                        KoBERTTokenizer.from_pretrained, "skt/kobert-base-v1")


def test_vocab_file_is_carried_along(tokenizer, tmp_path):
    folder = tokenizer.save_pretrained(tmp_path / "tok")
    pieces = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    loaded = KoBERTTokenizer.from_pretrained(folder)
    copy = loaded.save_pretrained(tmp_path / "copy")
    assert (copy / "vocab.txt").read_text(encoding="utf-8") == (folder / "vocab.txt").read_text(encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(reversed(pieces)) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="ids are taken from the sentencepiece model"):
        KoBERTTokenizer.from_pretrained(folder)
    shutil.rmtree(copy)


def test_max_length_below_two_is_rejected(tokenizer):
    with pytest.raises(KoemoInputError, match="max_length"):
        tokenizer.encode("오늘", max_length=1)
