"""The typed, strict config (koemo.config.schema): every shipped config parses, typos and wrong
types fail naming their path, old saved configs stay readable, the docs page is current."""
import pytest

from koemo.config.assets import configs_dir
from koemo.config.load import ConfigError, load_config, parse_saved_config
from koemo.config.schema import Config, TrainStage


@pytest.mark.parametrize("name", sorted(p.stem for p in configs_dir().glob("*.yaml")))
def test_every_shipped_config_parses_strictly(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert isinstance(cfg.train.audio, TrainStage)
    assert Config.model_validate(cfg.as_dict()).as_dict() == cfg.as_dict()


@pytest.mark.parametrize("override, message", [
    ("train.audio.epoch=3", "train.audio: unknown setting 'epoch' (did you mean 'epochs'?)"),
    ("trian.audio.epochs=3", "unknown section 'trian' (did you mean 'train'?)"),
    ("fixes.db_floor_pading=true",
     "fixes: unknown setting 'db_floor_pading' (did you mean 'db_floor_padding'?)"),
    ("modles.d_model=32", "unknown section 'modles' (did you mean 'models'?)"),
])
def test_typos_fail_with_path_and_hint(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", [override])
    assert message in str(err.value)
    assert "tiny.yaml" in str(err.value)


def test_typo_in_yaml_file_fails(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(f"base: {configs_dir() / 'tiny.yaml'}\ntrain:\n  text: {{patiense: 3}}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo.yaml: train.text: unknown setting 'patiense' "
                                          r"\(did you mean 'patience'\?\)"):
        load_config(path)


def test_wrong_type_names_the_path():
    with pytest.raises(ConfigError, match=r"train\.audio\.epochs: \"three\" is not allowed: must be "
                                          r"an integer >= 1"):
        load_config("tiny", ["train.audio.epochs=three"])
    with pytest.raises(ConfigError, match=r"reproduce\.seeds"):
        load_config("tiny", ["reproduce.seeds=7"])


def test_yaml_numbers_and_existing_messages_kept():
    assert load_config("tiny", ["train.audio.lr=1e-3"]).train.audio.lr == 1e-3
    with pytest.raises(ConfigError, match="reseed_every_call was renamed fixes.seed_per_sample"):
        load_config("tiny", ["fixes.reseed_every_call=true"])
    with pytest.raises(ConfigError, match="data.protocol: \"folds\" is not allowed: must be "
                                          "paper, session, cv5"):
        load_config("tiny", ["data.protocol=folds"])


def test_as_written_has_no_defaults_and_sections_are_frozen():
    cfg = load_config("tiny")
    assert "tokenizer_kind" not in cfg.as_dict()["text"]      # a schema default, not written
    assert cfg.text.tokenizer_kind is None and cfg.train.audio.patience == 8
    with pytest.raises(Exception):
        cfg.train.audio.epochs = 5


def test_saved_config_with_unknown_keys_loads_with_a_note():
    written = load_config("tiny").as_dict()
    written["train"]["audio"]["warmup"] = 3          # a key from another koemo version
    written["legacy_section"] = {"x": 1}
    cfg, notes = parse_saved_config(written, "run/meta.json")
    assert cfg.train.audio.epochs == 2
    assert cfg.as_dict() == written                  # fingerprints see what was written
    assert any("train.audio: unknown setting 'warmup'" in n and "run/meta.json" in n for n in notes)
    assert any("unknown section 'legacy_section'" in n for n in notes)


def test_derived_lists_equal_the_former_hand_written_ones():
    from koemo.experiments.plan import _NOT_TRAINING
    from koemo.inference.checks import FEATURE_KEYS
    from koemo.modeling.resume import SPEED_SETTINGS, UNREAD_SECTIONS

    assert SPEED_SETTINGS == ("device", "precision", "num_workers", "compile", "tf32",
                              "trim_padding", "tensorboard", "resident", "background_writes")
    assert UNREAD_SECTIONS == ("reproduce", "biosignals", "asr", "segments", "synthetic")
    assert set(_NOT_TRAINING) == {"name", "regressor_runs", "reproduce", "asr", "segments",
                                  "biosignals", "synthetic"}
    assert FEATURE_KEYS == ("sample_rate", "n_mels", "n_fft", "hop_length", "fmin", "fmax",
                            "top_db", "delta_width", "max_frames")


def test_configuration_page_is_current():
    from koemo.config.docs import DOCS_PAGE, render

    assert DOCS_PAGE.read_text(encoding="utf-8") == render(), \
        "docs/configuration.md is stale: run python -m koemo.config.docs"
    assert "| `train.audio.epochs` | `int` | `20` | an integer >= 1 | yes |" in render()
    assert "| `train.device` | `str` | `\"auto\"` | auto, cpu, cuda, cuda:N or mps | no |" in render()
    assert "| `data.transcript_encoding` | `str` | `\"cp949\"` | cp949 or utf-8 | yes |" in render()


def test_checkpoint_and_run_configs_with_unknown_keys_warn(tmp_path):
    import yaml

    from koemo.modeling.runs import save_run_record
    from koemo.config.load import load_saved_config
    from koemo.modeling.checkpoint import saved_config

    written = load_config("tiny").as_dict()
    written["fixes"]["future_fix"] = True
    with pytest.warns(UserWarning, match="fixes: unknown setting 'future_fix'"):
        cfg = saved_config({"config": written})
    assert cfg.fixes.last_valid_step is False and cfg.as_dict() == written
    save_run_record(tmp_path, load_config("tiny"))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert saved == load_config("tiny").as_dict()           # what a run writes: as written
    saved["train"]["warmup_epochs"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    with pytest.warns(UserWarning, match="config.yaml: train: unknown setting 'warmup_epochs'"):
        assert load_saved_config(tmp_path / "config.yaml").train.audio.epochs == 2
