"""A tiny random-weight Whisper, built offline, for tests, benchmarks and the synthetic demo.

Real speech recognition loads a trained Whisper (e.g. openai/whisper-small) through the same
transformers classes; this stand-in has the same files and code path (WhisperProcessor +
WhisperForConditionalGeneration from a directory) with tiny dimensions, random weights and a
vocabulary of Hangul syllables: what it "hears" is deterministic gibberish, but Korean
gibberish, so the KoBERT side of the predictor accepts it.

    build_standin_whisper("data/whisper-standin")     # then --asr data/whisper-standin
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import cast

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|ko|>", "<|translate|>",
            "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
            "<|notimestamps|>"]
SYLLABLES = "안녕하세요오늘정말기분이좋아요너무슬퍼화가나요깜짝놀랐어그래서우리집에가자"
DIMS = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
        "num_mel_bins": 80, "max_source_positions": 1500, "max_target_positions": 64}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's (and Whisper's) byte -> printable character table of byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def _vocab_and_merges() -> tuple[dict[str, int], list[str], list[str]]:
    """Byte-level BPE pieces: every syllable's UTF-8 bytes merged pairwise into one piece.
    Returns (vocab, merges, the helper pieces that are never whole syllables)."""
    byte_char = bytes_to_unicode()
    vocab: dict[str, int] = {}
    merges: list[str] = []
    helpers: list[str] = []

    def add(piece: str) -> None:
        vocab.setdefault(piece, len(vocab))

    for syllable in dict.fromkeys(SYLLABLES):
        chars = [byte_char[b] for b in syllable.encode("utf-8")]
        for char in chars:
            if char not in vocab:
                helpers.append(char)
            add(char)
        prefix = chars[0]
        for char in chars[1:]:
            merge = f"{prefix} {char}"
            if merge not in merges:
                merges.append(merge)
            prefix += char
            if prefix not in vocab and len(prefix) < len("".join(chars)):
                helpers.append(prefix)
            add(prefix)
    add(byte_char[ord(" ")])
    return vocab, merges, [h for h in helpers if h in vocab]


WHISPER_SMALL_DIMS = {**DIMS, "d_model": 768, "encoder_layers": 12, "decoder_layers": 12,
                      "encoder_attention_heads": 12, "decoder_attention_heads": 12,
                      "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "max_target_positions": 448}


def build_standin_whisper(directory: str | Path, seed: int = 0, dims: dict | None = None) -> Path:
    """Write a tiny random Whisper (config, safetensors weights, tokenizer, feature extractor,
    generation config) to `directory`; returns it. `dims` overrides the sizes (e.g.
    WHISPER_SMALL_DIMS: whisper-small's shape, for timing; the vocabulary stays small)."""
    dims = {**DIMS, **(dims or {})}
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges, helpers = _vocab_and_merges()
    for token in SPECIALS:
        vocab[token] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = WhisperTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"),
                                 unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                 eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    # one token, one id (transformers types the result of a list argument too)
    ids = {token: cast(int, tokenizer.convert_tokens_to_ids(token)) for token in SPECIALS}
    config = WhisperConfig(vocab_size=len(vocab), **dims, decoder_start_token_id=ids["<|startoftranscript|>"],
                           eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                           bos_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    # Helper pieces decode to broken UTF-8: never generate them, only whole syllables and spaces.
    generation = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
        is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"], "<|ko|>": ids["<|ko|>"]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        suppress_tokens=[vocab[h] for h in helpers] + [ids[t] for t in SPECIALS[1:]],
        begin_suppress_tokens=[ids["<|endoftext|>"]], return_timestamps=False)
    model.generation_config = generation
    model.save_pretrained(str(directory), safe_serialization=True)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=dims["num_mel_bins"]), tokenizer)
    processor.save_pretrained(str(directory))
    return directory
