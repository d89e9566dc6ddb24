"""The foundation study's probe (koemo.modeling.probe): EmoBox's Linear-ReLU-Linear head over
pooled states, one layer or a learned layer weighting, its learning-rate schedule, seeded
training with early stopping, and the run directory it writes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from koemo.config.load import with_changes
from koemo.config.foundation import FoundationProbe
from koemo.modeling.probe import LayerChoice, Probe, ProbeData, lr_factor, run_identity, train_probe


def test_layer_choice_weighting_starts_as_the_mean_and_picks_one_layer():
    states = torch.randn(4, 3, 5)
    assert torch.allclose(LayerChoice(3, "weighted")(states), states.mean(dim=1), atol=1e-6)
    assert torch.equal(LayerChoice(3, -1)(states), states[:, 2])
    assert torch.equal(LayerChoice(3, 0)(states), states[:, 0])
    with pytest.raises(ValueError, match="3 hidden states"):
        LayerChoice(3, 3)


def test_probe_is_linear_relu_linear_over_the_concatenated_inputs():
    probe = Probe([(3, 8), (2, 4)], "weighted", 16, 5)
    assert probe.pre_net.in_features == 12 and probe.pre_net.out_features == 16
    assert probe.post_net.out_features == 5
    audio, text = torch.randn(2, 3, 8), torch.randn(2, 2, 4)
    mixed = torch.cat([audio.mean(dim=1), text.mean(dim=1)], dim=-1)
    expected = probe.post_net(torch.relu(probe.pre_net(mixed)))
    assert torch.allclose(probe(audio, text), expected, atol=1e-6)


def test_learning_rate_warms_up_then_decays_to_zero_at_the_last_epoch():
    assert [lr_factor(e, 20, 10) for e in (0, 4, 9, 10, 15, 19)] == [0.1, 0.5, 1.0, 1.0, 0.5, 0.1]
    assert lr_factor(7, 20, 0) == 1.0


def _data(seed: int = 0, valid_signal: bool = False) -> ProbeData:
    rng = np.random.default_rng(seed)
    classes = ["neutral", "sad", "happy", "surprise", "angry"]
    arrays, labels = {}, {}
    for split, n in (("train", 60), ("valid", 20), ("test", 15)):
        y = rng.integers(0, 5, n)
        x = rng.standard_normal((n, 3, 8)).astype(np.float16)
        if split != "valid" or valid_signal:   # layer 2 tells the class; without it on valid,
            x[:, 2, :5] += 3 * np.eye(5, dtype=np.float16)[y]   # fitting train raises its loss
        arrays[split], labels[split] = [x], y
    return ProbeData(arrays, labels, [f"t{i}" for i in range(15)], classes)


def test_training_is_seeded_stops_early_and_writes_a_koemo_run(tiny_config, tmp_path):
    cfg = with_changes(tiny_config, {"reproduce": {"foundation": {}}})
    settings = FoundationProbe(epochs=30, warmup_epochs=0, lr=5e-2, patience=2, hidden=16)
    first = train_probe(tmp_path / "a", _data(), settings, 3, cfg, record={"identity": "x"})
    second = train_probe(tmp_path / "b", _data(), settings, 3, cfg, record={"identity": "x"})
    predictions = [pd.read_parquet(tmp_path / d / "test_predictions.parquet") for d in "ab"]
    pd.testing.assert_frame_equal(*predictions)
    log = pd.read_csv(tmp_path / "a" / "log.csv")
    best = int(log["valid_loss"].idxmin())
    assert len(log) < 30 and len(log) == best + 1 + 2          # two epochs without improvement
    assert first["epochs_trained"] == len(log) and first["checkpoint"] == "best"
    assert first["accuracy"] == second["accuracy"]
    learned = train_probe(tmp_path / "c", _data(valid_signal=True), settings, 3, cfg)
    assert learned["accuracy"] > 0.6            # the signal in layer 2 (chance: 0.2)
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["seed"] == 3 and record["versions"]["torch"] and record["identity"] == "x"
    assert (tmp_path / "a" / "best" / "model.safetensors").is_file()
    assert run_identity(tmp_path / "a") == "x"
    assert set(predictions[0].columns) >= {"segment_id", "true", "pred", "prob_neutral"}
