"""Every pretrained model a run needs is found before the run starts (koemo.inference.pretrained),
No test reaches a hub: the hub cache is a temporary folder, the hub's answers are faked
in-process."""
import shutil
import socket
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest

from koemo import cli
from koemo.config.load import load_config
from koemo.inference import pretrained as P
from koemo.reporting import reproduce as R

KOBERT = "skt/kobert-base-v1"
TEXTS = ["오늘 날씨가 정말 좋네요", "그래서 기분이 좋아요", "왜 이렇게 화가 나는지 모르겠어",
         "정말 슬픈 이야기였어요", "깜짝 놀랐잖아 1,000원이나"] * 4


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch):
    """A hub cache of this test's own, and no network: any connect fails the test."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return cache


@pytest.fixture(scope="module")
def kobert_like(tmp_path_factory):
    """A tiny KoBERT stand-in laid out as the hub's KoBERT: spiece.model, a
    tokenizer_config.json, config.json and pickle weights only (pytorch_model.bin)."""
    import torch
    from safetensors.torch import load_file

    from koemo.text.standin import build_standin

    folder = build_standin(TEXTS, tmp_path_factory.mktemp("hub") / "kobert", vocab_size=60,
                           hidden_size=16, num_layers=1, num_heads=2)
    for name in ("koemo_tokenizer.json", "standin.json"):
        (folder / name).unlink()
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "KoBERTTokenizer"}')
    state = load_file(str(folder / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder, state


def _cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Put `files` into the hub cache as huggingface_hub lays a download out."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)


def test_offline_reproduce_stops_before_the_first_notebook_naming_every_missing_model(
        tmp_path, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(R, "_run_one", lambda name, *args: started.append(name))
    code = cli.main(["reproduce", "--config", "paper", "--set",
                     "reproduce.frontends=[ssl_wav2vec2_klue]", "--data", str(tmp_path),
                     "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "paper")])
    err = capsys.readouterr().err
    assert code == 1 and started == []
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for expected in ("text.tokenizer and text.encoder 'skt/kobert-base-v1'",
                     "config ssl-wav2vec2-klue: text.tokenizer and text.encoder 'klue/roberta-base'",
                     "models.audio.encoder.name 'facebook/wav2vec2-xls-r-300m'", "HF_HUB_OFFLINE",
                     "koemo fetch --config paper --set 'reproduce.frontends=[ssl_wav2vec2_klue]' "
                     "--to DIR"):
        assert expected in err, err
    assert "whisper" not in err                   # reproduce never transcribes


def test_only_the_chosen_notebooks_models_are_required(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(R, "_run_one", lambda name, *args: started.append(name) or {
        "notebook": name, "seconds": 0.0})
    R.reproduce("paper", tmp_path / "w", tmp_path / "paper", data_root=tmp_path, only=["1-1", "5-1"])
    assert started == ["1-1_data_aggregation", "5-1_paper_tables"]
    with pytest.raises(P.KoemoInputError, match="skt/kobert-base-v1"):
        R.reproduce("paper", tmp_path / "w", tmp_path / "paper", data_root=tmp_path, only=["3-1"])


@pytest.mark.parametrize("command", [["train", "text"], ["train", "multimodal"], ["encode-text"]])
def test_train_and_encode_text_find_their_models_first(tmp_path, capsys, command):
    code = cli.main([*command, "--workdir", str(tmp_path / "missing"), "--config", "paper"])
    err = capsys.readouterr().err
    assert code == 1 and "1 pretrained model(s) this work needs are missing" in err and KOBERT in err, err
    assert not (tmp_path / "missing").exists()


def test_a_speech_encoder_is_required_only_by_its_stages(tmp_path):
    cfg = load_config("tiny_ssl", [f"models.audio.encoder.name={tmp_path / 'none'}",
                                   f"text.tokenizer={tmp_path / 'none'}",
                                   f"text.encoder={tmp_path / 'none'}"])
    assert [a.kind.setting for a, _ in P.missing_assets([cfg], P.STAGE_USES["audio"])] == \
        ["models.audio.encoder.name"]
    assert [a.kind.setting for a, _ in P.missing_assets([cfg], P.STAGE_USES["text"])] == \
        ["text.tokenizer", "text.encoder"]
    (_, reason), = P.missing_assets([cfg], ["audio"])
    none = tmp_path / "none"
    assert reason.startswith(f"audio encoder '{none}': {none}: speech encoder directory not found")


def test_stand_ins_count_as_present_and_asr_is_off_with_none():
    cfg = load_config("tiny", ["asr.model=none"])
    assert P.config_assets(cfg) == []
    assert P.missing_assets([cfg], P.USES) == []


def test_a_local_folder_without_its_files_is_named(tmp_path):
    folder = tmp_path / "kobert"
    folder.mkdir()
    (folder / "spiece.model").write_bytes(b"x")
    cfg = load_config("paper", [f"text.tokenizer={folder}", f"text.encoder={folder}"])
    problems = P.missing_assets([cfg], ["text"])
    assert [(a.kind.setting, r) for a, r in problems] == [
        ("text.encoder", f"{folder}: KoBERT encoder directory without config.json")]


def test_the_hub_cache_counts_whole_and_is_named_when_partial(empty_hub_cache, kobert_like):
    folder, _ = kobert_like
    cfg = load_config("paper")
    _cache(empty_hub_cache, KOBERT, {"spiece.model": folder / "spiece.model",
                                    "config.json": folder / "config.json"})
    problems = P.missing_assets([cfg], ["text"])
    assert [(a.kind.setting, r) for a, r in problems] == [
        ("text.encoder", "only partly in this machine's hub cache "
                         "(no model.safetensors or pytorch_model.bin)")]
    _cache(empty_hub_cache, KOBERT, {"pytorch_model.bin": folder / "pytorch_model.bin"})
    assert P.missing_assets([cfg], ["text"]) == []


def test_online_a_model_not_cached_must_exist_on_the_hub(monkeypatch):
    monkeypatch.setattr(P, "hub_is_offline", lambda: False)
    monkeypatch.setattr(P, "hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "repo_exists", lambda repo_id: repo_id == KOBERT)
    assert P.missing_assets([load_config("paper")], ["text"]) == []
    problems = P.missing_assets([load_config("paper", ["text.encoder=skt/kobert-base-v2"])],
                                ["text"])
    assert [(a.reference, r) for a, r in problems] == [
        ("skt/kobert-base-v2", "no such model on the hub (a private or gated one needs "
                               "`huggingface-cli login`)")]
