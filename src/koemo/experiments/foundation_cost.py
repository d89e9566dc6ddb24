"""What the foundation study costs, for `koemo plan --summary`: its runs, and the forward passes
of its upstreams over the corpus, in floating-point operations and estimated GPU-minutes.

The upstreams dominate: each one reads every utterance of the workdir once (the pooled store;
a zero-shot model likewise, once), while a probe over pooled states trains in seconds. The
operations of one forward pass come from the model's shape in its config.json (a local
directory, the hub cache, or fetched from the hub: a few kB; offline and not cached: unknown):

- a transformer layer over T frames: 2 x (4 d^2 + 2 d f) per frame (the four attention
  projections and the two feed-forward matrices, d = width, f = feed-forward width) plus
  4 T d for the attention scores and their weighted sum;
- wav2vec2-family convolutions: 2 x in x out x kernel per output step of each layer, the
  steps following its strides from 16 kHz; frames at 50 per second;
- Whisper: 30 s of log-mel whatever the utterance's length (1500 encoder frames; the study
  keeps only the utterance's, but the encoder computes all of them);
- text: `text_max_length` tokens per transcript (an upper bound).
- FunASR's emotion2vec+ (config.yaml `model: Emotion2vec`): its convolution spec (as
  wav2vec2's), then prenet + main blocks of width `embed_dim`, feed-forward `mlp_ratio` times
  that, 50 frames a second; SenseVoice-Small (`model: SenseVoiceSmall`): SAN-M blocks
  (`num_blocks` + `tp_blocks`, width `output_size`, feed-forward `linear_units`) over its
  stacked fbank frames (100 a second / `lfr_n`, plus its 4 query frames); the CTC output layer
  and SAN-M's memory convolution are left out.
GPU-minutes = operations / ASSUMED_TFLOPS: an assumed sustained float32
rate, not a measurement; multiply by your own measured rate to replace it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from koemo.config.schema import Config

ASSUMED_TFLOPS = 20.0          # float32, sustained: an assumption (about 30% of an H100's peak)
FRAMES_PER_SECOND = 50
SAMPLE_RATE = 16000
WHISPER_SECONDS = 30.0
# Without a workdir: KEMDy20's kept five-class rows (docs/kemdy20.md, "Plan sizes": 9,161 +
# 1,018 + 2,545) at its mean length, 6.0 s (docs/kemdy20.md).
EXPECTED_UTTERANCES = 12_724
EXPECTED_MEAN_SECONDS = 6.0


def model_config(name: str, workdir: Path | None) -> dict | None:
    """config.json of an upstream (None: not a transformers model, or not reachable)."""
    from koemo.errors import KoemoInputError
    from koemo.experiments.foundation_plan import STANDIN, TINY, TINY_DIR, is_hub_id
    from koemo.text.standin import STANDIN_DIRNAME

    path = Path(name).expanduser()
    if name.startswith(TINY) and workdir is not None:
        path = workdir / TINY_DIR / name[len(TINY):]
    elif name == STANDIN and workdir is not None:
        path = workdir / STANDIN_DIRNAME
    elif is_hub_id(name):
        from koemo.text.tokenizer import fetch_hub_files
        try:
            path = fetch_hub_files(name, ["config.json"], what="upstream config")
        except KoemoInputError:               # offline, or a FunASR repository (config.yaml)
            return funasr_config(name, path)
    config = path / "config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else funasr_config(name, path)


def funasr_config(name: str, path: Path) -> dict | None:
    """config.yaml of a FunASR model (emotion2vec+, SenseVoice): a directory's, or the hub's
    (that one file, never the weights)."""
    import yaml

    from koemo.errors import KoemoInputError
    from koemo.text.tokenizer import looks_like_hub_id
    from koemo.upstreams.funasr_loader import CONFIG_FILE

    if not (path / CONFIG_FILE).is_file() and looks_like_hub_id(name) and not path.exists():
        from koemo.text.tokenizer import fetch_hub_files
        try:
            path = fetch_hub_files(name, [CONFIG_FILE], what="upstream config")
        except KoemoInputError:
            return None
    config = path / CONFIG_FILE
    return yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None


def _layers(width: int, ffn: int, layers: int, frames: float) -> float:
    return layers * frames * (2 * (4 * width * width + 2 * width * ffn) + 4 * frames * width)


def _conv_flops(layers: Iterable[tuple[int, int, int]], seconds: float) -> float:
    """A wav2vec2-style convolution stack ((out, kernel, stride) per layer) over 16 kHz audio."""
    rate, channels, convs = float(SAMPLE_RATE), 1, 0.0
    for out, kernel, stride in layers:
        rate /= int(stride)
        convs += 2 * rate * seconds * channels * int(out) * int(kernel)
        channels = int(out)
    return convs


def conv_spec(spec: str) -> list[tuple[int, int, int]]:
    """emotion2vec's `feature_encoder_spec` ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...") read
    without eval: only lists, tuples, whole numbers, + and *."""
    import ast

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(n) for n in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"feature_encoder_spec: unexpected {ast.dump(node)[:40]}")

    return [tuple(layer) for layer in value(ast.parse(spec, mode="eval").body)]


def _funasr_flops(config: dict, seconds: float) -> float | None:
    if config.get("model") == "Emotion2vec":
        conf = config["model_conf"]
        audio, width = conf["modalities"]["audio"], int(conf["embed_dim"])
        blocks = int(conf["depth"]) + int(audio["prenet_depth"])
        return _conv_flops(conv_spec(audio["feature_encoder_spec"]), seconds) + _layers(
            width, int(width * float(conf["mlp_ratio"])), blocks, seconds * FRAMES_PER_SECOND)
    if config.get("model") == "SenseVoiceSmall":
        enc, lfr = config["encoder_conf"], int(config.get("frontend_conf", {}).get("lfr_n", 6))
        frames = seconds * 100.0 / lfr + 4
        return _layers(int(enc["output_size"]), int(enc["linear_units"]),
                       int(enc["num_blocks"]) + int(enc.get("tp_blocks", 0)), frames)
    return None


def forward_flops(config: dict, seconds: float, tokens: int) -> float | None:
    """Operations of one forward pass over `seconds` of audio (or `tokens` of text)."""
    if "model" in config:                                 # FunASR's config.yaml
        return _funasr_flops(config, seconds)
    kind = config.get("model_type", "")
    if kind == "whisper":
        d, frames = int(config["d_model"]), WHISPER_SECONDS * FRAMES_PER_SECOND
        convs = 2 * frames * 2 * int(config["num_mel_bins"]) * d * 3 + 2 * frames * d * d * 3
        return convs + _layers(d, int(config["encoder_ffn_dim"]), int(config["encoder_layers"]),
                               frames)
    if "conv_dim" in config:                              # wav2vec2, HuBERT, WavLM, XLS-R
        convs = _conv_flops(zip(config["conv_dim"], config["conv_kernel"], config["conv_stride"]),
                            seconds)
        return convs + _layers(int(config["hidden_size"]), int(config["intermediate_size"]),
                               int(config["num_hidden_layers"]), seconds * FRAMES_PER_SECOND)
    if "hidden_size" in config and "num_hidden_layers" in config:     # text encoders
        return _layers(int(config["hidden_size"]), int(config["intermediate_size"]),
                       int(config["num_hidden_layers"]), tokens)
    return None


def corpus_sizes(workdir: Path | None) -> tuple[int, float, str]:
    """(utterances, seconds in all, where from) the upstreams read."""
    if workdir is None:
        return (EXPECTED_UTTERANCES, EXPECTED_UTTERANCES * EXPECTED_MEAN_SECONDS,
                "expected KEMDy20 size")
    from koemo.config.workdir import load_utterances

    combined = workdir / "cross"
    where = combined if (combined / "utterances.parquet").is_file() else workdir
    table = load_utterances(where)
    return len(table), float(table["duration"].sum()), str(where)


def upstream_rows(cfg: Config, workdir: Path | None) -> list[dict]:
    """One row per distinct upstream / zero-shot model: its passes over the corpus."""
    from koemo.experiments.foundation_plan import study_of

    study = study_of(cfg)
    utterances, seconds, _ = corpus_sizes(workdir)
    passes = [*((n, "audio") for n in study.audio), *((n, "text") for n in study.text),
              *((p.audio, "audio") for p in study.fused), *((p.text, "text") for p in study.fused),
              *((e.model, f"zero-shot ({e.kind})") for e in study.zero_shot)]
    rows = []
    for name, role in dict.fromkeys(passes):
        config = model_config(name, workdir)
        mean = seconds / max(1, utterances)
        per = forward_flops(config, mean, study.text_max_length) if config else None
        total = per * utterances if per is not None else None
        rows.append({"upstream": name, "role": role, "utterances": utterances,
                     "TFLOP": round(total / 1e12, 1) if total is not None else None,
                     "GPU-min (estimate)": round(total / 1e12 / ASSUMED_TFLOPS / 60, 1)
                     if total is not None else None})
    return rows


def study_cost(cfg: Config, workdir: str | Path | None = None) -> dict:
    """{"runs": probe / zero-shot / majority runs per table kind, "upstreams": upstream_rows,
    "notes": [...]}: the study's part of `koemo plan --summary`."""
    from koemo.experiments.foundation import probe_systems
    from koemo.experiments.foundation_plan import contexts, study_of, study_seeds
    from koemo.experiments.plan import splits_for

    study = study_of(cfg)
    workdir = Path(workdir) if workdir is not None else None
    if workdir is None:      # expected: KEMDy20's folds (a KEMDy19 copy adds three tables)
        tables, splits = ["kemdy20"], splits_for(["cv5"], cfg.reproduce.folds)
    else:
        combined = workdir / "cross" if (workdir / "cross" / "utterances.parquet").is_file() else None
        found = contexts(cfg, workdir, combined)
        tables, splits = [c.table for c in found], [s for c in found for s in c.splits]
    probes = sum(len(probe_systems(cfg)) * len(study_seeds(cfg, s)) for s in splits)
    utterances, seconds, source = corpus_sizes(workdir)
    upstreams = upstream_rows(cfg, workdir)
    known = [row["GPU-min (estimate)"] for row in upstreams if row["GPU-min (estimate)"] is not None]
    return {"tables": tables, "splits": len(splits), "probe runs": probes,
            "zero-shot runs": 2 * len(study.zero_shot) * len(splits), "majority runs": len(splits),
            "upstreams": upstreams, "GPU-min (estimate)": round(sum(known), 1) if known else None,
            "upstreams sized": len(known),
            "notes": [f"upstreams read {utterances:,} utterances ({seconds / 3600:.1f} h of audio; "
                      f"{source}) once each; a probe over pooled states trains in seconds."
                      + (" With a KEMDy19 copy (--kemdy19) the study adds KEMDy19's folds and "
                         "both directions: pass --workdir of a prepared one for those counts."
                         if workdir is None else ""),
                      f"GPU-min = operations / {ASSUMED_TFLOPS:g} TFLOP/s, an assumed sustained "
                      "float32 rate (not measured); unknown where the model's config file "
                      "(transformers' JSON, FunASR's YAML) is not at hand (offline)."]}
