"""The type check (issue #30): mypy, with the settings in pyproject.toml [tool.mypy], finds no
error in src/koemo, and those settings are strict enough to refuse a dict where a config section
is expected (tests/typing_cases/). Its cache is the checkout's .mypy_cache (git-ignored): the
first run checks every module (about a minute), later ones only what changed (seconds)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "typing_cases"


def mypy(*targets: str) -> subprocess.CompletedProcess:
    """mypy as `make test` runs it: the project's settings, from the checkout's root."""
    return subprocess.run([sys.executable, "-m", "mypy", *targets], cwd=REPO,
                          capture_output=True, text=True)


def test_src_type_checks_without_an_error(type_check):
    output, _ = type_check.communicate()       # started by conftest.py beside the other tests
    assert type_check.returncode == 0, f"mypy found errors in src/koemo:\n{output}"


def refused_lines(path: Path) -> dict[int, str]:
    """line -> error code the case file marks as `refused: CODE`."""
    return {number: line.rsplit("refused:", 1)[1].strip()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if "# refused:" in line}


def test_a_dict_where_a_section_is_expected_is_refused():
    case = CASES / "dict_for_section.py"
    result = mypy(str(case.relative_to(REPO)))
    found = {int(m[1]): m[2] for m in re.finditer(
        rf"{re.escape(case.name)}:(\d+): error: .*\[([a-z-]+)\]$", result.stdout, re.MULTILINE)}
    assert found == refused_lines(case), result.stdout
