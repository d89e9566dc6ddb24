"""Every setting's legal values are checked when a config loads (koemo.config.schema): a value
outside them is one ConfigError line naming the key, the value given and what is allowed, never
a traceback later. YAML files with a key written twice are refused; `--config` and `base:` find
shipped configs by name; saved configs with a value this koemo now refuses still load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest

import koemo
from koemo.config.allowed import Rule, field_allowed, shown
from koemo.config.assets import configs_dir
from koemo.config.load import ConfigError, load_config, parse_saved_config, with_changes
from koemo.config.schema import Config
from koemo.config.section import section_type

NO_CHOICE = "no-such-choice"


def leaves(section=Config, prefix=()):
    """(path, field) of every setting, found by walking the schema; a list of sections is
    walked through its first item (`name[0]`)."""
    for name, field in section.model_fields.items():
        sub = section_type(field.annotation)
        if sub is None:
            yield prefix + (name,), field
        else:
            listed = any(get_origin(a) is list for a in (field.annotation,
                                                         *get_args(field.annotation)))
            yield from leaves(sub, prefix + (f"{name}[0]" if listed else name,))


def _bounds(metadata) -> dict:
    return {k: getattr(m, k) for m in metadata for k in ("ge", "gt", "le", "lt", "multiple_of",
                                                          "min_length", "max_length")
            if getattr(m, k, None) is not None}


def illegal(annotation, metadata=()) -> list[Any]:
    """Values the annotation refuses, read from it (choices, ranges, lengths, rules)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return illegal(args[0], tuple(args[1:]) + tuple(metadata))
    rules = [m for m in metadata if isinstance(m, Rule)]
    if rules:
        pool = [-1, 0, 1, 2, 4, "", ".", "a/b", "tpu", "cuda:x", [], [1, 1], [2, 1], [0.0, -1.0],
                ["neutral", "neutral"], ["neutral"], ["EDA", "EDA"]]
        return [v for v in pool if _refused_by(rules[0], v)][:1]
    bounds = _bounds(metadata)
    if origin is Literal:
        return [NO_CHOICE if isinstance(args[0], str) else 12345]
    if origin in (Union, types.UnionType):          # Optional[X]: X's; else no member's
        members = [a for a in args if a is not type(None)]
        return illegal(members[0]) if len(members) == 1 else [NO_CHOICE]
    if origin in (list, tuple):
        values = [[v] for v in illegal(args[0])]
        if bounds.get("min_length"):
            values.append([])
        return values or [NO_CHOICE]
    if origin is dict:
        return [{NO_CHOICE: "x"}]
    if annotation in (int, float):
        values = [True]
        if "ge" in bounds:
            values.append(bounds["ge"] - 1)
        if "gt" in bounds:
            values.append(bounds["gt"])
        if "le" in bounds:
            values.append(bounds["le"] + 1)
        if "lt" in bounds:
            values.append(bounds["lt"])
        if "multiple_of" in bounds:
            values.append(bounds["multiple_of"] * 3 + 1)
        return values
    if annotation is str and bounds.get("min_length"):
        return [""]
    return []


def _refused_by(rule: Rule, value) -> bool:
    try:
        return not rule.check(value)
    except (TypeError, IndexError, AttributeError, ValueError):
        return False


def nested(path: tuple, value) -> dict:
    for key in reversed(path):
        value = {key[:-3]: [value]} if key.endswith("[0]") else {key: value}
    return value


CONSTRAINED = [(".".join(p), f) for p, f in leaves() if field_allowed(f) is not None]


def test_every_number_setting_has_a_range_or_choices():
    """A new int/float setting must say what it accepts (so the walk below covers it)."""
    from koemo.config.docs import _type_name

    loose = [".".join(p) for p, f in leaves()
             if {"int", "float"} & set(_type_name(f.annotation).replace("[", " ").replace("]", " ")
                                       .replace("|", " ").split()) and field_allowed(f) is None]
    assert loose == []
    assert len(CONSTRAINED) > 100


@pytest.mark.parametrize("key, field", CONSTRAINED, ids=[k for k, _ in CONSTRAINED])
def test_each_constrained_setting_refuses_an_illegal_value_in_one_line(key, field, tiny_config):
    values = illegal(field.annotation, tuple(field.metadata))
    assert values, f"no illegal value derived for {key}"
    for value in values:
        with pytest.raises(ConfigError) as err:
            with_changes(tiny_config, nested(tuple(key.split(".")), value))
        message = str(err.value)
        assert "\n" not in message and f"{key}: " in message, message
        assert f"{shown(value)} is not allowed: must be {field_allowed(field)}" in message, message


ISSUE_CASES = {
    "train.device=tpu": 'train.device: "tpu" is not allowed: must be auto, cpu, cuda, cuda:N or mps',
    "train.audio.lr=-1": "train.audio.lr: -1 is not allowed: must be a number > 0",
    "train.audio.batch_size=0": "train.audio.batch_size: 0 is not allowed: must be an integer >= 1",
    "train.audio.epochs=-3": "train.audio.epochs: -3 is not allowed: must be an integer >= 1",
    "train.audio.gamma=-5": "train.audio.gamma: -5 is not allowed: must be a number in (0, 1]",
    "train.audio.epochs=true": "train.audio.epochs: true is not allowed: must be an integer >= 1",
    "train.num_workers=-2": "train.num_workers: -2 is not allowed: must be an integer >= 0",
    "data.transcript_encoding=latin-1":
        'data.transcript_encoding: "latin-1" is not allowed: must be cp949 or utf-8',
    "features.sample_rate=0": "features.sample_rate: 0 is not allowed: must be 16000",
}


@pytest.mark.parametrize("override", ISSUE_CASES)
def test_settings_nothing_can_run_are_refused_at_load(override):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", [override])
    assert str(err.value) == f"{configs_dir() / 'tiny.yaml'}: {ISSUE_CASES[override]}"


def _koemo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(koemo.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "koemo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_koemo_train_refuses_them_in_one_line_without_a_traceback(tmp_path):
    sets = [arg for override in ("train.device=tpu", "train.audio.epochs=-3")
            for arg in ("--set", override)]
    result = _koemo("train", "audio", "--workdir", str(tmp_path), "--config", "tiny", *sets,
                    cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert ISSUE_CASES["train.device=tpu"] in lines[0]
    assert ISSUE_CASES["train.audio.epochs=-3"] in lines[0]
    assert not (tmp_path / "runs").exists()


def test_cross_field_rules_name_the_key():
    cases = {"features.fmax=9000": "features.fmax: 9000.0 is not allowed: must be <= sample_rate / 2",
             "features.fmin=8000": "features.fmin: 8000.0 is not allowed: must be below fmax",
             "segments.vad.neg_threshold=0.9": "segments.vad.neg_threshold: 0.9 is not allowed",
             "text.standin.num_heads=3": "text.standin.num_heads: 3 is not allowed: must be a "
                                         "divisor of hidden_size (256)",
             "synthetic.silent_recordings=7": "synthetic.silent_recordings: 7 is not allowed",
             "train.multimodal.class_weights=[1, 2]":
                 "train.multimodal.class_weights: [1.0, 2.0] is not allowed: must be one weight "
                 "per class, 5"}
    for override, message in cases.items():
        with pytest.raises(ConfigError, match="tiny.yaml: ") as err:
            load_config("tiny", [override])
        assert message in str(err.value) and "\n" not in str(err.value)
    seven = load_config("tiny", ["data.label_policy=seven", "train.multimodal.class_weights="
                                 "[1, 1, 1, 1, 1, 2, 2]"])
    assert len(seven.train.multimodal.class_weights) == 7


@pytest.mark.parametrize("text, line, key", [
    ("name: x\ntrain:\n  device: cpu\ndata:\n  fold: 1\ntrain:\n  tf32: true\n", 6, "train"),
    ("name: x\ntrain:\n  audio: {epochs: 2, epochs: 3}\n", 3, "epochs"),
    ("name: x\ntrain:\n  device: cpu\n  precision: fp32\n  device: cuda\n", 5, "device"),
])
def test_a_key_written_twice_names_the_file_and_line(tmp_path, text, line, key):
    path = tmp_path / "twice.yaml"
    path.write_text(f"base: tiny\n{text}", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line {line + 1}: key \"{key}\" written twice") \
        and "\n" not in message, message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: tiny\nstage: &stage {epochs: 2, batch_size: 8}\n"
                    "train:\n  audio: {<<: *stage, epochs: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown section 'stage'"):   # only the anchor is extra
        load_config(path)


def test_a_misspelt_config_name_gets_a_suggestion():
    with pytest.raises(ConfigError, match=r"config not found: papr \(.*did you mean paper\?\)"):
        load_config("papr")
    with pytest.raises(ConfigError, match="shipped configs: corrected, demo, paper"):
        load_config("zzzzzz")


@pytest.mark.parametrize("base", ["tiny", "tiny.yaml"])
def test_base_names_a_shipped_config_from_a_folder_outside_configs(tmp_path, base):
    mine = tmp_path / "experiments" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text(f"base: {base}\nname: mine\ntrain:\n  audio: {{epochs: 5}}\n", encoding="utf-8")
    cfg = load_config(mine)
    assert cfg.name == "mine" and cfg.train.audio.epochs == 5
    assert cfg.as_dict()["models"] == load_config("tiny").as_dict()["models"]


def test_a_base_beside_the_file_wins_and_a_missing_one_says_what_was_tried(tmp_path):
    (tmp_path / "tiny.yaml").write_text(f"base: {configs_dir() / 'tiny.yaml'}\nseed: 7\n",
                                        encoding="utf-8")
    (tmp_path / "mine.yaml").write_text("base: tiny.yaml\n", encoding="utf-8")
    assert load_config(tmp_path / "mine.yaml").seed == 7          # the user's own tiny.yaml
    (tmp_path / "lost.yaml").write_text("base: tinny\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "lost.yaml")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'lost.yaml'}: base: tinny not found (tried "
                              f"{tmp_path / 'tinny'}, then a shipped config tinny in ")
    assert "did you mean tiny?" in message and "\n" not in message


def test_a_saved_config_with_a_value_now_refused_loads_with_a_note(tiny_config):
    written = json.loads(json.dumps(tiny_config.as_dict()))
    written["train"]["num_workers"] = -2                   # accepted by an older koemo
    written["train"]["audio"]["gamma"] = -5
    written["features"]["fmin"] = 9000                     # a cross-field rule, too
    cfg, notes = parse_saved_config(written, "run/meta.json")
    assert cfg.train.num_workers == -2 and cfg.train.audio.gamma == -5   # as the run used them
    assert cfg.features.fmin == 9000 and cfg.as_dict() == written        # fingerprints kept
    assert any(n.startswith("run/meta.json: train.num_workers: -2 is not allowed")
               and "kept as written" in n for n in notes)
    assert any("train.audio.gamma: -5" in n for n in notes)
    assert any("features.fmin: 9000" in n for n in notes), notes
    with pytest.raises(ConfigError, match="train.num_workers: -2"):
        load_config("tiny", ["train.num_workers=-2"])          # a new config: refused
