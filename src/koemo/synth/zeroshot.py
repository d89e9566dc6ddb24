"""Tiny random-weight emotion2vec+ and SenseVoice-Small directories, built offline, for tests,
the synthetic demo and timing (as koemo.inference.asr_standin builds a tiny Whisper).

Each is written in the released repository's own FunASR format and loaded by the same code
path as the real checkpoint (koemo.upstreams.funasr_loader: FunASR's AutoModel from a local
directory):

- emotion2vec+: config.yaml (`model: Emotion2vec`, `model_conf` with the keys FunASR's
  Emotion2vec and data2vec 2.0 audio encoder read: the wav2vec2-style convolution spec, the
  convolutional position encoder, ALiBi, the prenet and main blocks, `normalize`),
  configuration.json, model.pt (the state dict of FunASR's own Emotion2vec class, a 9-way
  head included) and tokens.txt with the released class tokens ("生气/angry" ... "<unk>").
  Tiny: width 16, two blocks, one prenet block, a 16-channel convolution stack.
- SenseVoice-Small: config.yaml (`model: SenseVoiceSmall`, `encoder: SenseVoiceEncoderSmall`,
  the WavFrontend's 80 mel bins with low-frame-rate stacking 7/6, a SentencepiecesTokenizer),
  configuration.json (FunASR's file_path_metas naming the tokenizer and am.mvn), model.pt
  (FunASR's SenseVoiceSmall state dict), am.mvn (Kaldi-format mean/scale of the 560 stacked
  features) and a BPE sentencepiece model named as the released one
  (chn_jpn_yue_eng_ko_spectok.bpe.model) holding the language, emotion, event and
  text-normalisation tags and Korean pieces. Tiny: width 16, 2 + 1 SAN-M blocks, ~100 pieces.

Exercised: the directory format, FunASR's config parsing, registry, weight loading,
tokenizer and front end (fbank, LFR, CMVN), inference (`generate`), and koemo's layer hooks,
label parsing and mapping. Not exercised: the released sizes and weights (what the model
predicts), the released tokenizer's 25,055 pieces and their ids (SenseVoice's hard-coded
ids of the tags matter only for `ban_emo_unk`, which koemo leaves off), and hub download.

Building needs FunASR (the optional extra `koemo[foundation]`): the weights are its classes'.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EMOTION2VEC_TOKENS = ("生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral",
                      "其他/other", "难过/sad", "吃惊/surprised", "<unk>")
SENSEVOICE_TAGS = ("<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
                   "<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|FEARFUL|>",
                   "<|DISGUSTED|>", "<|SURPRISED|>", "<|EMO_UNKNOWN|>", "<|Speech|>", "<|BGM|>",
                   "<|Laughter|>", "<|Applause|>", "<|Event_UNK|>", "<|withitn|>", "<|woitn|>")
# what the stand-in's tokenizer learns its Korean pieces from
KOREAN_TEXT = ("안녕하세요 오늘 정말 기분이 좋아요", "너무 슬퍼서 아무것도 못 하겠어",
               "진짜 화가 나요 왜 그랬어요", "깜짝 놀랐어 그래서 우리 집에 가자",
               "그냥 평범한 하루였어요 그리고 밥을 먹었어요")
SENSEVOICE_BPE = "chn_jpn_yue_eng_ko_spectok.bpe.model"
LFR_DIM = 80 * 7           # 80 mel bins, 7 frames stacked

EMOTION2VEC_AUDIO = {
    "feature_encoder_spec": "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2",
    "extractor_mode": "layer_norm", "conv_pos_width": 95, "conv_pos_groups": 4,
    "conv_pos_depth": 5, "conv_pos_pre_ln": False, "prenet_depth": 1, "prenet_layerdrop": 0.0,
    "prenet_dropout": 0.0, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
    "num_extra_tokens": 0, "init_extra_token_zero": True, "mask_noise_std": 0.01,
    "mask_prob_min": None, "inverse_mask": False, "mask_prob": 0.5, "mask_prob_adjust": 0.0,
    "keep_masked_pct": 0.0, "mask_length": 5, "add_masks": False, "remove_masks": False,
    "mask_dropout": 0.0, "encoder_zero_mask": True, "mask_channel_prob": 0.0,
    "mask_channel_length": 64, "local_grad_mult": 1.0, "use_alibi_encoder": True,
    "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
    "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
    "learned_alibi_scale_per_layer": False, "num_alibi_heads": 2, "model_depth": 2,
    "decoder": None}
EMOTION2VEC_CONF = {
    "loss_beta": 0.0, "loss_scale": None, "depth": 2, "start_drop_path_rate": 0.0,
    "end_drop_path_rate": 0.0, "num_heads": 2, "norm_eps": 1e-5, "norm_affine": True,
    "encoder_dropout": 0.1, "post_mlp_drop": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.05, "embed_dim": 16,
    "mlp_ratio": 2.0, "layer_norm_first": False, "average_top_k_layers": 2,
    "end_of_block_targets": False, "clone_batch": 1, "normalize": True,
    "modalities": {"audio": EMOTION2VEC_AUDIO}}
SENSEVOICE_ENCODER = {
    "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2, "tp_blocks": 1,
    "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
    "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
    "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"}
# The released SenseVoice-Small's encoder_conf (its config.yaml): for timing at the real shape
SENSEVOICE_SMALL_ENCODER = {**SENSEVOICE_ENCODER, "output_size": 512, "attention_heads": 4,
                            "linear_units": 2048, "num_blocks": 50, "tp_blocks": 20}
SENSEVOICE_CONFIG: dict[str, Any] = {
    "encoder": "SenseVoiceEncoderSmall", "encoder_conf": SENSEVOICE_ENCODER,
    "model": "SenseVoiceSmall",
    "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
    "tokenizer": "SentencepiecesTokenizer",
    "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
    "frontend": "WavFrontend",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                      "frame_shift": 10, "lfr_m": 7, "lfr_n": 6, "cmvn_file": None}}


def _write_common(directory: Path, config: dict, metas: dict, task: str, state: dict) -> None:
    import torch
    import yaml

    from koemo.upstreams.funasr_loader import CONFIG_FILE

    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (directory / "configuration.json").write_text(json.dumps(
        {"framework": "pytorch", "task": task, "model": {"type": "funasr"},
         "file_path_metas": {"init_param": "model.pt", "config": CONFIG_FILE, **metas}},
        indent=2), encoding="utf-8")
    torch.save(state, directory / "model.pt")


def build_emotion2vec_standin(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random emotion2vec+ directory (see the module doc) to `out_dir`."""
    import torch
    from koemo.upstreams.funasr_loader import import_funasr

    import_funasr()                                    # the clear error when FunASR is missing
    from funasr.models.emotion2vec.model import Emotion2vec

    directory = Path(out_dir)
    torch.manual_seed(seed)
    model = Emotion2vec(model_conf=EMOTION2VEC_CONF, vocab_size=len(EMOTION2VEC_TOKENS))
    config = {"model": "Emotion2vec", "model_conf": EMOTION2VEC_CONF,
              "tokenizer": "CharTokenizer",
              "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True}}
    _write_common(directory, config, {"tokenizer_conf": {"token_list": "tokens.txt"}},
                  "emotion-recognition", model.state_dict())
    (directory / "tokens.txt").write_text("\n".join(EMOTION2VEC_TOKENS) + "\n", encoding="utf-8")
    return directory


def _write_bpe(directory: Path) -> int:
    """A BPE sentencepiece model: <unk> <s> </s> (ids 0-2, blank = 0 as SenseVoice's CTC reads
    it), the tags, then Korean pieces learnt from KOREAN_TEXT."""
    import io

    import sentencepiece as spm

    stream = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(KOREAN_TEXT * 4), model_writer=stream, model_type="bpe",
        vocab_size=120, user_defined_symbols=list(SENSEVOICE_TAGS), character_coverage=1.0,
        num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    (directory / SENSEVOICE_BPE).write_bytes(stream.getvalue())
    return spm.SentencePieceProcessor(model_proto=stream.getvalue()).vocab_size()


def _write_mvn(directory: Path) -> None:
    """am.mvn in Kaldi's nnet text format: AddShift (minus the mean) then Rescale (1 / std)."""
    shift = " ".join(["-10.0"] * LFR_DIM)
    scale = " ".join(["0.25"] * LFR_DIM)
    (directory / "am.mvn").write_text(
        f"<Nnet>\n<Splice> {LFR_DIM} {LFR_DIM}\n[ 0 ]\n<AddShift> {LFR_DIM} {LFR_DIM}\n"
        f"<LearnRateCoef> 0 [ {shift} ]\n<Rescale> {LFR_DIM} {LFR_DIM}\n"
        f"<LearnRateCoef> 0 [ {scale} ]\n</Nnet>\n", encoding="utf-8")


def build_sensevoice_standin(out_dir: str | Path, seed: int = 0, encoder: dict | None = None) -> Path:
    """Write a tiny random SenseVoice-Small directory (see the module doc) to `out_dir`;
    `encoder` overrides the encoder's sizes (SENSEVOICE_SMALL_ENCODER: the released shape, for
    timing; the vocabulary stays small)."""
    import torch
    from koemo.upstreams.funasr_loader import import_funasr

    import_funasr()
    from funasr.models.sense_voice.model import SenseVoiceSmall

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_bpe(directory)
    _write_mvn(directory)
    encoder_conf = {**SENSEVOICE_ENCODER, **(encoder or {})}
    torch.manual_seed(seed)
    model = SenseVoiceSmall(encoder="SenseVoiceEncoderSmall", encoder_conf=encoder_conf,
                            input_size=LFR_DIM, vocab_size=vocab_size,
                            **SENSEVOICE_CONFIG["model_conf"])
    _write_common(directory, {**SENSEVOICE_CONFIG, "encoder_conf": encoder_conf},
                  {"tokenizer_conf": {"bpemodel": SENSEVOICE_BPE},
                   "frontend_conf": {"cmvn_file": "am.mvn"}},
                  "auto-speech-recognition", model.state_dict())
    return directory
