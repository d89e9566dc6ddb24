"""Augmentation plan (minority classes x3) and the frequency mask, faithful and fixed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from koemo.dataset.augment import frequency_mask, plan_augmentation
from koemo.config.load import CONFIG_DIR, load_config, with_changes
from koemo.errors import KoemoInputError

# The paper's train split before augmentation: 9,161 rows, minority 115 + 98 + 81 = 294.
PAPER_TRAIN_COUNTS = {"neutral": 8017, "happy": 850, "surprise": 115, "angry": 98, "sad": 81}


@pytest.fixture(scope="module")
def faithful_cfg():
    return load_config("paper")


@pytest.fixture(scope="module")
def fixed_cfg():
    return load_config("corrected")


@pytest.fixture(scope="module")
def paper_train():
    labels = [label for label, n in PAPER_TRAIN_COUNTS.items() for _ in range(n)]
    labels = np.random.default_rng(0).permutation(labels)
    return pd.DataFrame({"segment_id": [f"Sess01_script01_User001F_{i:05d}" for i in range(len(labels))],
                         "label": labels, "text": "가나다", "arousal": 3.0})


def test_plan_counts_match_the_paper(paper_train, faithful_cfg):
    plan = plan_augmentation(paper_train, faithful_cfg, seed=1)
    assert len(paper_train) == 9161 and len(plan) == 10043
    counts = plan["aug_kind"].value_counts().to_dict()
    assert counts == {"orig": 9161, "swap_text": 294, "mask_audio": 294, "delete_text_mask_audio": 294}
    assert set(plan.columns) == set(paper_train.columns) | {"aug_kind", "aug_seed"}
    assert plan["aug_seed"].dtype == np.int64
    copies = plan[plan["aug_kind"] != "orig"]
    assert set(copies["label"]) == {"surprise", "angry", "sad"}
    pd.testing.assert_frame_equal(plan.iloc[:9161][paper_train.columns], paper_train)


def test_faithful_plan_reuses_seed_824_everywhere(paper_train, faithful_cfg):
    plan = plan_augmentation(paper_train, faithful_cfg, seed=7)
    assert (plan["aug_seed"] == 824).all()


def test_fixed_plan_seeds_are_distinct_and_deterministic(paper_train, fixed_cfg):
    plan = plan_augmentation(paper_train, fixed_cfg, seed=1)
    assert plan["aug_seed"].is_unique and (plan["aug_seed"] >= 0).all()
    again = plan_augmentation(paper_train, fixed_cfg, seed=1)
    pd.testing.assert_series_equal(plan["aug_seed"], again["aug_seed"])
    other = plan_augmentation(paper_train, fixed_cfg, seed=2)
    assert not np.isin(plan["aug_seed"], other["aug_seed"]).any()


def test_seed_per_sample_switch_reads_false_as_the_original(paper_train, faithful_cfg, fixed_cfg):
    assert faithful_cfg.fixes.seed_per_sample is False
    assert fixed_cfg.fixes.seed_per_sample is True
    flipped = load_config("paper", ["fixes.seed_per_sample=true"])
    pd.testing.assert_series_equal(plan_augmentation(paper_train, flipped, seed=1)["aug_seed"],
                                   plan_augmentation(paper_train, fixed_cfg, seed=1)["aug_seed"])
    # the fix draws a seed per row; the original one seed (augment.seed) for every row
    assert plan_augmentation(paper_train, fixed_cfg, seed=1)["aug_seed"].nunique() > 1
    assert plan_augmentation(paper_train, faithful_cfg, seed=1)["aug_seed"].nunique() == 1


def test_the_old_reseed_switch_name_is_a_clear_error(tmp_path):
    from koemo.config.load import ConfigError

    old = tmp_path / "old.yaml"
    old.write_text("base: " + str(CONFIG_DIR / "paper.yaml") + "\nfixes:\n  reseed_every_call: true\n",
                   encoding="utf-8")
    for name, overrides in ((old, []), ("paper", ["fixes.reseed_every_call=false"])):
        with pytest.raises(ConfigError, match="renamed fixes.seed_per_sample.*opposite meaning"):
            load_config(name, overrides)


def test_disabled_augmentation_keeps_only_originals(paper_train, faithful_cfg):
    cfg = with_changes(faithful_cfg, {"augment": {"enabled": False}})
    plan = plan_augmentation(paper_train, cfg)
    assert len(plan) == 9161 and (plan["aug_kind"] == "orig").all()


def spectrogram(n_frames: int = 40, total: int = 64, n_mels: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    feat = np.zeros((2, total, n_mels), dtype=np.float32)
    feat[0, :n_frames] = rng.uniform(-80, 0, (n_frames, n_mels))
    feat[1, :n_frames] = rng.normal(0, 2, (n_frames, n_mels))
    return feat


def masked_band(before: np.ndarray, after: np.ndarray, channel: int) -> np.ndarray:
    """Mel bins where any frame changed."""
    return np.flatnonzero((before[channel] != after[channel]).any(axis=0))


@pytest.mark.parametrize("seed", range(20))
def test_mask_stays_inside_its_bounds(seed, faithful_cfg):
    aug = faithful_cfg.augment
    feat = spectrogram(n_frames=40)
    out = frequency_mask(feat, 40, np.random.default_rng(seed), aug)
    assert out is not feat and out.dtype == feat.dtype
    bins = masked_band(feat, out, 0)
    assert bins.size and np.array_equal(bins, np.arange(bins[0], bins[-1] + 1))   # one band
    assert bins[0] < 128 and (bins.size == 128 - bins[0] or 10 <= bins.size < 30)
    band = out[:, :40, bins[0]:bins[-1] + 1]
    assert band.min() >= -80.0 and band.max() <= 0.0
    assert not out[:, 40:].any()                                  # padding frames untouched
    keep = np.setdiff1d(np.arange(128), bins)
    np.testing.assert_array_equal(out[:, :, keep], feat[:, :, keep])
    np.testing.assert_array_equal(masked_band(feat, out, 1), bins)   # faithful: delta too


def test_max_start_limits_the_band_start(faithful_cfg):
    aug = faithful_cfg.augment.model_copy(update={"freq_mask_max_start": 3})
    for seed in range(10):
        feat = spectrogram()
        bins = masked_band(feat, frequency_mask(feat, 40, np.random.default_rng(seed), aug), 0)
        assert bins[0] < 3


def test_spectrogram_only_leaves_delta_alone(faithful_cfg):
    aug, feat = faithful_cfg.augment, spectrogram()
    fixed = frequency_mask(feat, 40, np.random.default_rng(5), aug, spectrogram_only=True)
    faithful = frequency_mask(feat, 40, np.random.default_rng(5), aug)
    np.testing.assert_array_equal(fixed[1], feat[1])
    np.testing.assert_array_equal(fixed[0], faithful[0])
    assert not np.array_equal(faithful[1], feat[1])


def test_faithful_seeds_give_every_sample_the_same_mask(paper_train, faithful_cfg, fixed_cfg):
    aug = faithful_cfg.augment

    def masks(plan):
        rows = plan[plan["aug_kind"] == "mask_audio"].head(3)
        out = []
        for k, seed in enumerate(rows["aug_seed"]):
            feat = spectrogram(seed=k)
            masked = frequency_mask(feat, 40, np.random.default_rng(int(seed)), aug)
            bins = masked_band(feat, masked, 0)
            out.append((bins[0], bins.size, masked[0, :40, bins[0]].copy()))
        return out

    same = masks(plan_augmentation(paper_train, faithful_cfg))
    assert all(m[0] == same[0][0] and m[1] == same[0][1] for m in same)
    assert all(np.array_equal(m[2], same[0][2]) for m in same)
    varied = masks(plan_augmentation(paper_train, fixed_cfg))
    assert not np.array_equal(varied[0][2], varied[1][2])
    assert not np.array_equal(varied[1][2], varied[2][2])


# Survivors of mutation testing (benchmarks/results/2026-12-02-mutation-augment.json), named by
# their mutmut ids (x_<function>__mutmut_<n>).

def test_mask_draws_follow_the_documented_order(faithful_cfg):
    """start in [0, max_start), width in [w0, w1), a sorted dB pair inside the range, then the
    noise [2, n_frames, stop - start]: the device-resident data replays exactly these draws.
    draw_frequency_mask 11 (start from 1), 24 (dB high dropped: noise up to +1 dB), 39 (noise
    of 3 channels)."""
    from koemo.dataset.augment import draw_frequency_mask
    aug = faithful_cfg.augment.model_copy(update={"freq_mask_db_range": [-2.0, -1.0]})
    for seed in range(5):
        start, stop, noise = draw_frequency_mask(128, 7, np.random.default_rng(seed), aug)
        rng = np.random.default_rng(seed)
        want_start = int(rng.integers(0, 128))
        want_stop = min(want_start + int(rng.integers(10, 30)), 128)
        lo, hi = np.sort(rng.uniform(-2.0, -1.0, size=2))
        assert (start, stop) == (want_start, want_stop)
        np.testing.assert_array_equal(noise, rng.uniform(lo, hi, size=(2, 7, stop - start)))
        assert noise.min() >= -2.0 and noise.max() <= -1.0
    # The only start below max_start = 1 is bin 0.
    first = faithful_cfg.augment.model_copy(update={"freq_mask_max_start": 1})
    assert all(draw_frequency_mask(64, 3, np.random.default_rng(s), first)[0] == 0
               for s in range(5))


@pytest.mark.parametrize("shape", [(3, 40, 128), (2, 40), (1, 40, 128)])
def test_frequency_mask_refuses_anything_but_two_channels_of_frames_by_bins(shape, faithful_cfg):
    """frequency_mask 2 (`or` -> `and`), 8 (no message)."""
    with pytest.raises(KoemoInputError, match=r"expected features \[2, T, F\]"):
        frequency_mask(np.zeros(shape, dtype=np.float32), 10, np.random.default_rng(0),
                       faithful_cfg.augment)


def test_frequency_mask_cuts_n_frames_at_the_feature_length(faithful_cfg):
    """More frames asked for than the features hold (T = 40 < F = 128 < 100): the mask covers
    the 40. frequency_mask 15 (cut at F instead of T)."""
    feat = spectrogram(n_frames=40, total=40)
    out = frequency_mask(feat, 100, np.random.default_rng(0), faithful_cfg.augment)
    bins = masked_band(feat, out, 0)
    assert bins.size and (out[0, :, bins] != feat[0, :, bins]).all()


def test_derived_seed_is_pinned():
    """The fixed plan's seeds are recorded with runs; they must not change between versions.
    derived_seed 10 (big-endian bytes), 18 (mask 2**63 - 2 clears the low bit)."""
    from koemo.dataset.augment import derived_seed
    assert derived_seed(824, "Sess01_script01_User001F_00000", "swap_text") == 7312812941007043019
    assert derived_seed(824, "Sess01_script01_User001F_00001", "mask_audio") == 2593661842896907720


@pytest.mark.parametrize("missing", ["label", "segment_id"])
def test_plan_needs_both_label_and_segment_id(missing, paper_train, fixed_cfg):
    """plan_augmentation 2 (`or` -> `and`: one missing column passed), 9 (no message)."""
    with pytest.raises(KoemoInputError, match="the train table needs columns label and segment_id"):
        plan_augmentation(paper_train.drop(columns=missing), fixed_cfg)


def test_plan_rows_are_numbered_once_each(paper_train, fixed_cfg):
    """plan_augmentation 30/32/33 (`ignore_index=True` dropped): a copy would keep its
    original's index label, so `.loc` on a label would return the original and its copies."""
    plan = plan_augmentation(paper_train, fixed_cfg)
    assert plan.index.equals(pd.RangeIndex(len(plan)))
    assert plan["aug_seed"].dtype == np.int64
