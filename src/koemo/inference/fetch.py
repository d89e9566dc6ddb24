"""`koemo fetch`: every pretrained model a config needs, downloaded into one folder.

Cluster compute nodes often have no internet. On a login node that has it,

    koemo fetch --config paper --to /shared/koemo-models

downloads each hub model that the config (and every config of its `reproduce.frontends`)
names, from the list of kinds in koemo.inference.pretrained (the foundation study's upstreams
and zero-shot models among them), into `<DIR>/<org>--<name>/` with
`huggingface_hub.snapshot_download` (only the files koemo reads: one weights file,
safetensors where the hub has it), writes `<DIR>/<config name>.yaml` for each config (the
config as loaded, with --set applied, its models pointing at those folders; the first config's
`reproduce.frontends` pointing at the others' files), checks that each written config finds
all its models from this machine alone (as `koemo reproduce` will, offline), and prints the
`--config` to run with and, for the first config, the `--set` options that do the same (a list
setting, such as reproduce.foundation.audio, as YAML's flow form: the whole list, each fetched
hub id replaced by its folder, which --set parses back).

A hub repository with PyTorch pickle weights only (`pytorch_model.bin`, as KoBERT's) is
converted to `model.safetensors` (read with `torch.load(weights_only=True)`, no code runs) and
the pickle removed: koemo loads no pickles from a local folder. A second fetch into the same
folder downloads only what is missing. Local directories and stand-ins stay as they are.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from koemo.config.schema import Config
from koemo.errors import KoemoInputError
from koemo.inference import asr as A
from koemo.inference.pretrained import (USES, config_assets, first_line, is_hub_reference,
                                        missing_assets, repointed, set_option, setting_value)
from koemo.text.auto import text_model_kind
from koemo.text.encoder import WEIGHT_FILES
from koemo.text.tokenizer import hub_is_offline, hub_reachable

SAFETENSORS, PICKLE = WEIGHT_FILES            # model.safetensors, pytorch_model.bin
# Weights files, in the order of preference: one of them is downloaded per model.
WEIGHT_ORDER = tuple(dict.fromkeys((*A.WEIGHT_FILES, *WEIGHT_FILES)))


@dataclass
class Download:
    repo_id: str
    folder: Path
    settings: list[str] = field(default_factory=list)     # the settings naming it
    names: set[str] = field(default_factory=set)          # the files koemo reads


def local_name(repo_id: str) -> str:
    """`skt/kobert-base-v1` -> `skt--kobert-base-v1` (as the hub cache names repositories)."""
    return repo_id.replace("/", "--")


def plan_downloads(configs: Sequence[Config], to: Path, uses: Iterable[str] = USES
                   ) -> dict[str, Download]:
    """The hub models of `configs` needed for `uses`, each once, with the files to fetch."""
    downloads: dict[str, Download] = {}
    for cfg in configs:
        for asset in config_assets(cfg, uses):
            if not is_hub_reference(asset.reference):
                continue
            item = downloads.setdefault(asset.reference,
                                        Download(asset.reference, to / local_name(asset.reference)))
            required, optional = asset.kind.files(asset.reference, cfg)
            item.names.update(name for group in required for name in group)
            item.names.update(optional)
            if asset.kind.setting not in item.settings:
                item.settings.append(asset.kind.setting)
    return downloads


def _patterns(item: Download, listing: set[str]) -> tuple[list[str], str | None]:
    """The files to fetch of what the repository has, with one weights file; and that file."""
    wanted = [name for name in WEIGHT_ORDER if name in item.names]
    weights = next((name for name in wanted if name in listing), None)
    if wanted and weights is None:
        raise KoemoInputError(f"{item.repo_id}: the hub repository has none of "
                              f"{', '.join(wanted)}")
    if weights == PICKLE and (item.folder / SAFETENSORS).is_file():
        weights = None                      # converted by an earlier fetch
    names = [name for name in sorted(item.names - set(WEIGHT_ORDER)) if name in listing]
    return names + ([weights] if weights else []), weights


def download(item: Download) -> Path:
    """One model into its folder; one KoemoInputError line if the hub cannot give it."""
    import huggingface_hub

    try:
        listing = set(huggingface_hub.list_repo_files(item.repo_id))
        patterns, weights = _patterns(item, listing)
        huggingface_hub.snapshot_download(item.repo_id, local_dir=str(item.folder),
                                          allow_patterns=patterns)
    except KoemoInputError:
        raise
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        raise KoemoInputError(
            f"{item.repo_id}: could not download it ({first_line(err)}); `koemo fetch` needs the "
            "hub: run it where the hub is reachable, without HF_HUB_OFFLINE=1") from err
    if weights == PICKLE:
        pickle_to_safetensors(item.folder / PICKLE, item.folder / SAFETENSORS)
    mark_kobert(item)
    return item.folder


def mark_kobert(item: Download) -> None:
    """A KoBERT copy reads as KoBERT as its hub id did, also where no text.tokenizer_kind pins
    it (the foundation study's text upstreams guess the kind, koemo.text.auto): the hub's
    tokenizer_config.json beside spiece.model would read as an Auto tokenizer, KoBERT's own
    settings file (koemo_tokenizer.json, as KoBERTTokenizer.save_pretrained writes it) does not."""
    from koemo.text.tokenizer import CONFIG_FILE, MODEL_FILE, KoBERTTokenizer

    folder = item.folder
    if (text_model_kind(item.repo_id) == "kobert" and (folder / MODEL_FILE).is_file()
            and not (folder / CONFIG_FILE).is_file()):
        KoBERTTokenizer.from_pretrained(folder).save_pretrained(folder)


def pickle_to_safetensors(source: Path, target: Path) -> None:
    """A PyTorch state dict (read weights-only: no code runs) saved as safetensors, the pickle
    removed; written under a temporary name first, so no half-written file is left."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(str(source), map_location="cpu", weights_only=True)
    tensors = {key: value.detach().contiguous().clone() for key, value in state.items()
               if isinstance(value, torch.Tensor)}
    partial = target.with_name(target.name + ".partial")
    save_file(tensors, str(partial), metadata={"format": "pt"})
    os.replace(partial, target)
    source.unlink()


def local_settings(cfg: Config, folders: dict[str, Path], uses: Iterable[str] = USES) -> dict:
    """Dotted setting -> value that point `cfg` at the fetched folders (plus their pins): a
    setting naming one model becomes its folder, a list (the foundation study's) the same list
    with each fetched hub id replaced by its folder."""
    changes: dict = {}
    for asset in config_assets(cfg, uses):
        if asset.reference in folders:
            setting = asset.kind.setting
            value = changes[setting] if setting in changes else setting_value(cfg, setting)
            changes[setting] = repointed(value, asset.reference, str(folders[asset.reference]))
            changes.update(asset.kind.pins(asset.reference, cfg))
    return changes


def _nested(dotted: dict) -> dict:
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def write_configs(configs: Sequence[Config], folders: dict[str, Path], to: Path,
                  uses: Iterable[str] = USES) -> list[Path]:
    """`<to>/<name>.yaml` for each config, pointing at the fetched folders; the first one's
    reproduce.frontends name the others' files. Each is checked to find all its models here."""
    import yaml

    from koemo.config.load import load_config, with_changes

    uses = tuple(uses)
    paths = [to / f"{cfg.name}.yaml" for cfg in configs]
    for index, (cfg, path) in enumerate(zip(configs, paths)):
        changes = _nested(local_settings(cfg, folders, uses))
        if index == 0 and len(configs) > 1:
            changes.setdefault("reproduce", {})["frontends"] = [str(p) for p in paths[1:]]
        derived = with_changes(cfg, changes)
        text = (f"# Written by `koemo fetch`: config {cfg.name} with its pretrained models in "
                f"{to}.\n" + yaml.safe_dump(derived.as_dict(), sort_keys=False,
                                              allow_unicode=True))
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    written = [load_config(path) for path in paths]
    problems = missing_assets(written, uses)
    if problems:
        raise KoemoInputError("fetched, but not usable from " + str(to) + ": " + "; ".join(
            f"{asset.kind.setting} {asset.reference!r}: {reason}" for asset, reason in problems))
    return paths


def fetch(configs: Sequence[Config], to: str | Path, uses: Iterable[str] = USES,
          say: Callable[[str], None] = print) -> tuple[list[Path], dict, dict[str, Download]]:
    """Download every hub model of `configs` into `to`, write the configs that use them;
    (written config paths, the first config's --set changes, the downloads by hub id)."""
    to = Path(to).expanduser().resolve()
    uses = tuple(uses)
    downloads = plan_downloads(configs, to, uses)
    if downloads and (hub_is_offline() or not hub_reachable()):
        why = "HF_HUB_OFFLINE is set" if hub_is_offline() else "the hub is not reachable from here"
        raise KoemoInputError(f"`koemo fetch` downloads from the Hugging Face hub, and {why}: "
                              f"run it on a machine with internet (a login node) for "
                              f"{', '.join(downloads)}")
    to.mkdir(parents=True, exist_ok=True)
    for item in downloads.values():
        say(f"{item.repo_id} ({' and '.join(item.settings)}) -> {item.folder}")
        download(item)
    folders = {repo_id: item.folder for repo_id, item in downloads.items()}
    return (write_configs(configs, folders, to, uses), local_settings(configs[0], folders, uses),
            downloads)


def set_options(changes: dict) -> str:
    """`--set KEY=VALUE ...`, quoted for a shell (a list as YAML's flow form)."""
    return shlex.join([word for key, value in changes.items()
                       for word in ("--set", set_option(key, value))])
