"""Every cache and run key koemo derives from a shipped config, as one JSON-able dict.

`tests/golden/fingerprints.json` was written by `python -m tests.golden_fingerprints` before the
package was reorganised and the config became a typed schema; `test_golden_fingerprints` checks
the code still derives exactly these keys, so no user's feature stores, text caches, encoder
caches or finished runs are invalidated by a refactor.
"""
from __future__ import annotations

import json
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "fingerprints.json"
STAGES = ("audio", "text", "multimodal")
# Where the prepared-table fingerprint's corpus root is taken (no files: the root's path and its
# file list are the machine's, the rest is the config's).
ABSENT_ROOT = Path("/nonexistent/koemo-golden-corpus")


def shipped_configs() -> list[str]:
    from koemo.config.assets import configs_dir
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def config_keys(name: str) -> dict:
    from koemo.audio.encoder_store import store_key
    from koemo.config.load import load_config
    from koemo.config.fingerprints import feature_fingerprint, fingerprint
    from koemo.dataset.prepare import input_fingerprint
    from koemo.experiments import plan as ex
    from koemo.modeling.resume import resume_fingerprint
    from koemo.modeling.runs import run_dir_for

    cfg = load_config(name)
    as_written = cfg.as_dict() if hasattr(cfg, "as_dict") else cfg
    keys = {"config": fingerprint(as_written), "features": feature_fingerprint(cfg),
            "prepared_table": input_fingerprint(ABSENT_ROOT, cfg)}
    for stage in STAGES:
        keys[f"resume/{stage}"] = resume_fingerprint(cfg, stage)
        keys[f"resume_legacy/{stage}"] = resume_fingerprint(cfg, stage, legacy=True)
    if (as_written["models"]["audio"].get("frontend") or "mel") == "encoder":
        keys["encoder_store"] = fingerprint(store_key(cfg, "folder-fingerprint"))
    runs = {}
    workdir = Path("W")
    for part, specs in ex.plan_parts(cfg, workdir).items():
        for spec in specs:
            runs["/".join(map(str, spec.key))] = {
                "part": part, "identity": list(ex.run_identity(spec)),
                "run_dir": str(run_dir_for(workdir, spec.cfg, spec.stage, spec.seed,
                                               spec.classifier_kind).relative_to(workdir))}
    keys["runs"] = runs
    return keys


def all_keys() -> dict:
    return {name: config_keys(name) for name in shipped_configs()}


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(all_keys(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
