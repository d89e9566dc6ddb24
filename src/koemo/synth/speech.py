"""Speech-like waveforms whose PROSODY carries arousal and nothing else.

Pure numpy/scipy source-filter synthesis, cheap enough for a KEMDy20-sized corpus:

  source   band-limited sawtooth (polyBLEP) at a time-varying pitch f0(t), plus aspiration noise
  filter   three vowels, each a cascade of formant resonators (scaled by the speaker's vocal
           tract), cross-faded syllable by syllable; a spectral-tilt low-pass before them
  envelope syllable-like humps (raised sine) with short pauses, consonant noise bursts at onsets
  level    scaled to a target speech RMS, then a constant background noise floor is added

What arousal A (1-5, the utterance's total arousal) changes, per point above 3:
  pitch level x 2^(3/12) (3 semitones), pitch range +1.5 semitones, loudness +4 dB,
  speaking rate +0.9 syllables/s, brightness (less spectral tilt).
What the speaker changes: base pitch (gender: F ~ 200 Hz, M ~ 115 Hz, +-8% per speaker), formant
scale (F larger), loudness offset. Valence is never an input here, so it is not audible. The
background floor has a fixed absolute level, so loudness survives per-utterance normalisation
(e.g. a mel spectrogram in dB relative to its maximum) as signal-to-noise ratio.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
# Formant frequencies (Hz) and bandwidths of five Korean-ish vowels for an adult male tract.
VOWEL_FORMANTS = {
    "a": (750, 1250, 2600),
    "e": (480, 1850, 2550),
    "i": (300, 2250, 3000),
    "o": (450, 850, 2500),
    "u": (330, 1000, 2350),
}
FORMANT_BANDWIDTHS = (90, 120, 180)
NOISE_FLOOR_RMS = 10 ** (-60 / 20)  # constant background level: loudness differences stay visible
BASE_SPEECH_DBFS = -24.0


@dataclass(frozen=True)
class Voice:
    """What makes one synthetic speaker sound like themselves."""
    base_f0: float        # Hz at arousal 3
    formant_scale: float  # vocal-tract length factor (F voices ~1.15)
    level_db: float       # speaker loudness offset
    breathiness: float    # aspiration noise share of the source


@dataclass(frozen=True)
class Prosody:
    """Arousal-driven prosodic settings of one utterance."""
    f0_factor: float
    f0_range_semitones: float
    gain_db: float
    syllables_per_s: float
    tilt: float           # one-pole low-pass coefficient; lower = brighter


def make_voice(gender: str, rng: np.random.Generator) -> Voice:
    """A speaker: gender sets the base pitch and tract size, the rest varies per speaker."""
    if gender not in ("F", "M"):
        raise ValueError(f"gender must be 'F' or 'M', got {gender!r}")
    base = 200.0 if gender == "F" else 115.0
    scale = 1.15 if gender == "F" else 1.0
    return Voice(base_f0=float(base * rng.uniform(0.92, 1.08)),
                 formant_scale=float(scale * rng.uniform(0.96, 1.04)),
                 level_db=float(rng.uniform(-2.0, 2.0)),
                 breathiness=float(rng.uniform(0.03, 0.08)))


def prosody_for(arousal: float) -> Prosody:
    """The deterministic part of the arousal -> prosody mapping (see module docstring)."""
    delta = float(arousal) - 3.0
    return Prosody(f0_factor=2.0 ** (3.0 * delta / 12.0),
                   f0_range_semitones=max(0.8, 3.0 + 1.5 * delta),
                   gain_db=4.0 * delta,
                   syllables_per_s=max(2.0, 4.2 + 0.9 * delta),
                   tilt=float(np.clip(0.75 - 0.08 * delta, 0.5, 0.9)))


def _syllable_bounds(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Sample indices where syllables start (plus n at the end); lengths jitter +-30%."""
    n_syll = max(1, int(round(n / SAMPLE_RATE * rate)))
    lengths = rng.uniform(0.7, 1.3, n_syll)
    return np.concatenate([[0], np.round(np.cumsum(lengths) / lengths.sum() * n)]).astype(np.int64)


# Syllable hump shape, tabulated once: a raised sine with flattened shoulders.
_HUMP = (np.sin(np.pi * np.linspace(0.0, 1.0, 1024)) ** 0.6).astype(np.float32)
# Envelope and pitch change slowly: compute them once per 1 ms block (16 samples), not per sample.
CONTROL = 16


def _control_points(n: int) -> np.ndarray:
    """Sample index at the centre of each 1 ms control block."""
    return np.minimum(np.arange(0, n, CONTROL) + CONTROL // 2, n - 1)


def _per_sample(control: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(control.astype(np.float32), CONTROL)[:n]


def _envelope(n: int, bounds: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample amplitude (one hump per syllable, ~12% silent pauses) and syllable id."""
    lengths = np.diff(bounds)
    syll = np.repeat(np.arange(len(lengths)), lengths)
    points = _control_points(n)
    at = syll[points]
    pos = (points - bounds[at]) / np.maximum(lengths[at] - 1, 1)
    voiced = rng.random(len(lengths)) > 0.12
    voiced[0] = voiced[-1] = True  # speech at both ends: the segment was cut around speech
    strength = rng.uniform(0.6, 1.0, len(lengths)) * voiced
    return _per_sample(_HUMP[(pos * 1023).astype(np.int64)] * strength[at], n), syll


def _pitch_contour(n: int, bounds: np.ndarray, voice: Voice, prosody: Prosody,
                   rng: np.random.Generator) -> np.ndarray:
    """f0 in Hz per sample: declination + one accent per syllable + slow jitter."""
    centres = (bounds[:-1] + bounds[1:]) / 2
    accents = rng.uniform(-0.5, 0.5, len(centres)) + 0.5 - centres / n  # accent + declination
    semitones = prosody.f0_range_semitones * accents + rng.normal(0, 0.3, len(centres))
    curve = np.interp(_control_points(n), centres, semitones)
    return _per_sample(voice.base_f0 * prosody.f0_factor * np.exp2(curve / 12.0), n)


def _polyblep_saw(f0: np.ndarray) -> np.ndarray:
    """Band-limited sawtooth (polyBLEP-corrected) so high pitches do not alias badly."""
    dt = f0 / np.float32(SAMPLE_RATE)
    phase = (np.cumsum(dt, dtype=np.float64) % 1.0).astype(np.float32)
    saw = 2.0 * phase - 1.0
    just_wrapped = phase < dt
    x = phase[just_wrapped] / dt[just_wrapped]
    saw[just_wrapped] -= x + x - x * x - 1.0
    about_to_wrap = phase > 1.0 - dt
    x = (phase[about_to_wrap] - 1.0) / dt[about_to_wrap]
    saw[about_to_wrap] -= x * x + x + x + 1.0
    return saw


def _vowel_sos(vowel: str, voice: Voice) -> np.ndarray:
    """Second-order sections of a cascade of formant resonators for one vowel and speaker."""
    sections = []
    for freq, bw in zip(VOWEL_FORMANTS[vowel], FORMANT_BANDWIDTHS):
        scaled = min(freq * voice.formant_scale, 0.45 * SAMPLE_RATE)
        radius = np.exp(-np.pi * bw / SAMPLE_RATE)
        theta = 2 * np.pi * scaled / SAMPLE_RATE
        a = [1.0, -2.0 * radius * np.cos(theta), radius * radius]
        gain = sum(a)  # unit gain at DC keeps the cascade level stable across vowels
        sections.append([gain, 0.0, 0.0, *a])
    return np.asarray(sections)


def synthesize(n_samples: int, arousal: float, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """`n_samples` of 16 kHz speech-like audio, float32 in [-1, 1], driven by `arousal`."""
    if n_samples < SAMPLE_RATE // 10:
        raise ValueError(f"utterance too short to synthesise: {n_samples} samples")
    prosody = prosody_for(arousal)
    rate = prosody.syllables_per_s * rng.uniform(0.92, 1.08)
    bounds = _syllable_bounds(n_samples, rate, rng)
    env, syll = _envelope(n_samples, bounds, rng)
    f0 = _pitch_contour(n_samples, bounds, voice, prosody, rng)

    noise = rng.standard_normal(2 * n_samples, dtype=np.float32)
    source = _polyblep_saw(f0) + np.float32(voice.breathiness) * noise[:n_samples]
    source = signal.lfilter(np.asarray([1.0 - prosody.tilt], np.float32),
                            np.asarray([1.0, -prosody.tilt], np.float32), source)

    vowels = rng.choice(list(VOWEL_FORMANTS), size=3, replace=False)
    syllable_vowel = rng.integers(0, 3, len(bounds) - 1)[syll]
    filtered = [signal.sosfilt(_vowel_sos(v, voice).astype(np.float32), source) for v in vowels]
    speech = np.choose(syllable_vowel, filtered) * env

    # Consonant-like noise bursts (25 ms, fading) at syllable onsets.
    level = np.sqrt(np.mean(speech ** 2)) + 1e-12
    burst_len = SAMPLE_RATE // 40
    fade = np.linspace(0.5 * level, 0.0, burst_len, dtype=np.float32)
    for onset in bounds[:-1]:
        stop = min(onset + burst_len, n_samples)
        hiss = rng.standard_normal(stop - onset, dtype=np.float32)
        speech[onset:stop] += fade[: stop - onset] * (hiss - 0.95 * np.roll(hiss, 1))

    target_rms = 10 ** ((BASE_SPEECH_DBFS + prosody.gain_db + voice.level_db + rng.normal(0, 1.0)) / 20)
    speech *= np.float32(target_rms / (np.sqrt(np.mean(speech ** 2)) + 1e-12))
    speech += np.float32(NOISE_FLOOR_RMS) * noise[n_samples:]
    return np.clip(speech, -1.0, 32767 / 32768).astype(np.float32)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 PCM (rounded, clipped)."""
    return np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)
