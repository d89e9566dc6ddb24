"""Share predictors on the Hugging Face Hub: `push_to_hub(dir, "org/name")` and
`predictor_dir("org/name" or dir)` (the local copy to load); `Predictor.push_to_hub` /
`Predictor.from_pretrained` are thin wrappers. This module never imports the predictor.

What is uploaded: the predictor directory as `koemo predict --export` wrote it (predictor.json,
audio/, text/, multimodal/, kobert/ when the text model is local; safetensors only, no pickles),
with three changes made in a staging copy (the directory itself is never touched):
- README.md, a generated model card: the training data and its licence (KEMDy20 is licensed by
  ETRI; weights trained on it may carry its terms), the protocol and split, the test metrics
  next to the majority-class baseline, the config's key settings and switches, and whether
  predictions are random draws (faithful checkpoints keep attention dropout on at inference);
- metrics.json: the test metrics of each stage, read from the runs the stages were exported
  from (koemo.modeling.runs.RunDir), or from the directory's own metrics.json (a downloaded
  predictor pushed again keeps its numbers);
- predictor.json: the absolute paths of the exported runs are cut to `runs/...` (the uploader's
  file system is nobody's business; loading does not read them).

Downloading honours HF_HUB_OFFLINE: offline, only a cached copy is used, and a hub id without
one fails at once with a message saying so.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from koemo.config.schema import STAGES, Config
from koemo.errors import CheckpointError, KoemoInputError
from koemo.inference.manifest import MANIFEST_FILE
from koemo.modeling.runs import RunDir

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CARD_FILE = "README.md"
METRICS_FILE = "metrics.json"
CLASS_METRICS = (("accuracy", "accuracy"), ("weighted_f1", "weighted F1"),
                 ("macro_f1", "macro F1"), ("uar", "UAR (balanced accuracy)"))
PROTOCOLS = {
    "paper": "the paper's random 20% utterance split (`train_test_split`, random_state 1), 10% "
             "of the rest validating; speakers occur in training and test",
    "session": "cv5 fold 0: whole sessions held out (speaker-independent)",
    "cv5": "five folds of whole sessions (speaker-independent); this checkpoint is one fold",
}
KEMDY20_NOTE = (
    "Trained on **KEMDy20** (Korean Emotional Multimodal Dataset 2020, ETRI): acted dialogues "
    "with per-utterance emotion labels and arousal/valence ratings. KEMDy20 is licensed by ETRI "
    "for research use, on request; it is not redistributed here. Weights trained on it may carry "
    "the corpus licence's terms: read ETRI's licence before using or redistributing this model, "
    "in particular commercially.")
CARD_LICENCE_YAML = "license: other\nlicense_name: kemdy20-etri-terms"


def is_hub_id(name: str | Path) -> bool:
    return isinstance(name, str) and bool(HUB_ID_RE.match(name)) and not Path(name).exists()


def hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return flag.strip().upper() in ("1", "ON", "YES", "TRUE") or bool(constants.HF_HUB_OFFLINE)


# ----------------------------------------------------------------------------- download

def download(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None,
             token: str | bool | None = None) -> Path:
    """A predictor repository's files in the local hub cache; CheckpointError when they are
    not there and cannot be fetched."""
    import huggingface_hub

    offline = hub_offline()
    try:
        path = huggingface_hub.snapshot_download(repo_id, repo_type="model", revision=revision,
                                                 cache_dir=cache_dir, token=token,
                                                 local_files_only=offline, etag_timeout=10)
    except Exception as err:                     # noqa: BLE001 - every hub failure reads the same
        if offline:
            raise CheckpointError(
                f"{repo_id}: no such predictor directory here, and the model hub is offline "
                "(HF_HUB_OFFLINE=1) with no cached copy of this repository; unset HF_HUB_OFFLINE "
                "on a machine that reaches huggingface.co, or pass a predictor directory") from err
        raise CheckpointError(f"{repo_id}: no such predictor directory here, and downloading it "
                              f"from the model hub failed ({type(err).__name__}: {err})") from err
    return Path(path)


def predictor_dir(name_or_dir: str | Path, revision: str | None = None,
                  cache_dir: str | Path | None = None, token: str | bool | None = None) -> Path:
    """The local predictor directory for a directory or a hub id "org/name" (downloaded once,
    then read from the hub cache); `Predictor.from_pretrained` loads it."""
    if Path(name_or_dir).is_dir():
        return Path(name_or_dir)
    if not is_hub_id(str(name_or_dir)):
        raise CheckpointError(f"{name_or_dir}: neither a predictor directory nor a hub id "
                              "(org/name)")
    local = download(str(name_or_dir), revision=revision, cache_dir=cache_dir, token=token)
    if not (local / MANIFEST_FILE).is_file():
        raise CheckpointError(f"{name_or_dir}: this hub repository holds no {MANIFEST_FILE}; "
                              "it is not a koemo predictor")
    return local


# ----------------------------------------------------------------------------- upload

def push_to_hub(directory: str | Path, repo_id: str, private: bool = False,
                token: str | bool | None = None, commit_message: str | None = None,
                data_note: str | None = None, metrics: dict | None = None) -> str:
    """Upload a predictor directory with a generated model card; returns the repository URL.
    `data_note` replaces the KEMDy20 paragraph (e.g. for a model trained on other data);
    `metrics` ({stage: test metrics}) replaces the metrics found next to the exported runs."""
    import huggingface_hub

    directory = Path(directory)
    manifest, metas = read_predictor(directory)
    if not isinstance(repo_id, str) or not HUB_ID_RE.match(repo_id):
        raise KoemoInputError(f"{repo_id!r}: a hub repository id looks like org/name")
    metrics = metrics if metrics is not None else collect_metrics(directory, manifest)
    with tempfile.TemporaryDirectory(prefix="koemo-push-") as tmp:
        staged = Path(tmp) / "predictor"
        shutil.copytree(directory, staged, ignore=shutil.ignore_patterns(".git", ".cache", "__pycache__"))
        manifest = dict(manifest, sources={stage: shareable_source(path) for stage, path
                                           in manifest.get("sources", {}).items()})
        (staged / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        (staged / METRICS_FILE).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        (staged / CARD_FILE).write_text(model_card(repo_id, manifest, metas, metrics, data_note),
                                        encoding="utf-8")
        try:
            url = huggingface_hub.create_repo(repo_id, repo_type="model", private=private,
                                              token=token, exist_ok=True)
            huggingface_hub.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(staged),
                                          token=token,
                                          commit_message=commit_message or "Upload koemo predictor")
        except Exception as err:                 # noqa: BLE001 - every hub failure reads the same
            hint = " (HF_HUB_OFFLINE=1 is set)" if hub_offline() else ""
            raise KoemoInputError(f"pushing {directory} to {repo_id} failed{hint}: "
                                  f"{type(err).__name__}: {err}") from err
    return str(url)


def read_predictor(directory: Path) -> tuple[dict, dict]:
    """(manifest, {stage: meta}) of a predictor directory, checked as loading checks them."""
    from koemo.modeling.checkpoint import read_meta
    from koemo.inference.manifest import read_manifest, stage_dirs

    manifest = read_manifest(directory)
    metas = {stage: read_meta(path) for stage, path in stage_dirs(directory, manifest).items()}
    return manifest, metas


def shareable_source(path: str) -> str:
    """/home/me/work/runs/paper/x/audio/seed1/best -> runs/paper/x/audio/seed1/best."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("runs"):]) if "runs" in parts else Path(path).name


def collect_metrics(directory: Path, manifest: dict) -> dict:
    """{stage: test metrics}: the directory's metrics.json, else each exported run's test
    metrics (stages without any are left out)."""
    own = directory / METRICS_FILE
    if own.is_file():
        return json.loads(own.read_text(encoding="utf-8"))
    found = {}
    for stage, source in manifest.get("sources", {}).items():
        source = Path(source)
        for run in (RunDir(source), RunDir(source.parent)):
            if run.is_scored():
                found[stage] = run.metrics().as_dict()
                break
    return found


# ----------------------------------------------------------------------------- model card

def model_card(repo_id: str, manifest: dict, metas: dict, metrics: dict,
               data_note: str | None = None) -> str:
    from koemo.modeling.checkpoint import saved_config

    cfg = saved_config(metas["multimodal"])
    classes = manifest["classes"]
    split = metas["multimodal"].get("split") or cfg.data.protocol
    protocol = PROTOCOLS.get(cfg.data.protocol, cfg.data.protocol)
    fc = cfg.features
    window_s = fc.max_frames * fc.hop_length / fc.sample_rate
    random_in_eval = not cfg.fixes.eval_attention_dropout_off
    lines = [
        "---", CARD_LICENCE_YAML, "language:", "- ko", "library_name: koemo",
        "pipeline_tag: audio-classification",
        "tags:", "- speech-emotion-recognition", "- multimodal", "- kemdy20", "- koemo", "---", "",
        f"# {repo_id}", "",
        "A koemo predictor for Korean multimodal speech emotion recognition: an "
        "audio regressor (mel-spectrogram + delta -> arousal), a text regressor over frozen KoBERT "
        f"(-> valence) and a `{metas['multimodal'].get('kind') or 'attention_lstm'}` classifier over "
        f"both -> emotion among {', '.join(classes)}. Arousal and valence are on the annotation "
        "scale 1-5.", "",
        "## Use", "", "```python", "from koemo import Predictor",
        f'predictor = Predictor.from_pretrained("{repo_id}")',
        'result = predictor.predict("my.wav", "오늘 정말 기분이 좋아요")',
        "print(result.label, result.probabilities, result.arousal, result.valence)", "```", "",
        f"or `koemo app --checkpoint {repo_id}` for a web page. Audio: any wav/flac/ogg, converted "
        f"to 16 kHz mono; recordings longer than the model's window ({window_s:.1f} s) are scored "
        "in overlapping windows.", "",
        "## Training data and licence", "", data_note or KEMDY20_NOTE, "",
        "## Protocol", "",
        f"- split: `{split}` — {protocol}",
        f"- config: `{cfg.name}`, training seed {metas['multimodal'].get('seed', cfg.seed)}",
        f"- text model (frozen): {text_model_line(manifest, cfg)}", "",
        "## Test metrics", "", *metrics_lines(metrics), "",
        "## Inference is " + ("a random draw" if random_in_eval else "deterministic"), "",
        randomness_note(random_in_eval), "",
        "## Config", "", *config_lines(cfg), "",
    ]
    return "\n".join(lines)


def text_model_line(manifest: dict, cfg: Config) -> str:
    from koemo.text.standin import STANDIN_KEYWORD

    parts = [f"{part} `{ref}`" + ("" if "/" in ref else " (a folder of this repository)")
             for part, ref in (("tokenizer", manifest.get("tokenizer", "?")),
                               ("encoder", manifest.get("encoder", "?")))]
    if cfg.text.encoder == STANDIN_KEYWORD:
        parts.append("a small KoBERT stand-in trained on the corpus transcripts, not KoBERT")
    return ", ".join(parts)


def metrics_lines(metrics: dict) -> list[str]:
    if not metrics:
        return ["No test metrics were found next to the exported runs; "
                "evaluate with `koemo evaluate` before trusting this model."]
    lines = []
    clf = metrics.get("multimodal")
    if clf:
        base = clf.get("baseline", {})
        lines += [f"Emotion classifier on the test set (n = {clf.get('n', '?')}, whole-set metrics), "
                  f"next to always predicting the training set's majority class "
                  f"(`{base.get('majority_class', '?')}`):", "",
                  "| metric | this model | majority baseline |", "|---|---|---|"]
        lines += [f"| {name} | {_num(clf.get(key))} | {_num(base.get(key))} |" for key, name in CLASS_METRICS]
        lines.append("")
    for stage, target in (("audio", "arousal"), ("text", "valence")):
        values = metrics.get(stage)
        if values:
            shown = ", ".join(f"{k} {_num(v)}" for k, v in values.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)
                              and k not in ("seed", "epochs_trained", "n", "loss"))
            lines.append(f"- {target} regressor ({stage}): {shown}")
    return lines


def randomness_note(random_in_eval: bool) -> str:
    if random_in_eval:
        return ("This checkpoint was trained with the faithful config, which reproduces the "
                "original code's defect of keeping attention dropout on at inference "
                "(`fixes.eval_attention_dropout_off: false`): every prediction is one random draw. "
                "koemo seeds each call (`seed`, default 0), so the same input gives the same "
                "output, but another seed gives another answer; average several seeds or use a "
                "checkpoint trained with the corrected config for stable predictions.")
    return ("Attention dropout is off at inference (`fixes.eval_attention_dropout_off: true`): "
            "the same input always gives the same output.")


def config_lines(cfg: Config) -> list[str]:
    fc = cfg.features
    lines = ["| setting | value |", "|---|---|",
             f"| features | {fc.n_mels} mel bins + delta, n_fft {fc.n_fft}, hop {fc.hop_length}, "
             f"{fc.sample_rate} Hz, window {fc.max_frames} frames |",
             f"| text max_length | {cfg.text.max_length} |",
             f"| d_model | {cfg.models.d_model} |",
             f"| label policy | {cfg.data.label_policy} |"]
    lines += [f"| fixes.{name} | {str(bool(value)).lower()} |" for name, value in sorted(cfg.fixes.as_dict().items())]
    lines += ["", "The whole config is in each stage's `meta.json`."]
    return lines


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"
