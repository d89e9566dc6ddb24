"""koemo.inference.hub: push a predictor with its model card, load it back by hub id. The hub client is
faked (no network): create_repo / upload_folder / snapshot_download keep repositories in a
folder, as the hub would."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import soundfile as sf

from koemo.errors import CheckpointError, KoemoInputError
from koemo.inference.hub import hub_offline, shareable_source
from koemo.inference.predictor import Predictor
from koemo.synth.speech import SAMPLE_RATE, make_voice, synthesize
from tests.deadline import HANG_S, within_deadline

REPO = "koemo-test/tiny-predictor"


class FakeHub:
    """Repositories as folders under `root`; records every call."""

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        (self.root / repo_id).mkdir(parents=True, exist_ok=True)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path, **kwargs}))
        target = self.root / repo_id
        if not target.is_dir():
            raise RuntimeError(f"404: {repo_id} does not exist (create_repo first)")
        shutil.copytree(folder_path, target, dirs_exist_ok=True)

    def snapshot_download(self, repo_id, **kwargs):
        self.calls.append(("snapshot_download", {"repo_id": repo_id, **kwargs}))
        source = self.root / repo_id
        if not source.is_dir():
            raise huggingface_hub.errors.RepositoryNotFoundError(f"404: {repo_id}")
        cache = self.root.parent / "cache" / repo_id
        if not cache.is_dir():
            shutil.copytree(source, cache)
        return str(cache)

    def files(self, repo_id) -> set[str]:
        base = self.root / repo_id
        return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    hub = FakeHub(tmp_path / "remote")
    for name in ("create_repo", "upload_folder", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, getattr(hub, name))
    return hub


@pytest.fixture(scope="module")
def predictor(exported_predictor_dir):
    return Predictor.from_checkpoint(exported_predictor_dir)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(3)
    wave = synthesize(int(1.5 * SAMPLE_RATE), 4.0, make_voice("F", rng), rng)
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(path, wave, SAMPLE_RATE)
    return path


def test_push_uploads_the_predictor_with_card_and_metrics(fake_hub, predictor, exported_predictor_dir):
    url = predictor.push_to_hub(REPO, private=True)
    assert url == f"https://huggingface.co/{REPO}"
    (create, create_args), (upload, upload_args) = fake_hub.calls
    assert create == "create_repo" and create_args["private"] is True and create_args["exist_ok"]
    assert upload == "upload_folder" and upload_args["repo_id"] == REPO
    files = fake_hub.files(REPO)
    local = {str(p.relative_to(exported_predictor_dir)) for p in exported_predictor_dir.rglob("*")
             if p.is_file()}
    assert local <= files and files - local == {"README.md", "metrics.json"}
    assert not [f for f in files if f.endswith((".pt", ".pth", ".pkl", ".bin"))]   # no pickles
    remote = fake_hub.root / REPO
    # The uploader's file system is not published; loading does not need those paths.
    manifest = json.loads((remote / "predictor.json").read_text(encoding="utf-8"))
    assert all(not Path(p).is_absolute() and p.startswith("runs/") for p in manifest["sources"].values())
    # The directory itself is untouched.
    assert not (exported_predictor_dir / "README.md").exists()
    # Metrics: the exported runs' test metrics, the classifier's next to the majority baseline.
    metrics = json.loads((remote / "metrics.json").read_text(encoding="utf-8"))
    source = Path(json.loads((exported_predictor_dir / "predictor.json").read_text())["sources"]["multimodal"])
    assert metrics["multimodal"] == json.loads((source.parent / "test_metrics.json").read_text())
    assert set(metrics) == {"audio", "text", "multimodal"}
    card = (remote / "README.md").read_text(encoding="utf-8")
    clf = metrics["multimodal"]
    assert card.startswith("---\nlicense: other\n")
    assert "KEMDy20 is licensed by ETRI" in card and "may carry the corpus licence's terms" in card
    assert f"| accuracy | {clf['accuracy']:.3f} | {clf['baseline']['accuracy']:.3f} |" in card
    assert f"| macro F1 | {clf['macro_f1']:.3f} | {clf['baseline']['macro_f1']:.3f} |" in card
    assert f"majority class (`{clf['baseline']['majority_class']}`)" in card
    assert "tokenizer `kobert` (a folder of this repository)" in card and "stand-in" in card
    assert "split: `paper`" in card and "config: `tiny-predict`" in card
    # tiny is faithful: attention dropout stays on at inference, so the card warns.
    assert "## Inference is a random draw" in card and "eval_attention_dropout_off: false" in card
    assert "| fixes.eval_attention_dropout_off | false |" in card
    assert f'Predictor.from_pretrained("{REPO}")' in card


def test_round_trip_gives_the_same_predictor(fake_hub, predictor, recording, tiny_transcript):
    predictor.push_to_hub(REPO)
    loaded = Predictor.from_pretrained(REPO)
    assert fake_hub.calls[-1][0] == "snapshot_download" and fake_hub.calls[-1][1]["repo_id"] == REPO
    assert loaded.source != predictor.source and loaded.classes == predictor.classes
    a, b = predictor.predict(recording, tiny_transcript), loaded.predict(recording, tiny_transcript)
    assert b.label == a.label and b.probabilities == a.probabilities
    assert (b.arousal, b.valence) == (a.arousal, a.valence)
    # A downloaded predictor pushed again keeps its card's metrics (metrics.json travels).
    loaded.push_to_hub("koemo-test/again")
    assert json.loads((fake_hub.root / "koemo-test/again/metrics.json").read_text()) == \
        json.loads((fake_hub.root / REPO / "metrics.json").read_text())


def test_from_pretrained_reads_a_directory_without_the_hub(fake_hub, exported_predictor_dir):
    loaded = Predictor.from_pretrained(exported_predictor_dir, seed=5)
    assert loaded.seed == 5 and fake_hub.calls == []


def test_hub_repository_that_is_not_a_predictor(fake_hub, tmp_path):
    (fake_hub.root / "someone/bert").mkdir(parents=True)
    (fake_hub.root / "someone/bert/config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="holds no predictor.json; it is not a koemo predictor"):
        Predictor.from_pretrained("someone/bert")


def test_hub_id_offline_fails_at_once_with_a_clear_message(tmp_path):
    assert hub_offline()                      # conftest: HF_HUB_OFFLINE=1, the real client runs
    with pytest.raises(CheckpointError, match="model hub is offline .HF_HUB_OFFLINE=1. with no "
                                              "cached copy"):
        within_deadline(HANG_S, "Predictor.from_pretrained of a hub id while offline",
                        Predictor.from_pretrained, "nobody-here/no-model", cache_dir=tmp_path)


def test_neither_directory_nor_hub_id():
    with pytest.raises(CheckpointError, match="neither a predictor directory nor a hub id"):
        Predictor.from_pretrained("no/such/folder")


def test_push_failures_are_input_errors(predictor, monkeypatch):
    with pytest.raises(KoemoInputError, match="looks like org/name"):
        predictor.push_to_hub("not a repo id")
    # The real client, offline: refused before any upload, and the message says why.
    with pytest.raises(KoemoInputError, match=r"failed \(HF_HUB_OFFLINE=1 is set\)"):
        predictor.push_to_hub(REPO)


def test_shareable_source_keeps_only_the_run_path():
    assert shareable_source("/home/me/w/runs/paper/tiny/audio/seed1/best") == "runs/paper/tiny/audio/seed1/best"
    assert shareable_source("/opt/ckpt/best") == "best"
