"""Run chosen tests against a mutated copy of src/ (a planted bug, or one switch read ignored):
a mutant is killed when those tests fail. The copy is imported through PYTHONPATH, ahead of the
installed (editable) koemo; the fast suite only (`-m "not slow"`), so a kill counts for
`make test-fast`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST_TESTS_FAILED = 1          # pytest's exit code when tests ran and some failed


def mutated_copy(tmp: Path, files: dict[Path, str]) -> Path:
    """src/ copied under tmp with each file of `files` (a path in src/) given its new text.
    The copy is a checkout (pyproject.toml, and configs/ and notebooks/ linked), so the mutant
    finds the configs as the real tree does (koemo.config.assets): a test that needs one fails
    on the planted bug, never on a missing config."""
    src = tmp / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", tmp / "pyproject.toml")
    for folder in ("configs", "notebooks"):
        (tmp / folder).symlink_to(REPO / folder, target_is_directory=True)
    for path, text in files.items():
        (src / Path(path).resolve().relative_to(REPO / "src")).write_text(text, encoding="utf-8")
    return src


def run_fast_tests(src: Path, node_ids: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow",
           "-o", "addopts=", *node_ids]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def imported_from(src: Path) -> str:
    """Where a child process with this PYTHONPATH imports koemo from."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", "import koemo; print(koemo.__file__)"], cwd=REPO,
                          env=env, capture_output=True, text=True, check=True).stdout.strip()


def killed(src: Path, node_ids: list[str]) -> tuple[bool, str]:
    """(the tests failed on the mutant, pytest's summary): only "tests ran and failed" kills;
    no test collected (e.g. all slow) or a usage error does not."""
    result = run_fast_tests(src, node_ids)
    summary = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
    return result.returncode == PYTEST_TESTS_FAILED, summary[0]
