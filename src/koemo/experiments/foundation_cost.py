"""What one frozen pass of each foundation model over a corpus costs, estimated (docs/foundation.md
prints the table this module writes: `python -m koemo.experiments.foundation_cost`).

FLOPs of a frozen encoder pass = 2 x parameters x frames (each weight one multiply-add per
frame; attention's frames-squared term and the convolutional front end are left out: both are
small beside the weights at utterance lengths of seconds), summed over the corpus's
utterances. Frames per utterance: 50 a second for the wav2vec2 family and emotion2vec (one per
320 samples); Whisper's encoder always reads 30 s (1,500 frames) whatever the utterance's
length; SenseVoice stacks 7 fbank frames every 6 (about 16.7 frames a second); a text encoder
reads the transcript's tokens (TEXT_TOKENS, an assumption). Parameter counts are the model
cards' and papers' figures, except two counted on the meta device from the released shapes:
Whisper-large-v3's encoder (transformers' WhisperEncoder, d_model 1280, 32 layers, ffn 5120,
128 mel bins: 637.0M) and SenseVoice-Small (FunASR's SenseVoiceSmall with the released
config.yaml's encoder and 25,055 tokens: 234.0M, the card's figure). Device time is this estimate divided by a
sustained rate (SUSTAINED_TFLOPS, an assumption); nothing here was measured on a device.
"""
from __future__ import annotations

SUSTAINED_TFLOPS = 100.0      # assumed sustained bf16 rate of one H100-class GPU on these passes
TEXT_TOKENS = 32              # assumed tokens per utterance transcript
WHISPER_FRAMES = 1500
# corpus -> (utterances, mean seconds): KEMDy20's 13,462 segments (docs/kemdy20.md) and the
# mean lengths of both corpora's wavs; KEMDy19's count is approximate (about 9,000 utterances;
# a prepared workdir's utterances.parquet has the exact number)
CORPORA = {"KEMDy20": (13462, 6.0), "KEMDy19": (9000, 5.8)}
# name -> (parameters in millions as published, frames rule: "50hz" | "whisper" | "lfr" | "text")
MODELS = {
    "microsoft/wavlm-large": (316.6, "50hz"),
    "facebook/hubert-large-ll60k": (316.6, "50hz"),
    "facebook/wav2vec2-xls-r-300m": (300.0, "50hz"),
    "openai/whisper-large-v3 (encoder)": (637.0, "whisper"),
    "emotion2vec/emotion2vec_plus_base": (90.0, "50hz"),
    "emotion2vec/emotion2vec_plus_large": (300.0, "50hz"),
    "FunAudioLLM/SenseVoiceSmall": (234.0, "lfr"),
    "klue/roberta-large": (337.0, "text"),
    "monologg/koelectra-base-v3-discriminator": (110.0, "text"),
    "skt/kobert-base-v1": (92.0, "text"),
}


def frames_per_utterance(rule: str, seconds: float) -> float:
    return {"50hz": 50.0 * seconds, "whisper": float(WHISPER_FRAMES),
            "lfr": 100.0 * seconds / 6.0, "text": float(TEXT_TOKENS)}[rule]


def corpus_flops(model: str, corpus: str) -> float:
    """Estimated FLOPs of one frozen pass of `model` over every utterance of `corpus`."""
    millions, rule = MODELS[model]
    utterances, seconds = CORPORA[corpus]
    return 2.0 * millions * 1e6 * frames_per_utterance(rule, seconds) * utterances


def gpu_minutes(flops: float) -> float:
    return flops / (SUSTAINED_TFLOPS * 1e12) / 60.0


def cost_table() -> str:
    """The markdown table of docs/foundation.md: PFLOP and estimated GPU-minutes per corpus."""
    head = " | ".join(f"{c} PFLOP | {c} GPU-min" for c in CORPORA)
    lines = [f"| model | parameters (M) | {head} |",
             "| --- | ---: | " + " | ".join("---: | ---:" for _ in CORPORA) + " |"]
    for model, (millions, _) in MODELS.items():
        cells = []
        for corpus in CORPORA:
            flops = corpus_flops(model, corpus)
            cells.append(f"{flops / 1e15:.1f} | {gpu_minutes(flops):.2f}")
        lines.append(f"| {model} | {millions:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(cost_table())
