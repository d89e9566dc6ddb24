"""How well Silero VAD (koemo.inference.segments) finds utterance boundaries on synthetic
speech with known boundaries: 8 recordings of 5 utterances (`koemo.synth.recording`), at the
default `segments:` settings and at threshold 0.25. A recording counts as found when the VAD
gives exactly its utterances, each boundary within 0.3 s of the truth.

    .venv/bin/python -m benchmarks.vad_boundaries [--out benchmarks/results/vad-boundaries.json]

Synthetic speech is not real speech to Silero: these numbers say what the settings do on this
corpus, not on real recordings. No timing here: the result is deterministic.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RECORDINGS, UTTERANCES, TOLERANCE_S = 8, 5, 0.3
SETTINGS = {"default": {}, "low_threshold": {"threshold": 0.25}}


def boundary_errors(found: list, truth: list) -> list[float] | None:
    """|start error| and |end error| of every utterance, or None when the counts differ."""
    if len(found) != len(truth):
        return None
    return [abs(a - b) for (fs, fe), (ts, te) in zip(found, truth) for a, b in ((fs, ts), (fe, te))]


def measure(vad_settings: dict) -> dict:
    from koemo.inference.segments import _Recording, find_utterances, segment_settings
    from koemo.synth.recording import long_recording

    settings = segment_settings({"segments": {"vad": vad_settings}})
    per_recording = []
    for seed in range(1, RECORDINGS + 1):
        wave, truth = long_recording(n_utterances=UTTERANCES, seed=seed)
        found = find_utterances(_Recording(wave, 16000), settings)
        errors = boundary_errors(found, truth)
        end_late = None if errors is None else \
            sum(fe - te for (_, fe), (_, te) in zip(found, truth)) / len(truth)
        per_recording.append({"seed": seed, "true": len(truth), "found": len(found),
                              "max_error_s": None if errors is None else max(errors),
                              "mean_end_late_s": end_late,
                              "within_tolerance": errors is not None and max(errors) <= TOLERANCE_S})
    good = [r for r in per_recording if r["within_tolerance"]]
    return {"vad_settings": vad_settings, "recordings": RECORDINGS, "recordings_found": len(good),
            "max_error_s_of_found": max((r["max_error_s"] for r in good), default=None),
            "min_error_s_of_found": min((r["max_error_s"] for r in good), default=None),
            "per_recording": per_recording}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/vad-boundaries.json")
    args = parser.parse_args(argv)
    result = {"what": f"{RECORDINGS} synthetic recordings of {UTTERANCES} utterances; found = "
                      f"every utterance within {TOLERANCE_S} s of its true boundaries",
              "tolerance_s": TOLERANCE_S,
              **{name: measure(vad) for name, vad in SETTINGS.items()}}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"default: {result['default']['recordings_found']} of {RECORDINGS}; threshold 0.25: "
          f"{result['low_threshold']['recordings_found']} of {RECORDINGS} -> {args.out}")


if __name__ == "__main__":
    main()
