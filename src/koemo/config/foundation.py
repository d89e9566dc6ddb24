"""The `reproduce.foundation` section: the foundation-model study of notebook 5-4
(koemo.experiments.foundation). Its own module so that koemo.config.schema stays one screenful
per concern; it needs only the kinds of values every section uses (koemo.config.section).

The rows it trains and scores are those of the paper's runs it is compared with (the cross-corpus
study's variant, else the fusion study's), and the upstreams run on `train.device`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from annotated_types import Ge, MinLen
from pydantic import StrictInt

from koemo.config.section import Count, Name, Positive, Section, Seed, Whole, setting

# `tiny:<family>` names a tiny random upstream built in the workdir (the demo and the tests).
TINY = "tiny:"
ZeroShotKind = Literal["emotion2vec", "sensevoice"]
ProbeLayer = Union[Literal["weighted"], StrictInt]


class FoundationProbe(Section):
    layer: ProbeLayer = setting(
        "weighted", "weighted (a learned softmax weighting over every hidden state) | N: hidden "
                    "state N alone (0: the embeddings; negative counts from the last; EmoBox: -1)")
    hidden: Whole = setting(256, "width of the probe's hidden layer (EmoBox: 256)")
    epochs: Whole = setting(20, "epoch budget (EmoBox: 20)")
    batch_size: Whole = setting(32, "batch size (EmoBox: 32)")
    lr: Positive = setting(1.0e-4, "Adam learning rate (EmoBox: 1e-4)")
    warmup_epochs: Count = setting(
        10, "linear warm-up over this many epochs, then linear decay to 0 at `epochs` (EmoBox: "
            "10 of 20); 0: a constant learning rate")
    patience: Optional[Whole] = setting(
        5, "early stopping after this many epochs without a lower validation loss; the test is "
           "scored with the best epoch (null: every epoch, as EmoBox)")


class FusedUpstreams(Section):
    audio: Name = setting("microsoft/wavlm-large", "the audio upstream of a fused probe")
    text: Name = setting("klue/roberta-large", "the text upstream of a fused probe")


class ZeroShotModel(Section):
    kind: ZeroShotKind = setting("emotion2vec", "emotion2vec (its 9-class head) | sensevoice "
                                                "(its emotion tag)")
    model: Name = setting("emotion2vec/emotion2vec_plus_large",
                          "hub id, local directory or tiny:<kind>")


class FoundationStudy(Section):
    audio: list[Name] = setting(
        ["microsoft/wavlm-large", "facebook/hubert-large-ll60k", "openai/whisper-large-v3",
         "facebook/wav2vec2-xls-r-300m", "emotion2vec/emotion2vec_plus_base",
         "emotion2vec/emotion2vec_plus_large"],
        "frozen audio upstreams, one probe each: hub ids or local directories (tiny:<family> "
        "builds a tiny random one in the workdir: demo and tests)")
    text: list[Name] = setting(
        ["klue/roberta-large", "monologg/koelectra-base-v3-discriminator", "skt/kobert-base-v1"],
        "frozen text upstreams, one probe each (standin: the workdir's KoBERT stand-in)")
    fused: list[FusedUpstreams] = setting(
        [{"audio": "microsoft/wavlm-large", "text": "klue/roberta-large"}],
        "audio + text pairs, one fused probe each (the two pooled vectors concatenated)")
    zero_shot: list[ZeroShotModel] = setting(
        [{"kind": "emotion2vec", "model": "emotion2vec/emotion2vec_plus_base"},
         {"kind": "emotion2vec", "model": "emotion2vec/emotion2vec_plus_large"},
         {"kind": "sensevoice", "model": "FunAudioLLM/SenseVoiceSmall"}],
        "models scored zero-shot on the same test rows, through their own emotion labels")
    probe: FoundationProbe = setting({}, "the probe trained on each fold (EmoBox's downstream model)")
    seeds: Optional[Annotated[list[Seed], MinLen(1)]] = setting(
        None, "probe seeds (null: the cross-corpus study's, so each probe pairs with the "
              "paper's run of its seed)")
    text_max_length: Annotated[StrictInt, Ge(3)] = setting(
        128, "tokens per transcript read by the text upstreams (<cls>, <sep> and at least one)")
    batch_size: Whole = setting(
        16, "transcripts per text-upstream pass (and utterances per zero-shot batch)",
        affects_results=False)
