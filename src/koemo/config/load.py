"""Experiment configuration: one YAML file per experiment, with `base:` inheritance.

`load_config` resolves `base:` chains (a path relative to the including file, else a shipped
config by name, as `--config` resolves names), applies `key.sub=value` overrides from the
command line, parses the result once into the typed, strict schema (koemo.config.schema:
unknown keys, wrong types and values outside a setting's legal values fail, one line naming the
key, the value given and what is allowed) and checks the invariants across sections. A key
written twice in one YAML mapping is an error naming the file and line. The typed config keeps
the mapping as written (`as_dict()`), which koemo.config.fingerprints hashes.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from koemo.config.allowed import field_allowed, shown
from koemo.config.assets import configs_dir
from koemo.config.schema import STAGES, Config, Models, label_classes
from koemo.config.section import Section, section_type
from koemo.errors import KoemoInputError

# The checkout's configs/, or the copy a wheel carries (koemo.config.assets).
CONFIG_DIR = configs_dir()


class ConfigError(KoemoInputError):
    """A config file is missing, malformed or inconsistent."""


def _deep_merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def shipped_configs() -> list[str]:
    """The names of the configs koemo ships (configs/*.yaml)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _shipped(name: str) -> Path | None:
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _suggestion(name: str) -> str:
    """`did you mean paper?` for a name close to a shipped config, else the shipped names."""
    names = shipped_configs()
    close = difflib.get_close_matches(Path(name).stem, names, n=1)
    return f"did you mean {close[0]}?" if close else f"shipped configs: {', '.join(names)}"


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Accept a path, or a bare name such as `paper` for `configs/paper.yaml`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = _shipped(str(name_or_path))
    if found is None:
        raise ConfigError(f"config not found: {name_or_path} (looked in . and {CONFIG_DIR}; "
                          f"{_suggestion(str(name_or_path))})")
    return found


def _resolve_base(base: Any, including: Path) -> Path:
    """`base:` of `including`: a path relative to it when that file exists, else a shipped
    config by name (`paper` or `paper.yaml`), as `--config` resolves names."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{including}: base: must name a config file, not {shown(base)}")
    local = including.parent / base
    if local.is_file():
        return local
    found = _shipped(base)
    if found is None:
        raise ConfigError(f"{including}: base: {base} not found (tried {local}, then a shipped "
                          f"config {base} in {CONFIG_DIR}; {_suggestion(base)})")
    return found


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"line {again}: key {shown(key)} written twice in one mapping (first "
                         f"at line {first}); the later one would silently replace it")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML's last-wins would drop
    a whole section or a setting silently). `<<` merge keys may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = self.construct_object(key_node), key_node.start_mark.line + 1
                if key in first:
                    raise _DuplicateKey(key, first[key], line)
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular `base:` chain")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as err:
        raise ConfigError(f"{path}, {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return _deep_merge(_read_yaml(_resolve_base(base, path), seen + (path,)), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.audio.epochs=3` -> (['train','audio','epochs'], 3); values parse as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.load(value, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: not a YAML value: {' '.join(str(err).split())}") from None
    if isinstance(parsed, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip().split("."), parsed


def apply_overrides(written: Mapping[str, Any], overrides: Iterable[str]) -> dict:
    """A copy of the mapping as written with each `key.sub=value` override set."""
    cfg = copy.deepcopy(dict(written))
    for text in overrides:
        keys, value = parse_override(text)
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key} is not a mapping")
        node[keys[-1]] = value
    return cfg


def text_input_dim(models: Models) -> int:
    """Width of the text encoder's states: models.text.input_dim, or d_model when unset (the
    paper: KoBERT's 768 = d_model, no projection)."""
    return int(models.text.input_dim or models.d_model)


# fixes: switches renamed so that every one reads false = as the original: old name -> message.
_RENAMED_FIXES = {
    "reseed_every_call": "fixes.reseed_every_call was renamed fixes.seed_per_sample, with the "
                         "opposite meaning: reseed_every_call true (the original) is "
                         "seed_per_sample false, reseed_every_call false is seed_per_sample true",
}


def _check_written(written: Mapping[str, Any]) -> None:
    """Checks on the mapping as written, before the schema sees it (their messages predate it)."""
    for section in ("data", "features", "text", "models", "fixes", "train"):
        if section not in written:
            raise ConfigError(f"config {written.get('name', '?')}: missing section `{section}`")
    for old, message in _RENAMED_FIXES.items():
        if old in (written["fixes"] or {}):
            raise ConfigError(f"config {written.get('name', '?')}: {message}")


def _error_path(loc: tuple) -> str:
    """('train', 'audio', 'lr') -> train.audio.lr; list indices as [i]."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _section_at(loc: tuple, root: type[Section] = Config) -> type[Section] | None:
    section: type[Section] | None = root
    for part in loc:
        field = section.model_fields.get(part) if section else None
        section = section_type(field.annotation) if field else None
    return section


def _setting_at(loc: tuple, root: type[Section]) -> tuple[int, FieldInfo | None]:
    """(n, field): the first n parts of `loc` lead to the setting `field`; field None when they
    end at a section (an error of the section itself: not a mapping, or a cross-field rule)."""
    section, n = root, 0
    while n < len(loc):
        field = section.model_fields.get(loc[n]) if isinstance(loc[n], str) else None
        if field is None:
            return n, None
        inner = section_type(field.annotation)
        if inner is None:
            return n + 1, field
        section, n = inner, n + 1
        if n < len(loc) and isinstance(loc[n], int):      # an item of a list of sections
            n += 1
    return len(loc), None


def _given(data: Any, loc: tuple, fallback: Any) -> Any:
    """The value written at `loc` in `data` (the mapping validated), else `fallback`."""
    for part in loc:
        if isinstance(part, int) and isinstance(data, list) and part < len(data):
            data = data[part]
        elif isinstance(data, Mapping) and part in data:
            data = data[part]
        else:
            return fallback
    return data


def describe_error(error: ErrorDetails, root: type[Section] = Config, prefix: str = "",
                   data: Any = None) -> str:
    """One pydantic error as one line: `key: value is not allowed: must be <what the schema
    allows>`, or an unknown key with a close-match hint (`root`: the section validated,
    `prefix`: its path in a config, `data`: the mapping validated, for the value as written)."""
    loc = tuple(prefix.split(".") if prefix else ()) + tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        where, key = _error_path(loc[:-1]), str(loc[-1])
        section = _section_at(tuple(error["loc"])[:-1], root)
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
        what = "setting" if where else "section"
        return f"{where + ': ' if where else ''}unknown {what} '{key}'{hint}"
    n, field = _setting_at(tuple(error["loc"]), root)
    path = _error_path(loc[:len(loc) - len(error["loc"]) + n])
    message = error["msg"].removeprefix("Value error, ").rstrip(".")
    if field is None and error["type"] == "value_error":        # a cross-field rule
        return f"{path}.{message}" if path else message
    allowed = field_allowed(field) if field is not None else None
    value = _given(data, tuple(error["loc"])[:n], error.get("input"))
    if allowed is None:
        return f"{path}: {message} (got {shown(value)})"
    return f"{path}: {shown(value)} is not allowed: must be {allowed}"


def describe_errors(err: ValidationError, data: Any, root: type[Section] = Config,
                    prefix: str = "") -> str:
    """Every problem of a failed validation, one per setting (a union's alternatives all fail
    on the same setting), joined into one line."""
    lines = [describe_error(e, root, prefix, data) for e in err.errors()]
    return "; ".join(dict.fromkeys(lines))


def parse_config(written: Mapping[str, Any], source: str = "config") -> Config:
    """The mapping as written -> the typed config; ConfigError naming every bad path."""
    try:
        return Config.model_validate(written)
    except ValidationError as err:
        raise ConfigError(f"{source}: {describe_errors(err, written)}") from None


S = TypeVar("S", bound=Section)


def parse_section(section: type[S], value: Any, path: str) -> S:
    """One section (a typed one, or a mapping checked against the schema) at config path
    `path`; ConfigError naming the bad keys."""
    if isinstance(value, section):
        return value
    try:
        return section.model_validate(value or {})
    except ValidationError as err:
        raise ConfigError(describe_errors(err, value, section, path)) from None


_KEPT = " -- kept as written (this koemo refuses it in a new config)"


def _set_aside(errors: list[ErrorDetails], known: dict, kept: dict, notes: list[str],
               source: str) -> bool:
    """One pass of parse_saved_config: drop unknown keys and take out settings this koemo
    refuses (remembered in `kept`), a note each. True when only cross-field rules are left."""
    settings = False
    for error in errors:
        loc = tuple(error["loc"])
        n, field = _setting_at(loc, Config)
        line = describe_error(error, data=known)
        if error["type"] == "extra_forbidden" or field is not None:
            settings, key = True, loc if field is None else loc[:n]
            node = _given(known, key[:-1], None)
            if isinstance(node, dict) and key[-1] in node:
                value = node.pop(key[-1])
                if field is not None:
                    kept[key] = value
            suffix = " -- ignored (written by another koemo version)" if field is None else _KEPT
        elif error["type"] == "value_error":
            suffix = _KEPT
        else:
            raise ConfigError(f"{source}: {line}")
        note = f"{source}: {line}{suffix}"
        if note not in notes:
            notes.append(note)
    return not settings


def _restore(parsed: Config, kept: dict) -> None:
    """Put the saved values parse_saved_config took out back into the typed config, so the
    run's settings are what it computed with (the sections are frozen: set directly)."""
    for loc, value in kept.items():
        node: Any = parsed
        for part in loc[:-1]:
            node = getattr(node, part, None)
        if isinstance(node, Section):
            object.__setattr__(node, loc[-1], value)


def parse_saved_config(written: Mapping[str, Any], source: str) -> tuple[Config, list[str]]:
    """A config read back from an old run or predictor (meta.json, config.yaml). Keys this
    koemo does not know are dropped with a note each instead of failing; a value this koemo
    refuses in a new config (a range or rule added since) is kept as written, with a note, so
    the run is read with the settings it ran with. What was written (unknown keys included)
    stays the config's `as_dict()`, so its fingerprints are kept."""
    known, lenient = copy.deepcopy(dict(written)), False
    notes: list[str] = []
    kept: dict[tuple, Any] = {}
    for _ in range(64):      # each pass sets aside what pydantic reports
        try:
            parsed = Config.model_validate(known, context={"lenient": lenient})
        except ValidationError as err:
            lenient = _set_aside(err.errors(), known, kept, notes, source)
            continue
        _restore(parsed, kept)
        parsed._written = copy.deepcopy(dict(written))
        return parsed, notes
    raise ConfigError(f"{source}: could not be read as a config")


def load_saved_config(path: str | Path) -> Config:
    """A run's config.yaml read back: keys this koemo does not know are a warning each."""
    import warnings

    path = Path(path)
    cfg, notes = parse_saved_config(_read_yaml(path), str(path))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return cfg


def validate(cfg: Config) -> Config:
    """Invariants across sections (shapes that must fit together, one weight per class)."""
    feats, models = cfg.features, cfg.models
    audio_dim = models.audio.conv_channels[-1] * feats.n_mels // 4
    if (models.audio.frontend or "mel") == "mel" and audio_dim != models.d_model:
        raise ConfigError(
            f"models.d_model={models.d_model} but the audio extractor gives "
            f"conv_channels[-1] * n_mels / 4 = {audio_dim}")
    for stage in STAGES:
        heads = getattr(models, stage).num_heads
        if models.d_model % heads:
            raise ConfigError(f"models.d_model must be divisible by models.{stage}.num_heads")
    # The stand-in's width is checked here when set; an unset one takes build_standin's
    # default and a mismatch then surfaces in the text model.
    text_dim = text_input_dim(cfg.models)
    standin = cfg.text.standin
    if cfg.text.encoder == "standin" and standin is not None and "hidden_size" in standin \
            and standin.hidden_size != text_dim:
        raise ConfigError(
            f"text.standin.hidden_size={standin.hidden_size} but the text model takes states "
            f"of width {text_dim} (models.text.input_dim, default models.d_model): set them equal")
    weights = cfg.train.multimodal.class_weights
    classes = label_classes(cfg.data.label_policy, cfg.data.classes)
    if isinstance(weights, list) and len(weights) != len(classes):
        raise ConfigError(f"train.multimodal.class_weights: {shown(weights)} is not allowed: must "
                          f"be one weight per class, {len(classes)} ({', '.join(classes)})")
    return cfg


def config_from_dict(written: Mapping[str, Any], source: str = "config") -> Config:
    """A whole config mapping (as written) -> the checked, typed config."""
    _check_written(written)
    parsed = parse_config(written, source)
    try:
        return validate(parsed)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def with_changes(cfg: Config, changes: Mapping[str, Any]) -> Config:
    """A new config: `changes` (a nested mapping) merged into `cfg` as written, re-validated."""
    return config_from_dict(_deep_merge(cfg.as_dict(), changes), f"config {cfg.name}")


def load_config(name_or_path: str | Path = "paper", overrides: Iterable[str] = ()) -> Config:
    """Load a config by name or path, resolve `base:`, apply overrides, parse and validate."""
    path = resolve_config_path(name_or_path)
    cfg = apply_overrides(_read_yaml(path), overrides)
    cfg.setdefault("name", path.stem)
    return config_from_dict(cfg, str(path))
