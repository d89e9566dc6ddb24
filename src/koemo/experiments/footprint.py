"""How much device memory one training run takes, and how many runs fit on one device at once
(`reproduce.runs_per_device`).

A run's footprint, at the config's shapes (float32, the paper's precision; mixed precision
only makes it smaller):
- weights (trainable and frozen), gradients and Adam's two moments of the trainable ones;
- activations autograd keeps for one training batch: the inputs; per token and transformer
  layer the projections, norms, feed-forward and dropout outputs, plus the attention
  probabilities (the math attention path keeps them); the recurrent layers' gates and states;
  the audio extractor's convolution outputs (checked against what autograd really keeps on the
  CPU in tests/test_runs_per_device.py);
- the stage's data when `train.resident` puts it on the device (float16 features, KoBERT
  states, frozen classifier inputs), each worker holding its own copy;
- each worker process's own CUDA context and allocator slack.
An estimate meant to err high: `auto` must never pick a count that runs out of memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from koemo.config.load import text_input_dim
from koemo.config.schema import AudioModel, Config, Stage

if TYPE_CHECKING:
    import torch

CUDA_CONTEXT_BYTES = 768 << 20      # a process's CUDA context, cuBLAS/cuDNN workspaces, slack
FLOAT_BYTES = 4
MAX_RUNS_PER_DEVICE = 8
MEMORY_SHARE = 0.8                  # of the device's free memory the runs may take together


def parameter_counts(cfg: Config, stage: Stage) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of the stage's model, built on the meta device
    (no memory, no weights drawn). The classifier counts the paper's attention+LSTM head."""
    import torch

    from koemo.modeling.models import (AttentionLSTMHead, AudioRegressor, TextRegressor,
                                       num_classes)

    models, fixes = cfg.models, cfg.fixes
    with torch.device("meta"):
        if stage == "audio":
            return _count(AudioRegressor(models, fixes)), 0
        if stage == "text":
            return _count(TextRegressor(models, fixes)), 0
        head = AttentionLSTMHead()
        head.build_head(models, fixes, num_classes(cfg.data), "sdpa")
        return _count(head), _count(AudioRegressor(models, fixes)) + _count(TextRegressor(models, fixes))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sequence_length(cfg: Config, stage: Stage) -> int:
    """Time steps of a padded batch: audio frames, text tokens, or both (the classifier)."""
    frames, tokens = int(cfg.features.max_frames), int(cfg.text.max_length)
    return {"audio": frames, "text": tokens, "multimodal": frames + tokens}[stage]


def activation_bytes(cfg: Config, stage: Stage) -> int:
    """Bytes autograd keeps for one training batch of the stage (see the module doc)."""
    spec, d_model = cfg.models.stage(stage), int(cfg.models.d_model)
    steps, batch = sequence_length(cfg, stage), int(cfg.train.stage(stage).batch_size)
    # attention: scores, probabilities, their dropout mask and the dropped probabilities
    per_layer = 10 * d_model + 3 * int(spec.inner_dim) + 4 * int(spec.num_heads) * steps
    gates = 4 if stage == "multimodal" else 3            # LSTM or GRU, two layers
    # The CPU's step-by-step RNN keeps each step's gates before and after their activation.
    rnn = 2 * (2 * gates + 2) * int(spec.rnn_hidden)
    inputs = text_input_dim(cfg.models) if stage == "text" else d_model
    per_token = int(spec.n_layers) * per_layer + rnn + inputs
    if isinstance(spec, AudioModel) and (spec.frontend or "mel") == "mel":
        c1, c2 = spec.conv_channels
        n_mels = int(cfg.features.n_mels)
        per_token += 2 * (2 * c1 * n_mels // 2 + 2 * c2 * n_mels // 4) + 2 * n_mels
    return batch * steps * per_token * FLOAT_BYTES


def data_bytes(cfg: Config, stage: Stage, rows: int) -> int:
    """The stage's inputs on the device for `rows` utterances (augmented copies counted as
    rows): float16 mel+delta, KoBERT states, or the classifier's cached frozen outputs."""
    frames, tokens = int(cfg.features.max_frames), int(cfg.text.max_length)
    audio = rows * frames * 2 * int(cfg.features.n_mels) * 2
    text = rows * tokens * text_input_dim(cfg.models) * 2
    if stage == "audio":
        return audio
    if stage == "text":
        return text
    return rows * (frames + tokens) * (int(cfg.models.d_model) * 2 + 1)


def run_footprint_bytes(cfg: Config, stage: Stage, rows: int = 0) -> int:
    """Device memory of one training run of `stage` (`rows`: utterances it holds resident)."""
    trainable, frozen = parameter_counts(cfg, stage)
    model_state = (trainable * 4 + frozen) * FLOAT_BYTES     # weights, gradients, Adam m and v
    return model_state + activation_bytes(cfg, stage) + data_bytes(cfg, stage, rows) \
        + CUDA_CONTEXT_BYTES


def runs_that_fit(free_bytes: int, footprint_bytes: int, cap: int = MAX_RUNS_PER_DEVICE) -> int:
    """How many runs of `footprint_bytes` fit together in MEMORY_SHARE of `free_bytes`
    (at least 1: one run is what training did before, whatever the estimate says)."""
    return max(1, min(int(cap), int(free_bytes * MEMORY_SHARE) // max(1, int(footprint_bytes))))


def parse_runs_per_device(setting: int | str | None) -> int | None:
    """`reproduce.runs_per_device`: auto (None) or a positive count (the schema's range)."""
    return None if setting in (None, "auto") else int(setting)


def workdir_rows(workdir: str | Path | None, cfg: Config) -> int:
    """Rows a run may hold resident: the prepared table's utterances, doubled for augmented
    copies when augmentation is on (minority classes get up to three each); 0 unprepared or
    with train.resident: false (the data then stays on the host)."""
    path = Path(workdir) / "utterances.parquet" if workdir is not None else None
    if path is None or not path.is_file() or cfg.train.resident in (False, "false"):
        return 0
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    return rows * (2 if cfg.augment.enabled else 1)
