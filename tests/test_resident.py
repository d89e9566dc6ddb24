"""Device-resident training data (train.resident): the batches equal the DataLoader path's bit
for bit (features with frequency masks and the dB-floor fix, KoBERT states, frozen outputs),
training gives the same run, and `auto` falls back to the DataLoader when the data does not fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from koemo.dataset.augment import draw_frequency_mask
from koemo.config.load import load_config
from koemo.modeling import data as D
from koemo.modeling import resident as R
from koemo.modeling.train import train_stage
from koemo.modeling.stage import build_stage, make_loader
from tests.builders import regressors, sections

CPU = torch.device("cpu")
FAITHFUL = ["train.resident=false"]
CORRECTED = FAITHFUL + ["fixes.db_floor_padding=true", "fixes.mask_spectrogram_only=true",
                        "fixes.seed_per_sample=true"]


@pytest.fixture(scope="module")
def workdir(module_workdir):
    return module_workdir


def both_paths(stage, workdir, cfg, run_dir, shuffle_seed):
    """(DataLoader batches, resident batches) of the train and valid splits."""
    model = None
    if stage == "multimodal":
        from koemo.modeling.fusion import build_classifier
        from koemo.modeling.models import AudioRegressor, TextRegressor
        torch.manual_seed(0)
        model = build_classifier("attention_lstm", *sections(cfg), *regressors(cfg))
    job = build_stage(stage, workdir, cfg, 1, run_dir=run_dir, device=CPU, model=model,
                      splits=("train", "valid"))
    on_device = R.make_resident(job.datasets, CPU)
    out = {}
    for split, seed in (("train", shuffle_seed), ("valid", None)):
        loaded = list(make_loader(job.datasets[split], 8, CPU, 0, shuffle_seed=seed))
        resident = list(make_loader(on_device[split], 8, CPU, 0, shuffle_seed=seed))
        out[split] = (loaded, resident)
    return job, out


def assert_same_batches(loaded, resident):
    assert len(loaded) == len(resident) > 1
    for a, b in zip(loaded, resident):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("fixes", [FAITHFUL, CORRECTED], ids=["faithful", "corrected"])
@pytest.mark.parametrize("stage", ["audio", "text"])
def test_regressor_batches_equal_the_dataloader_path(stage, fixes, workdir, tmp_path):
    cfg = load_config("tiny", fixes)
    job, splits = both_paths(stage, workdir, cfg, tmp_path, shuffle_seed=7)
    kinds = set(job.rows["train"]["aug_kind"])
    assert {"mask_audio", "delete_text_mask_audio", "swap_text"} <= kinds   # masks are exercised
    for loaded, resident in splits.values():
        assert_same_batches(loaded, resident)


def test_masked_rows_differ_from_their_source_rows(workdir, tmp_path):
    """The mask is really applied on the resident path (not just equal by both skipping it)."""
    cfg = load_config("tiny", FAITHFUL)
    job = build_stage("audio", workdir, cfg, 1, run_dir=tmp_path, device=CPU, splits=("train",))
    data = R.make_resident(job.datasets, CPU)["train"]
    kinds = job.rows["train"]["aug_kind"].to_numpy()
    masked = int(np.flatnonzero(kinds == "mask_audio")[0])
    source = int(np.flatnonzero((job.rows["train"]["segment_id"] ==
                                 job.rows["train"]["segment_id"][masked]).to_numpy()
                                & (kinds == "orig"))[0])
    feats = data.batch(torch.tensor([masked, source]))["feats"]
    changed = (feats[0] != feats[1]).any(dim=(0, 1)).nonzero().squeeze(1).tolist()
    frames = int(job.datasets["train"].audio.store.n_frames[job.datasets["train"].audio.index[masked]])
    start, stop, _ = draw_frequency_mask(feats.shape[-1], frames, np.random.default_rng(
        int(job.rows["train"]["aug_seed"][masked])), cfg.augment)
    assert changed == list(range(start, stop)) and stop > start      # exactly its band


def test_multimodal_batches_equal_raw_and_cached(workdir, tmp_path):
    cfg = load_config("tiny", FAITHFUL)
    _, splits = both_paths("multimodal", workdir, cfg, tmp_path, shuffle_seed=3)
    for loaded, resident in splits.values():
        assert_same_batches(loaded, resident)
    frozen = {split: R.ResidentDataset(np.arange(4), CPU,
                                       frozen={"audio_hidden": torch.arange(8.).reshape(4, 2)})
              for split in ("train",)}
    batch = next(iter(make_loader(frozen["train"], 3, CPU, 0)))
    assert batch["audio_hidden"].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert batch["row"].tolist() == [0, 1, 2]


def test_resident_training_gives_the_same_run(workdir, tmp_path):
    logs = {}
    for setting in ("false", "true"):
        cfg = load_config("tiny", [f"train.resident={setting}", "train.audio.epochs=2",
                                   "fixes.eval_attention_dropout_off=true"])
        run = train_stage("audio", workdir, cfg, seed=1, out_dir=tmp_path / setting, progress=False)
        logs[setting] = json.loads((run / "log.json").read_text())
        metrics = json.loads((run / "test_metrics.json").read_text())
        logs[setting].append({k: v for k, v in metrics.items() if isinstance(v, float)})
    for old, new in zip(logs["false"], logs["true"]):
        old.pop("seconds", None), new.pop("seconds", None)
        assert old == new


def test_auto_falls_back_when_the_data_does_not_fit(workdir, tmp_path, monkeypatch):
    cfg = load_config("tiny")
    job = build_stage("audio", workdir, cfg, 1, run_dir=tmp_path, device=CPU)
    need = R.resident_bytes(job.datasets)
    store = job.datasets["train"].audio.store
    row_bytes = int(np.prod(store.array.shape[1:])) * 2
    assert need >= row_bytes * len(set(np.concatenate([d.audio.index for d in job.datasets.values()])))
    monkeypatch.setattr(R, "available_bytes", lambda device: need - 1)
    assert not R.wants_resident("auto", job.datasets, CPU)
    assert R.wants_resident(True, job.datasets, CPU)
    monkeypatch.setattr(R, "available_bytes", lambda device: need)
    assert R.wants_resident("auto", job.datasets, CPU)
    assert not R.wants_resident(False, job.datasets, CPU)
    assert load_config("tiny", ["train.resident=true"]).train.resident is True
    with pytest.raises(Exception, match="train.resident: \"sometimes\" is not allowed"):
        load_config("tiny", ["train.resident=sometimes"])


def test_splits_share_one_copy_of_the_store_rows(workdir, tmp_path):
    cfg = load_config("tiny")
    job = build_stage("multimodal", workdir, cfg, 1, run_dir=tmp_path, device=CPU,
                      model=_fresh_classifier(cfg), cache_frozen=False)
    data = R.make_resident(job.datasets, CPU)
    assert data["train"].audio.base is data["valid"].audio.base is data["test"].audio.base
    assert data["train"].text.states is data["test"].text.states


def _fresh_classifier(cfg):
    from koemo.modeling.fusion import build_classifier
    from koemo.modeling.models import AudioRegressor, TextRegressor
    return build_classifier("attention_lstm", *sections(cfg), *regressors(cfg))


class CountingLoader:
    """A loader that counts how often it is started (each start of a DataLoader draws from its
    shuffle generator and, with workers, starts them)."""

    def __init__(self, batches):
        self.batches, self.starts = batches, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.starts += 1
        return iter(self.batches)


@pytest.mark.parametrize("progress", [False, True])
def test_train_epoch_starts_the_loader_once(progress):
    from koemo.modeling.train import train_epoch
    from koemo.modeling.stage import StageJob

    model = torch.nn.Linear(3, 1)
    job = StageJob("audio", model, {}, {}, lambda m, batch, device: m(batch["x"]).squeeze(1))
    loader = CountingLoader([{"x": torch.ones(2, 3), "target": torch.zeros(2)}] * 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = train_epoch(job, model, loader, optimizer, lambda out, t: ((out - t) ** 2).mean(), CPU,
                       "fp32", progress=progress)
    assert loader.starts == 1 and loss > 0


def test_frozen_output_cache_is_the_same_from_resident_rows(workdir, tmp_path):
    """The multimodal stage writes its frozen-output cache from the resident raw rows when the
    cache is missing; the arrays equal those written through the DataLoader."""
    arrays = {}
    for setting in ("false", "true"):
        cfg = load_config("tiny", [f"train.resident={setting}", "fixes.eval_attention_dropout_off=true"])
        torch.manual_seed(0)
        job = build_stage("multimodal", workdir, cfg, 1, run_dir=tmp_path / setting, device=CPU,
                          model=_fresh_classifier(cfg))
        assert all(isinstance(d, D.FrozenOutputsDataset) for d in job.datasets.values())
        arrays[setting] = {(split, name): np.load(tmp_path / setting / "frozen" / split / f"{name}.npy")
                           for split in D.SPLITS for name in D.FROZEN_ARRAYS}
    assert arrays["false"].keys() == arrays["true"].keys()
    for key, value in arrays["false"].items():
        assert np.array_equal(value, arrays["true"][key]), key


def test_copy_onto_a_device_goes_in_chunks_of_the_right_rows():
    """The GPU path of the copy (chunked, never a second full host copy), run on PyTorch's
    `meta` device here: shapes and dtypes of every chunk, without a GPU."""
    array = np.arange(7 * 2 * 3, dtype=np.float16).reshape(7, 2, 3)
    rows = np.array([0, 2, 3, 6])
    on_meta = R._to_device(array, rows, torch.device("meta"), chunk_bytes=array[0].nbytes)
    assert on_meta.device.type == "meta" and on_meta.shape == (4, 2, 3)
    assert on_meta.dtype == torch.float16
    on_cpu = R._to_device(array, rows, CPU)
    assert torch.equal(on_cpu, torch.from_numpy(array[rows]))
