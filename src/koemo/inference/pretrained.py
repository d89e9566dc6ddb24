"""The pretrained models a config needs (its assets), found before any heavy work starts.

A run loads its models late: KoBERT at notebook 3-1, hours after 2-1 started training on a
GPU. `require_assets` looks for every model the work needs first, as its loader would find it
but from this machine alone (`koemo.text.tokenizer.hub_local_only`: a local directory, or the
hub cache, checked with `huggingface_hub.try_to_load_from_cache`; nothing is downloaded and,
with HF_HUB_OFFLINE=1, nothing touches the network), and stops in one line naming each missing
model and how to provide it: `koemo fetch` on a machine with the hub (koemo.inference.fetch),
or `--set KEY=DIR`. Stand-ins (`standin`) are built locally and count as present. With the hub
reachable, a model that is not cached only has to exist there (one metadata request): its
loader downloads it when the run reaches it.

`ASSET_KINDS` is the one list of kinds of assets: the setting that names them (one model, or a
list: the foundation study's), which work needs them (`audio` and `text` training stages,
`asr`: speech recognition in predict, `foundation`: the foundation-model study of notebook 5-4),
how their loader finds a folder, the files that make one (what `koemo fetch` downloads) and the
settings a local copy needs. A new kind of model adds one entry there.

The foundation study (reproduce.foundation) loads each name as its own loader does: an audio
upstream as koemo.upstreams.audio (a transformers model: config.json, preprocessor_config.json
and weights; emotion2vec+ through FunASR: koemo.upstreams.funasr_loader's files, config.yaml,
model.pt, tokens.txt), a text upstream as koemo.upstreams.text (its tokenizer's files and
config.json + weights, KoBERT or Auto guessed from the name or the folder), a fused pair's
members likewise, a zero-shot model as FunASR's directory of its kind (SenseVoice: config.yaml,
model.pt, its sentencepiece model and am.mvn). `tiny:` names and `standin` are built in the
workdir and count as present; without FunASR installed the study leaves the FunASR models out,
and so does the pre-flight (`koemo fetch` still downloads them).
"""
from __future__ import annotations

import functools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, get_args

from koemo.audio.speech_encoder import (PREPROCESSOR_FILE, encoder_folder, encoder_settings,
                                        uses_speech_encoder)
from koemo.config.foundation import TINY, FoundationStudy, ZeroShotKind
from koemo.config.schema import Config
from koemo.errors import KoemoInputError
from koemo.inference import asr as A
from koemo.text.auto import TOKENIZER_FILES, text_model_kind
from koemo.text.encoder import (CONFIG_NAME, WEIGHT_FILES, text_encoder_folder,
                                text_tokenizer_folder)
from koemo.text.standin import STANDIN_KEYWORD
from koemo.text.tokenizer import (CONFIG_FILE as KOBERT_CONFIG_FILE, MODEL_FILE, VOCAB_FILE,
                                  hub_is_offline, hub_local_only, hub_reachable,
                                  looks_like_hub_id)
from koemo.upstreams import funasr_loader as F
from koemo.upstreams.audio import audio_upstream_folder, is_emotion2vec

USES = ("audio", "text", "asr", "foundation")
# Which work needs which uses: a training stage (or `koemo encode-text`); `foundation`: the
# foundation-model study of notebook 5-4 (reproduce.foundation).
STAGE_USES = {"audio": ("audio",), "text": ("text",), "multimodal": ("audio", "text")}

Files = tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]   # (required groups, optional)


def _always(reference: str) -> bool:
    return True


@dataclass(frozen=True)
class AssetKind:
    setting: str                                 # the config key naming them (--set KEY=...)
    use: str                                     # one of USES
    # The hub ids or directories the setting names (a list setting names several); those
    # built here (stand-ins, tiny: upstreams) and unused ones are left out.
    references: Callable[[Config], list[str]]
    folder: Callable[[str, Config], Path]        # its loader's own lookup
    # The files that make it: groups of which one file each must be there, and optional ones.
    files: Callable[[str, Config], Files]
    # Settings a local copy needs besides its path (e.g. KoBERT's tokenizer kind).
    pins: Callable[[str, Config], dict] = field(default=lambda reference, cfg: {})
    # False where the run leaves the model out on this machine (its optional extra is not
    # installed): the pre-flight does not ask for it; `koemo fetch` still downloads it.
    runs_here: Callable[[str], bool] = _always


def _one(reference: Callable[[Config], str | None]) -> Callable[[Config], list[str]]:
    return lambda cfg: [name for name in (reference(cfg),) if name]


def _text_reference(part: str) -> Callable[[Config], list[str]]:
    def reference(cfg: Config) -> str | None:
        value = str(getattr(cfg.text, part))
        return None if value == STANDIN_KEYWORD else value
    return _one(reference)


def _text_kind(reference: str, cfg: Config) -> str:
    return text_model_kind(reference, cfg.text.tokenizer_kind)


def _tokenizer_files(reference: str, cfg: Config) -> Files:
    return _tokenizer_files_of(_text_kind(reference, cfg))


def _tokenizer_files_of(kind: str) -> Files:
    if kind == "kobert":
        return ((MODEL_FILE,),), (VOCAB_FILE, KOBERT_CONFIG_FILE)
    return (TOKENIZER_FILES,), (*TOKENIZER_FILES, CONFIG_NAME)


ENCODER_FILES: Files = (((CONFIG_NAME,), WEIGHT_FILES), ())
SPEECH_ENCODER_FILES: Files = (((CONFIG_NAME,), (PREPROCESSOR_FILE,), WEIGHT_FILES), ())


def _speech_reference(cfg: Config) -> str | None:
    return encoder_settings(cfg).name if uses_speech_encoder(cfg) else None


def _asr_reference(cfg: Config) -> str | None:
    settings = A.asr_settings(cfg)
    return str(settings.model) if settings is not None else None


def _text_pins(reference: str, cfg: Config) -> dict:
    # A downloaded KoBERT folder has tokenizer_config.json beside spiece.model, which alone
    # would read as an Auto tokenizer: the kind the hub id had is kept.
    return {"text.tokenizer_kind": _text_kind(reference, cfg)}


Pick = Callable[[FoundationStudy], Iterable[str]]      # the names of a part of the study


def _study_names(pick: Pick) -> Callable[[Config], list[str]]:
    """The names of a part of reproduce.foundation, but those built here (tiny:, standin)."""
    def references(cfg: Config) -> list[str]:
        study = cfg.reproduce.foundation
        names = pick(study) if study is not None else ()
        return [name for name in dict.fromkeys(names)
                if not name.startswith(TINY) and name != STANDIN_KEYWORD]
    return references


def _funasr_files(kind: str) -> Files:
    return tuple((name,) for name in F.required_files(kind)), F.OPTIONAL_FILES


def _upstream_audio_files(reference: str, cfg: Config) -> Files:
    return _funasr_files("emotion2vec") if is_emotion2vec(reference) else SPEECH_ENCODER_FILES


def _upstream_audio_runs(reference: str) -> bool:
    # emotion2vec+ loads through FunASR: without the extra the study leaves it out
    return not is_emotion2vec(reference) or F.funasr_installed()


def _upstream_text_folder(reference: str, cfg: Config) -> Path:
    # as koemo.upstreams.text loads it: the kind guessed from the name or the folder's files
    text_tokenizer_folder(reference)
    return text_encoder_folder(reference)


def _upstream_text_files(reference: str, cfg: Config) -> Files:
    tokenizer, optional = _tokenizer_files_of(text_model_kind(reference))
    return tokenizer + ENCODER_FILES[0], optional


def _audio_upstreams(setting: str, pick: Pick) -> AssetKind:
    return AssetKind(setting, "foundation", _study_names(pick),
                     lambda ref, cfg: audio_upstream_folder(ref), _upstream_audio_files,
                     runs_here=_upstream_audio_runs)


def _text_upstreams(setting: str, pick: Pick) -> AssetKind:
    return AssetKind(setting, "foundation", _study_names(pick), _upstream_text_folder,
                     _upstream_text_files)


def _zero_shot_kind(kind: str) -> AssetKind:
    return AssetKind("reproduce.foundation.zero_shot", "foundation",
                     _study_names(lambda study: [e.model for e in study.zero_shot
                                                 if e.kind == kind]),
                     lambda ref, cfg: F.model_directory(kind, ref),
                     lambda ref, cfg: _funasr_files(kind),
                     runs_here=lambda ref: F.funasr_installed())


# Notebook 5-4's models (koemo.experiments.foundation): its audio and text upstreams, the
# members of its fused pairs (each checked as its loader reads it) and its zero-shot models.
FOUNDATION_KINDS: tuple[AssetKind, ...] = (
    _audio_upstreams("reproduce.foundation.audio", lambda study: study.audio),
    _text_upstreams("reproduce.foundation.text", lambda study: study.text),
    _audio_upstreams("reproduce.foundation.fused", lambda study: [p.audio for p in study.fused]),
    _text_upstreams("reproduce.foundation.fused", lambda study: [p.text for p in study.fused]),
    *(_zero_shot_kind(kind) for kind in get_args(ZeroShotKind)),
)


ASSET_KINDS: tuple[AssetKind, ...] = (
    AssetKind("text.tokenizer", "text", _text_reference("tokenizer"),
              lambda ref, cfg: text_tokenizer_folder(ref, cfg.text.tokenizer_kind),
              _tokenizer_files, _text_pins),
    AssetKind("text.encoder", "text", _text_reference("encoder"),
              lambda ref, cfg: text_encoder_folder(ref, cfg.text.tokenizer_kind),
              lambda ref, cfg: ENCODER_FILES, _text_pins),
    AssetKind("models.audio.encoder.name", "audio", _one(_speech_reference),
              lambda ref, cfg: encoder_folder(ref), lambda ref, cfg: SPEECH_ENCODER_FILES),
    AssetKind("asr.model", "asr", _one(_asr_reference), lambda ref, cfg: A.whisper_directory(ref),
              lambda ref, cfg: (tuple((name,) for name in A.REQUIRED_FILES)
                                + (A.PROCESSOR_FILES, A.WEIGHT_FILES), A.OPTIONAL_FILES)),
    *FOUNDATION_KINDS,
)


@dataclass(frozen=True)
class Asset:
    kind: AssetKind
    reference: str
    cfg: Config

    def where(self, first: Config | None = None) -> str:
        """`config ssl-wav2vec2-klue: ` for an asset of a config other than `first`."""
        return "" if first is None or self.cfg is first else f"config {self.cfg.name}: "


def config_assets(cfg: Config, uses: Iterable[str] = USES) -> list[Asset]:
    """The models `cfg` names for the work in `uses` (stand-ins and unused ones left out)."""
    wanted = set(uses)
    unknown = wanted - set(USES)
    if unknown:
        raise ValueError(f"uses must be among {USES}, not {sorted(unknown)}")
    return [Asset(kind, reference, cfg) for kind in ASSET_KINDS if kind.use in wanted
            for reference in kind.references(cfg)]


def setting_value(cfg: Config, setting: str) -> object:
    """The value of a dotted setting as written (`reproduce.foundation.audio` -> its list)."""
    node: object = cfg.as_dict()
    for part in setting.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"config {cfg.name} has no setting {setting}")
        node = node[part]
    return node


def repointed(value: object, reference: str, replacement: str) -> object:
    """`value` (a setting's, as written) with each `reference` in it replaced: the name itself,
    or an item of a list, or a field of a list's sections (reproduce.foundation.fused)."""
    if isinstance(value, list):
        return [repointed(item, reference, replacement) for item in value]
    if isinstance(value, dict):
        return {key: repointed(item, reference, replacement) for key, item in value.items()}
    return replacement if value == reference else value


def set_option(setting: str, value: object) -> str:
    """`KEY=VALUE` for --set: a list as YAML's flow form (JSON), which --set parses back."""
    written = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value
    return f"{setting}={written}"


def is_hub_reference(reference: str) -> bool:
    """A hub id that names no local path (`org/name`; an existing `a/b` folder is a path)."""
    return looks_like_hub_id(reference) and not Path(reference).expanduser().exists()


def first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _cached(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def _uncached_groups(asset: Asset) -> list[tuple[str, ...]]:
    """The required file groups of a hub asset of which the hub cache holds no file."""
    required, _ = asset.kind.files(asset.reference, asset.cfg)
    return [group for group in required
            if not any(_cached(asset.reference, name) for name in group)]


def _on_hub(repo_id: str) -> str | None:
    """None when the hub has `repo_id` (its loader downloads it later), else why not."""
    import huggingface_hub

    try:
        if huggingface_hub.repo_exists(repo_id):
            return None
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        return f"the hub did not answer: {first_line(err)}"
    return "no such model on the hub (a private or gated one needs `huggingface-cli login`)"


def asset_problem(asset: Asset, online: Callable[[], bool]) -> str | None:
    """None when the asset's loader will find it, else why not (short, one line)."""
    if is_hub_reference(asset.reference):
        missing = _uncached_groups(asset)
        required, _ = asset.kind.files(asset.reference, asset.cfg)
        if missing:
            if online():
                return _on_hub(asset.reference)
            if len(missing) == len(required):
                return "not a local directory, and not in this machine's hub cache"
            return ("only partly in this machine's hub cache (no "
                    + ", ".join(" or ".join(group) for group in missing) + ")")
    try:
        with hub_local_only():
            asset.kind.folder(asset.reference, asset.cfg)
    except (KoemoInputError, OSError, ValueError) as err:
        return first_line(err)
    return None


def missing_assets(configs: Sequence[Config], uses: Iterable[str]) -> list[tuple[Asset, str]]:
    """Every asset of `configs` (one model named twice is looked at once) that the work in
    `uses` needs and this machine cannot provide, with the reason."""
    online = functools.cache(lambda: not hub_is_offline() and hub_reachable())
    uses = tuple(uses)
    seen, problems = set(), []
    for cfg in configs:
        for asset in config_assets(cfg, uses):
            pins = asset.kind.pins(asset.reference, cfg)
            key = (asset.kind.setting, asset.reference, tuple(sorted(pins.items())))
            if key in seen or not asset.kind.runs_here(asset.reference):
                continue
            seen.add(key)
            reason = asset_problem(asset, online)
            if reason:
                problems.append((asset, reason))
    return problems


def fetch_command(config: str, overrides: Sequence[str] = ()) -> str:
    """The `koemo fetch` line that downloads what `config` with `overrides` needs."""
    words = ["koemo", "fetch", "--config", str(config)]
    for override in overrides:
        words += ["--set", override]
    return shlex.join(words) + " --to DIR"


def require_assets(configs: Sequence[Config], uses: Iterable[str], config: str,
                   overrides: Sequence[str] = ()) -> None:
    """Stop in one line (KoemoInputError) when a model the work needs cannot be found here,
    naming each, before anything heavy starts. `config`/`overrides`: as the user gave them,
    for the `koemo fetch` line the message proposes."""
    problems = missing_assets(configs, uses)
    if not problems:
        return
    hub = any(is_hub_reference(asset.reference) for asset, _ in problems)
    where = ""
    if hub:
        where = (" (the hub is offline: HF_HUB_OFFLINE is set)" if hub_is_offline()
                 else " (the hub is not reachable from here)")
    grouped: dict[tuple, list[str]] = {}         # one model named by two settings: one item
    for asset, reason in problems:
        key = (asset.where(configs[0]), asset.reference, reason)
        grouped.setdefault(key, []).append(asset.kind.setting)
    listed = "; ".join(f"{where}{' and '.join(settings)} {reference!r} ({reason})"
                       for (where, reference, reason), settings in grouped.items())
    first = problems[0][0]
    example = set_option(first.kind.setting, repointed(
        setting_value(first.cfg, first.kind.setting), first.reference, "DIR"))
    raise KoemoInputError(
        f"{len(grouped)} pretrained model(s) this work needs are missing or unusable here"
        f"{where}: {listed}. Where the hub is reachable (a login node), `{fetch_command(config, overrides)}` "
        f"downloads them into DIR and prints the --config (or --set options) that use them; "
        f"or point a setting at a folder you have, e.g. --set {shlex.quote(example)}")
