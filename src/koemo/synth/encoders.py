"""Random-weight pretrained-encoder stand-ins, built offline from transformers configs.

The model hubs are unreachable in CI, so the front-end code paths (`koemo.audio.speech_encoder`,
`koemo.text.auto`) are exercised with models of the real architectures and random weights,
saved with `save_pretrained` exactly as a downloaded hub snapshot is laid out:
- speech: wav2vec2, HuBERT, WavLM; `size="tiny"` (32 wide, 2 layers) or `size="base"`
  (the base models' dimensions: 768 wide, 12 layers, 7-layer conv feature encoder);
- text: RoBERTa (byte-level BPE tokenizer) or ELECTRA (WordPiece tokenizer), tokenizers trained
  or listed from the given texts;
- Whisper's encoder: a random WhisperModel (32 wide, 2 encoder layers, 80 mel bins) with a
  WhisperFeatureExtractor in preprocessor_config.json, as openai/whisper-* are laid out.
`build_tiny_upstream(family, out_dir, texts)` builds the foundation study's tiny upstreams by
family (`tiny:<family>` in reproduce.foundation): wavlm, hubert and xlsr in the large models'
style (layer-norm feature encoder, stable layer norm, attention mask), wav2vec2 as its base,
whisper, roberta and electra.
Their outputs carry no meaning: they test plumbing and cost, never accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from koemo.config.schema import SAMPLE_RATE

SPEECH_FAMILIES = ("wav2vec2", "hubert", "wavlm")
TEXT_FAMILIES = ("roberta", "electra")
# 320-sample frame hop (50 frames/s) as the real models, with three small conv layers.
_TINY_SPEECH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 8, 4),
                    conv_stride=(5, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_speech_encoder(family: str, out_dir: str | Path, size: str = "tiny", seed: int = 0,
                         large_style: bool | None = None) -> Path:
    """A random `family` speech encoder + Wav2Vec2FeatureExtractor saved to out_dir.
    large_style: layer-norm feature encoder, stable layer norm and an attention mask, as the
    large models (batched when caching); None = WavLM only (wav2vec2/HuBERT as their base)."""
    import torch
    from transformers import (HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor,
                              Wav2Vec2Model, WavLMConfig, WavLMModel)

    classes = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model), "hubert": (HubertConfig, HubertModel),
               "wavlm": (WavLMConfig, WavLMModel)}
    if family not in classes:
        raise ValueError(f"family must be one of {SPEECH_FAMILIES}, not {family!r}")
    if size not in ("tiny", "base"):
        raise ValueError(f"size must be tiny or base, not {size!r}")
    config_cls, model_cls = classes[family]
    torch.manual_seed(seed)
    large = family == "wavlm" if large_style is None else large_style
    style = {"feat_extract_norm": "layer", "do_stable_layer_norm": True} if large else {}
    config = config_cls(**(_TINY_SPEECH if size == "tiny" else {}), **style)   # defaults: base dims
    model = model_cls(config).eval()
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                             do_normalize=True, return_attention_mask=large).save_pretrained(str(out_dir))
    return out_dir


def _clean(texts: Iterable[str]) -> list[str]:
    return [t for t in (str(x).strip() for x in texts) if t]


def build_text_encoder(family: str, out_dir: str | Path, texts: Iterable[str], hidden_size: int = 32,
                       seed: int = 0) -> Path:
    """A random RoBERTa or ELECTRA encoder with a tokenizer made from `texts`, saved to out_dir
    (loads with AutoTokenizer + AutoModel)."""
    import torch

    texts = _clean(texts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if family == "roberta":
        tokenizer = _roberta_tokenizer(texts)
    elif family == "electra":
        tokenizer = _electra_tokenizer(texts)
    else:
        raise ValueError(f"family must be one of {TEXT_FAMILIES}, not {family!r}")
    tokenizer.save_pretrained(str(out_dir))
    torch.manual_seed(seed)
    sizes: dict[str, Any] = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=1,
                 num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=130)
    model: PreTrainedModel
    if family == "roberta":
        from transformers import RobertaConfig, RobertaModel
        model = RobertaModel(RobertaConfig(pad_token_id=tokenizer.pad_token_id, type_vocab_size=1,
                                           **sizes))
    else:
        from transformers import ElectraConfig, ElectraModel
        model = ElectraModel(ElectraConfig(embedding_size=hidden_size, pad_token_id=tokenizer.pad_token_id,
                                           **sizes))
    model.eval().save_pretrained(str(out_dir))
    return out_dir


def _roberta_tokenizer(texts: list[str]) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=600, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                pad_token="<pad>", mask_token="<mask>")


def _electra_tokenizer(texts: list[str]) -> Any:
    """WordPiece over characters: every character, and every character as a continuation."""
    # transformers 5 maps this name lazily (to BertTokenizer); its stubs do not list it
    from transformers import ElectraTokenizerFast  # type: ignore[attr-defined]

    chars = sorted({c for t in texts for c in t if not c.isspace()})
    vocab = _SPECIALS + chars + [f"##{c}" for c in chars]
    return ElectraTokenizerFast(vocab={v: i for i, v in enumerate(vocab)}, do_lower_case=False,
                                strip_accents=False, tokenize_chinese_chars=False)


_TINY_WHISPER: dict[str, Any] = dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                     num_mel_bins=80, max_source_positions=1500, max_target_positions=32,
                     vocab_size=64)


def build_whisper_encoder(out_dir: str | Path, seed: int = 0) -> Path:
    """A random tiny WhisperModel + WhisperFeatureExtractor saved to out_dir (no tokenizer:
    only the encoder is read)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(seed)
    config = WhisperConfig(**_TINY_WHISPER, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                           decoder_start_token_id=1)
    out_dir = Path(out_dir)
    WhisperModel(config).eval().save_pretrained(str(out_dir))
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(str(out_dir))
    return out_dir


TINY_UPSTREAMS = ("wavlm", "hubert", "xlsr", "wav2vec2", "whisper", "roberta", "electra")


def build_tiny_upstream(family: str, out_dir: str | Path, texts: Iterable[str] = ()) -> Path:
    """A tiny random upstream of `family` (TINY_UPSTREAMS; see the module doc) in out_dir."""
    if family in ("wavlm", "hubert", "xlsr", "wav2vec2"):
        name = "wav2vec2" if family == "xlsr" else family
        return build_speech_encoder(name, out_dir, large_style=family != "wav2vec2")
    if family == "whisper":
        return build_whisper_encoder(out_dir)
    if family in TEXT_FAMILIES:
        return build_text_encoder(family, out_dir, texts)
    raise ValueError(f"tiny upstream family must be one of {TINY_UPSTREAMS}, not {family!r}")
