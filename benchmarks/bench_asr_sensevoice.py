"""Speech recognition alone: Whisper (koemo.inference.asr's Transcriber, autoregressive
`generate`) against SenseVoice-Small (koemo.upstreams.sensevoice, one non-autoregressive CTC
pass), both through `Transcriber.load(asr settings).transcribe`, on the same utterances, same
batch size, same device, in the same run.

Both are random-weight stand-ins built offline (koemo.inference.asr_standin,
koemo.synth.zeroshot) with small vocabularies (~100 pieces each; the released ones have
51,865 and 25,055, so both output projections are far cheaper here). Random Whisper weights
rarely emit end-of-text: every utterance decodes `tokens` tokens, a fixed transcript length;
SenseVoice's cost does not depend on the transcript. Whisper pads every utterance to 30 s of
log-mel before its encoder; SenseVoice encodes the utterance's own length (~17 frames a
second after its 7/6 frame stacking). What the models hear is gibberish: only the time is
comparable, not the transcripts.
- tiny: both tiny stand-ins (Whisper 1+1 layers / width 32; SenseVoice 2+1 SAN-M blocks /
  width 16), 8 utterances of 1.5 s, 8 tokens.
- full: whisper-small's shape (12+12 layers, width 768) against SenseVoice-Small's released
  encoder shape (50+20 SAN-M blocks, width 512), 16 utterances of 6 s, 24 tokens.
Rows: CPU, and the GPU when torch sees one; baseline Whisper, candidate SenseVoice.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.bench_predict import synthetic_utterances
from benchmarks.common import make_row

SIZES = {"tiny": {"seconds": 1.5, "items": 8, "tokens": 8, "full": False},
         "full": {"seconds": 6.0, "items": 16, "tokens": 24, "full": True}}
BATCH_SIZE = 8


def _seconds(transcriber, waves, sync) -> float:
    transcriber.transcribe(waves[:1])                              # warm-up
    sync()
    start = time.perf_counter()
    transcriber.transcribe(waves)
    sync()
    return time.perf_counter() - start


def run(size: str) -> list[dict]:
    import torch

    from koemo.inference.asr import Transcriber, asr_settings
    from koemo.inference.asr_standin import WHISPER_SMALL_DIMS, build_standin_whisper
    from koemo.synth.zeroshot import SENSEVOICE_SMALL_ENCODER, build_sensevoice_standin

    spec = SIZES[size]
    waves = [w for w, _ in synthetic_utterances(spec["items"], spec["seconds"])]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_asr_sv_") as tmp:
        root = Path(tmp)
        whisper = build_standin_whisper(root / "whisper",
                                        dims=WHISPER_SMALL_DIMS if spec["full"] else None)
        sensevoice = build_sensevoice_standin(
            root / "sensevoice", encoder=SENSEVOICE_SMALL_ENCODER if spec["full"] else None)
        for device in devices:
            def sync():
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            common = {"batch_size": BATCH_SIZE, "device": device}
            whisper_s = _seconds(Transcriber.load(asr_settings(
                None, model=str(whisper), max_new_tokens=spec["tokens"], **common)), waves, sync)
            sensevoice_s = _seconds(Transcriber.load(asr_settings(
                None, model=str(sensevoice), **common)), waves, sync)
            n = len(waves)
            shape = "whisper-small vs SenseVoice-Small shapes" if spec["full"] else "tiny stand-ins"
            rows.append(make_row(
                f"speech recognition, {n} utterances of {spec['seconds']:g} s ({device})",
                f"Whisper generate, {spec['tokens']} tokens each, batch {BATCH_SIZE}", whisper_s,
                f"SenseVoice one CTC pass, batch {BATCH_SIZE}", sensevoice_s,
                notes=(f"ms per utterance {1000 * whisper_s / n:.1f} vs {1000 * sensevoice_s / n:.1f}; "
                       f"{shape}, random weights, small vocabularies; torch threads "
                       f"{torch.get_num_threads()}"),
                baseline_ms_per_utt=1000 * whisper_s / n, candidate_ms_per_utt=1000 * sensevoice_s / n))
    return rows
