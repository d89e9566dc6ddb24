"""A long synthetic recording: utterances of `koemo.synth.speech` separated by silences of
known length (with faint noise), for testing and showing utterance segmentation."""
from __future__ import annotations

import numpy as np

from koemo.config.schema import SAMPLE_RATE
from koemo.synth import speech


def long_recording(n_utterances: int = 5, seed: int = 0, noise: float = 0.003,
                   speech_s: tuple[float, float] = (1.5, 3.0), silence_s: tuple[float, float] = (0.8, 1.5)
                   ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """(16 kHz float32 wave, [(start_s, end_s)] of every utterance): silence, utterance,
    silence, ..., silence; speakers alternate F/M, arousal varies between 1.5 and 4.5."""
    rng = np.random.default_rng(seed)
    parts, truth, t = [], [], 0.0
    for k in range(n_utterances):
        gap = int(rng.uniform(*silence_s) * SAMPLE_RATE)
        parts.append(noise * rng.standard_normal(gap).astype(np.float32))
        t += gap / SAMPLE_RATE
        n = int(rng.uniform(*speech_s) * SAMPLE_RATE)
        voice = speech.make_voice("FM"[k % 2], rng)
        wave = speech.synthesize(n, float(rng.uniform(1.5, 4.5)), voice, rng)
        parts.append(wave + noise * rng.standard_normal(n).astype(np.float32))
        truth.append((t, t + n / SAMPLE_RATE))
        t += n / SAMPLE_RATE
    parts.append(noise * rng.standard_normal(int(silence_s[0] * SAMPLE_RATE)).astype(np.float32))
    return np.concatenate(parts).astype(np.float32), truth
