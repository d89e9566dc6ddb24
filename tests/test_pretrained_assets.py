"""Every pretrained model a run needs is found before the run starts (koemo.inference.pretrained),
and `koemo fetch` (koemo.inference.fetch) downloads them for a machine without the hub. No test
reaches a hub: the hub cache is a temporary folder, the hub's answers are faked in-process."""
import shlex
import shutil
import socket
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest

from koemo import cli
from koemo.config.load import load_config
from koemo.experiments.frontends import frontend_configs
from koemo.inference import fetch as F
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
    """A tiny KoBERT stand-in laid out as the hub's KoBERT: spiece.model, a vocab.txt beside it,
    a tokenizer_config.json, config.json and pickle weights only (pytorch_model.bin)."""
    import sentencepiece as spm
    import torch
    from safetensors.torch import load_file

    from koemo.text.standin import build_standin

    folder = build_standin(TEXTS, tmp_path_factory.mktemp("hub") / "kobert", vocab_size=60,
                           hidden_size=16, num_layers=1, num_heads=2)
    for name in ("koemo_tokenizer.json", "standin.json"):
        (folder / name).unlink()
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    (folder / "vocab.txt").write_text("".join(f"{pieces.IdToPiece(i)}\n"
                                              for i in range(pieces.GetPieceSize())))
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
    for expected in ("text.tokenizer and text.encoder and reproduce.foundation.text "
                     "'skt/kobert-base-v1'",
                     "reproduce.foundation.audio and reproduce.foundation.fused "
                     "'microsoft/wavlm-large'",
                     "config ssl-wav2vec2-klue: text.tokenizer and text.encoder 'klue/roberta-base'",
                     "models.audio.encoder.name 'facebook/wav2vec2-xls-r-300m'", "HF_HUB_OFFLINE",
                     "koemo fetch --config paper --set 'reproduce.frontends=[ssl_wav2vec2_klue]' "
                     "--to DIR"):
        assert expected in err, err
    assert "asr.model" not in err                 # reproduce never transcribes


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
    assert code == 1 and KOBERT in err, err
    assert "1 pretrained model(s) this work needs are missing" in err, err
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


# ------------------------------------------------------------- the foundation study (5-4)

FOUNDATION = "5-4_foundation_models"


def _funasr_folder(folder: Path, kind: str, leave_out: str | None = None) -> Path:
    """A directory laid out as a released FunASR model (its files' contents are not read)."""
    from koemo.upstreams import funasr_loader as FL

    folder.mkdir(parents=True, exist_ok=True)
    for name in FL.required_files(kind):
        if name != leave_out:
            (folder / name).write_bytes(b"x")
    (folder / FL.CONFIG_FILE).write_text(f"model: {FL.MODEL_FILES[kind][0]}\n")
    (folder / "configuration.json").write_text("{}")
    return folder


@pytest.fixture
def with_funasr(monkeypatch):
    """FunASR counts as installed (the study loads emotion2vec+ and SenseVoice only then)."""
    from koemo.upstreams import funasr_loader as FL

    monkeypatch.setattr(FL, "funasr_installed", lambda: True)


def test_reproduce_stops_before_any_notebook_when_a_foundation_model_is_missing(
        tmp_path, monkeypatch, with_funasr):
    started = []
    monkeypatch.setattr(R, "_run_one", lambda name, *args: started.append(name) or {
        "notebook": name, "seconds": 0.0})
    study = ["reproduce.foundation.audio=[tiny:wavlm, microsoft/wavlm-large]",
             "reproduce.foundation.zero_shot=[{kind: sensevoice, "
             "model: FunAudioLLM/SenseVoiceSmall}]"]
    with pytest.raises(P.KoemoInputError) as err:
        R.reproduce("tiny", tmp_path / "w", tmp_path / "paper", data_root=tmp_path,
                    overrides=study, only=["1-1", "5-4"])
    assert started == [] and not (tmp_path / "w").exists()
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "2 pretrained model(s)" in message, message
    for expected in ("reproduce.foundation.audio 'microsoft/wavlm-large' (not a local directory, "
                     "and not in this machine's hub cache)",
                     "reproduce.foundation.zero_shot 'FunAudioLLM/SenseVoiceSmall'",
                     "--set 'reproduce.foundation.audio=[\"tiny:wavlm\", \"DIR\"]'"):
        assert expected in message, message
    R.reproduce("tiny", tmp_path / "w", tmp_path / "paper", data_root=tmp_path,
                overrides=study, only=["1-1"])              # 5-4 not run: not asked for
    assert started == ["1-1_data_aggregation"]


def test_a_study_of_tiny_standin_and_local_models_passes(tmp_path, with_funasr):
    from koemo.synth.encoders import build_speech_encoder, build_text_encoder

    audio = build_speech_encoder("wavlm", tmp_path / "wavlm")
    text = build_text_encoder("roberta", tmp_path / "roberta", TEXTS)
    sensevoice = _funasr_folder(tmp_path / "sensevoice", "sensevoice")
    study = [f"reproduce.foundation.audio=[tiny:wavlm, {audio}]",
             f"reproduce.foundation.text=[standin, {text}]",
             f"reproduce.foundation.fused=[{{audio: {audio}, text: standin}}]",
             f"reproduce.foundation.zero_shot=[{{kind: sensevoice, model: {sensevoice}}}, "
             "{kind: emotion2vec, model: tiny:emotion2vec}]"]
    cfg = load_config("tiny", study)
    assert [a.reference for a in P.config_assets(cfg, ["foundation"])] == [
        str(audio), str(text), str(audio), str(sensevoice)]
    assert P.missing_assets([cfg], ["foundation"]) == []
    R.require_models("tiny", study, ["1-1_data_aggregation", FOUNDATION])


def test_a_local_foundation_model_without_its_files_is_named_with_why(tmp_path, with_funasr):
    from koemo.synth.encoders import build_speech_encoder

    audio = build_speech_encoder("wavlm", tmp_path / "wavlm")
    (audio / "model.safetensors").unlink()
    emotion2vec = _funasr_folder(tmp_path / "e2v", "emotion2vec", leave_out="tokens.txt")
    cfg = load_config("tiny", [f"reproduce.foundation.audio=[{audio}]",
                               f"reproduce.foundation.zero_shot=[{{kind: emotion2vec, "
                               f"model: {emotion2vec}}}]"])
    problems = {a.kind.setting: reason for a, reason in P.missing_assets([cfg], ["foundation"])}
    assert list(problems) == ["reproduce.foundation.audio", "reproduce.foundation.zero_shot"]
    assert "without model.safetensors or pytorch_model.bin" in problems[
        "reproduce.foundation.audio"], problems
    assert problems["reproduce.foundation.zero_shot"].startswith(
        f"{emotion2vec}: emotion2vec model directory without tokens.txt"), problems


def test_without_funasr_its_models_are_left_out_as_the_study_leaves_them(monkeypatch):
    from koemo.upstreams import funasr_loader as FL

    monkeypatch.setattr(FL, "funasr_installed", lambda: False)
    cfg = load_config("tiny", ["reproduce.foundation.audio=[emotion2vec/emotion2vec_plus_base, "
                               "facebook/hubert-large-ll60k]"])
    assert [a.reference for a, _ in P.missing_assets([cfg], ["foundation"])] == [
        "facebook/hubert-large-ll60k"]


# ------------------------------------------------------------------------------ koemo fetch

@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory, kobert_like):
    """The hub's repositories as local folders: the paper's models and the foundation study's."""
    from koemo.inference.asr_standin import build_standin_whisper
    from koemo.synth.encoders import build_speech_encoder, build_text_encoder

    root = tmp_path_factory.mktemp("fake-hub")
    whisper = build_standin_whisper(root / "whisper")
    (whisper / "pytorch_model.bin").write_bytes(b"not to be fetched")   # the hub has both
    return {KOBERT: kobert_like[0],
            "klue/roberta-base": build_text_encoder("roberta", root / "roberta", TEXTS),
            "facebook/wav2vec2-xls-r-300m": build_speech_encoder("wav2vec2", root / "w2v"),
            "openai/whisper-small": whisper,
            "microsoft/wavlm-large": build_speech_encoder("wavlm", root / "wavlm"),
            "klue/roberta-large": build_text_encoder("roberta", root / "roberta-large", TEXTS),
            "emotion2vec/emotion2vec_plus_base": _funasr_folder(root / "e2v", "emotion2vec"),
            "FunAudioLLM/SenseVoiceSmall": _funasr_folder(root / "sensevoice", "sensevoice")}


@pytest.fixture
def fake_hub(hub_repos, monkeypatch):
    """The hub as local folders; records what each download asked for."""
    repos = hub_repos
    asked = []

    def list_repo_files(repo_id, **kwargs):
        return [p.name for p in repos[repo_id].iterdir() if p.is_file()]

    def snapshot_download(repo_id, local_dir, allow_patterns, **kwargs):
        asked.append((repo_id, sorted(allow_patterns)))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        for name in allow_patterns:
            if (repos[repo_id] / name).is_file():
                shutil.copy(repos[repo_id] / name, Path(local_dir) / name)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(F, "hub_is_offline", lambda: False)
    monkeypatch.setattr(F, "hub_reachable", lambda: True)
    return asked


def test_fetch_writes_a_config_and_set_options_that_run_offline(tmp_path, fake_hub, capsys,
                                                                 kobert_like):
    import numpy as np
    from safetensors.torch import load_file

    from koemo.text.encoder import load_text_tokenizer
    from koemo.text.tokenizer import KoBERTTokenizer

    to = tmp_path / "models"
    args = ["--config", "paper", "--set", "reproduce.frontends=[ssl_wav2vec2_klue]",
            "--set", "reproduce.foundation=null"]          # (the next test fetches its models)
    assert cli.main(["fetch", *args, "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert sorted(repo for repo, _ in fake_hub) == sorted(
        [KOBERT, "klue/roberta-base", "facebook/wav2vec2-xls-r-300m", "openai/whisper-small"])
    asked = dict(fake_hub)
    assert "pytorch_model.bin" not in asked["openai/whisper-small"]       # one weights file
    assert "model.safetensors" in asked["openai/whisper-small"]

    # The written config, and its frontends' configs, find every model offline.
    written = to / "paper.yaml"
    assert f"--config {written}" in out
    configs = frontend_configs(load_config(written))
    assert [c.name for c in configs] == ["paper", "ssl-wav2vec2-klue"]
    assert configs[1].models.audio.encoder.name == str(to / "facebook--wav2vec2-xls-r-300m")
    assert P.missing_assets(configs, P.USES) == []

    # The --set options printed for the config itself do the same.
    line = next(row for row in out.splitlines() if row.startswith("or keep --config paper"))
    words = shlex.split(line[line.index("--set"):])
    cfg = load_config("paper", ["reproduce.foundation=null", *words[1::2]])
    assert cfg.text.encoder == str(to / "skt--kobert-base-v1")
    assert P.missing_assets([cfg], P.USES) == []

    # KoBERT's pickle became safetensors with the same weights, and its tokenizer stays KoBERT's.
    kobert = to / "skt--kobert-base-v1"
    assert not (kobert / "pytorch_model.bin").exists()
    converted = load_file(str(kobert / "model.safetensors"))
    assert all(np.array_equal(converted[k].numpy(), v.numpy()) for k, v in kobert_like[1].items())
    assert isinstance(load_text_tokenizer(cfg.text.tokenizer, cfg.text.tokenizer_kind),
                      KoBERTTokenizer)

    # Again: nothing asks for the pickle a second time.
    fake_hub.clear()
    assert cli.main(["fetch", *args, "--to", str(to)]) == 0
    assert "pytorch_model.bin" not in dict(fake_hub)[KOBERT]


def test_fetch_downloads_the_foundation_studys_models_and_prints_a_working_pointer(
        tmp_path, fake_hub, capsys, with_funasr):
    from koemo.text.auto import text_model_kind

    study = ["reproduce.foundation.audio=[microsoft/wavlm-large, "
             "emotion2vec/emotion2vec_plus_base, tiny:wavlm]",
             f"reproduce.foundation.text=[{KOBERT}, standin]",
             "reproduce.foundation.fused=[{audio: microsoft/wavlm-large, "
             "text: klue/roberta-large}]",
             "reproduce.foundation.zero_shot=[{kind: sensevoice, "
             "model: FunAudioLLM/SenseVoiceSmall}, "
             "{kind: emotion2vec, model: emotion2vec/emotion2vec_plus_base}]"]
    to = tmp_path / "models"
    args = ["--config", "tiny", "--skip-asr", *(w for item in study for w in ("--set", item))]
    with pytest.raises(P.KoemoInputError, match="microsoft/wavlm-large"):
        R.require_models("tiny", study, [FOUNDATION])               # not here before the fetch
    assert cli.main(["fetch", *args, "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert sorted(repo for repo, _ in fake_hub) == sorted(
        ["microsoft/wavlm-large", "emotion2vec/emotion2vec_plus_base", KOBERT,
         "klue/roberta-large", "FunAudioLLM/SenseVoiceSmall"])
    assert "model.pt" in dict(fake_hub)["FunAudioLLM/SenseVoiceSmall"]

    # The written config points every list at the local copies, keeps what is built here and
    # passes reproduce's pre-flight for notebook 5-4.
    written = to / "tiny.yaml"
    study_cfg = load_config(written).reproduce.foundation
    assert study_cfg.audio == [str(to / "microsoft--wavlm-large"),
                               str(to / "emotion2vec--emotion2vec_plus_base"), "tiny:wavlm"]
    assert study_cfg.fused[0].text == str(to / "klue--roberta-large")
    assert study_cfg.zero_shot[0].model == str(to / "FunAudioLLM--SenseVoiceSmall")
    R.require_models(str(written), [], [FOUNDATION])
    # KoBERT's copy reads as KoBERT, as its hub id did (no text.tokenizer_kind pins it here).
    assert text_model_kind(to / "skt--kobert-base-v1") == "kobert"

    # The printed --set options, pasted after the command's own, do the same.
    line = next(row for row in out.splitlines() if row.startswith("or keep --config tiny"))
    words = shlex.split(line[line.index("--set"):])
    assert "reproduce.foundation.zero_shot" in words[1::2][-1]
    R.require_models("tiny", [*study, *words[1::2]], [FOUNDATION])


def test_fetch_without_the_hub_says_so_in_one_line(tmp_path, capsys):
    assert cli.main(["fetch", "--config", "paper", "--to", str(tmp_path / "models")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_HUB_OFFLINE is set" in err and KOBERT in err
    assert not (tmp_path / "models").exists()


def test_fetch_of_a_config_of_stand_ins_downloads_nothing(tmp_path, capsys):
    assert cli.main(["fetch", "--config", "tiny", "--skip-asr", "--to", str(tmp_path)]) == 0
    assert "nothing to download" in capsys.readouterr().out
    assert load_config(tmp_path / "tiny.yaml") == load_config("tiny")
