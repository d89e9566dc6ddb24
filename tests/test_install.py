"""koemo installed from a wheel, without a checkout: configs, folds and notebooks travel inside
the package (koemo/_data, written by setup.py at build time)."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(out: Path) -> Path:
    """Build without isolation, with the build backend the dev set-up installs (setuptools>=77,
    pyproject.toml's build-system and dev extra): offline, pip could not fetch one. An older or
    missing setuptools fails here, never skips: the test must run wherever `make test` does."""
    try:
        import setuptools
        version = setuptools.__version__
    except ImportError:
        version = "none"
    if version == "none" or int(version.split(".")[0]) < 77:
        pytest.fail(f"setuptools>=77 (the build backend) is not installed ({version}): "
                    "`make setup` installs it from requirements/dev-lock.txt", pytrace=False)
    import shutil

    # Build from a copy of what the package is made of: an in-tree build would leave build/ and
    # src/koemo.egg-info in the checkout.
    source = out.parent / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "_data", ".ipynb_checkpoints")
    for name in ("src", "configs", "notebooks"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    result = subprocess.run(cmd + ["--no-build-isolation"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("koemo-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_install_finds_configs_and_notebooks_without_a_checkout(tmp_path):
    import zipfile

    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("koemo/_data/configs/paper.yaml", "koemo/_data/configs/folds/kemdy20_cv5.csv",
                 "koemo/_data/notebooks/1-1_data_aggregation.ipynb",
                 "koemo/py.typed"):         # PEP 561: type checkers read koemo's annotations
        assert name in names
    assert not any(n.startswith("koemo/_data/notebooks/build_") for n in names)

    # A fresh environment whose dependencies come from this one (no torch download): a .pth
    # line adds this site-packages, whose own .pth files (the editable koemo finder) are not
    # processed, so the only koemo there is the wheel's.
    venv = tmp_path / "venv"
    # (without PYTHONPATH: a source tree on it, with its egg-info, would count as installed)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # first the wheel (pip would see this environment's koemo through the .pth line)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "-q", str(wheel)], check=True, capture_output=True, env=env)
    (site / "_koemo_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    here = tmp_path / "empty"
    here.mkdir()

    def koemo(*args):
        result = subprocess.run([str(venv / "bin" / "koemo"), *args], cwd=here, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"koemo {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    imported = subprocess.run([str(python), "-c", "import koemo.config.assets as a, koemo.config.load as c; "
                               "print(a.PACKAGE_DIR); print(a.source_checkout()); print(c.CONFIG_DIR)"],
                              cwd=here, env=env, capture_output=True, text=True, check=True)
    package_dir, checkout, config_dir = imported.stdout.split()
    assert Path(package_dir) == site / "koemo" and checkout == "None"
    assert Path(config_dir) == site / "koemo" / "_data" / "configs"

    small = ["--set", "data.folds_file=configs/folds/kemdy20_cv5.csv"]
    koemo("synth", "--out", "corpus", "--sessions", "5", "--utterances-per-session", "12",
          "--mean-duration", "1.5")
    koemo("prepare", "--config", "paper", "--data", "corpus", "--workdir", "work", "--no-progress",
          *small)
    assert (here / "work" / "utterances.parquet").is_file()
    run = koemo("reproduce", "--config", "paper", "--synthetic", "--only", "1-1", "--workdir",
                "work2", "--out", "out", *small, "--set", "synthetic.sessions=5",
                "--set", "synthetic.utterances_per_session=12", "--set", "synthetic.mean_duration=1.5")
    # the command line takes relative paths from the current folder, and prints where they went
    assert f"workdir {here / 'work2'}" in run.stdout
    assert (here / "work2" / "notebooks" / "1-1_data_aggregation.ipynb").is_file()
    assert any((here / "out" / "tables").glob("data_*"))
