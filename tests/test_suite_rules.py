"""The rules the test suite sets itself, checked on its own source: speed is measured by
benchmarks, never asserted in seconds; a wait that can hang names what hung; a test of something
the project installs fails when it is missing instead of skipping."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CLOCKS = {"monotonic", "perf_counter", "time", "process_time"}


def _sources() -> list[Path]:
    return sorted(TESTS.glob("*.py"))


def _is_clock_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCKS and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "time")


def _reads_clock(node: ast.AST) -> bool:
    return any(_is_clock_call(n) for n in ast.walk(node))


def _is_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.BinOp) and _is_constant(node.left) and _is_constant(node.right))


def violations(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            sides = [node.test.left, *node.test.comparators]
            if any(isinstance(s, ast.BinOp) and _reads_clock(s) for s in sides) and any(
                    _is_constant(s) for s in sides):
                found.append(f"{name}:{node.lineno}: asserts an elapsed time in seconds "
                             "(a benchmark's job; use tests.deadline for a hang guard)")
            elif any(_reads_clock(s) for s in sides) and node.msg is None:
                found.append(f"{name}:{node.lineno}: a deadline assert that does not say what hung")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "importorskip"):
            found.append(f"{name}:{node.lineno}: importorskip (an installed dependency must "
                         "fail when missing, not skip)")
    return found


def test_no_test_times_itself_skips_an_installed_package_or_waits_silently():
    found = [v for path in _sources() for v in violations(path.read_text(encoding="utf-8"), path.name)]
    assert found == []


@pytest.mark.parametrize("source, why", [
    ("import time\nstart = time.monotonic()\nassert time.monotonic() - start < 5\n", "elapsed"),
    ("import time\nt = time.perf_counter()\nassert 60 > time.perf_counter() - t, 'x'\n", "elapsed"),
    ("import time\nassert time.monotonic() < deadline\n", "what hung"),
    ("import pytest\nsilero = pytest.importorskip('silero_vad')\n", "importorskip"),
])
def test_each_rule_catches_its_breach(source, why):
    assert [v for v in violations(source, "t.py") if why in v]


def test_a_named_deadline_and_a_benchmark_style_timing_pass():
    ok = ("import time\ndeadline = time.monotonic() + 9\n"
          "assert time.monotonic() < deadline, 'the build never started'\n"
          "seconds = time.perf_counter() - deadline\n")
    assert violations(ok, "t.py") == []
