"""The numbered notebooks: generated, thin, parameterised, and runnable end to end."""
import json
import subprocess
import sys

import pytest

from koemo.reporting.reproduce import NOTEBOOK_ORDER, notebooks_dir

NOTEBOOKS = notebooks_dir()


def test_committed_notebooks_match_their_generator():
    result = subprocess.run([sys.executable, str(NOTEBOOKS / "build_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", NOTEBOOK_ORDER)
def test_notebook_is_parameterised_and_has_no_outputs(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    # thin: every code cell calls koemo; none defines its own functions or classes
    body = "".join("".join(c["source"]) for c in code[2:])
    assert "koemo" in body and "\ndef " not in body and "\nclass " not in body


@pytest.mark.slow
def test_reproduce_runs_every_notebook_on_the_tiny_config(tmp_path):
    from koemo.reporting.reproduce import reproduce

    out = tmp_path / "paper"
    # The notebooks train in their own process: spawning two workers per plan costs more than
    # these tiny runs take to train (notebooks training in workers: tests/test_interrupted.py).
    # One epoch a stage: nothing below depends on more (several epochs, early stopping and the
    # best checkpoint: tests/test_train.py, tests/test_fix_reads.py).
    overrides = ["reproduce.parallel_runs=1"] + [f"train.{stage}.epochs=1" for stage in
                                                 ("audio", "text", "multimodal")]
    timings = reproduce("tiny", tmp_path / "work", out, synthetic=True, overrides=overrides)
    assert [row["notebook"] for row in timings] == list(NOTEBOOK_ORDER)
    page = (out / "README.md").read_text(encoding="utf-8")
    for section in ("Final multimodal test", "Audio regressor (arousal)", "Text regressor (valence)",
                    "Welch ANOVA by emotion", "Fusion study", "paired by fold", "paper (reported)",
                    "macro_f1 unseen text", "Cross-corpus evaluation",
                    "Foundation models: KEMDy20 session folds"):
        assert section in page
    assert "No cross-corpus study: it needs a KEMDy19 copy" in page    # tiny: no synthetic KEMDy19
    assert (out / "figures" / "confusion.png").stat().st_size > 1000
    assert (out / "figures" / "fusion.png").stat().st_size > 1000
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["config"]["name"] == "tiny" and record["versions"]["torch"]
    assert (tmp_path / "work" / "notebooks" / "5-2_fusion_study.ipynb").is_file()
    # every table and report a run writes names paths relative to the corpus or the workdir
    machine_paths = [str(tmp_path)]
    for path in sorted(out.rglob("*")):
        if path.suffix in (".csv", ".md", ".json"):
            text = path.read_text(encoding="utf-8")
            assert not any(p in text for p in machine_paths), path
