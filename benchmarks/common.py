"""What every benchmark shares: discovery, rows, timing, peak memory in a subprocess, the
machine description, and the Markdown/CSV results table."""
from __future__ import annotations

import csv
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SIZES = ("tiny", "full")
REQUIRED_KEYS = ("benchmark", "baseline", "candidate", "baseline_s", "candidate_s", "ratio", "notes")
_CHILD_MARKER = "BENCHMARK-CHILD-RESULT "


def discover(only: str | None = None) -> dict[str, ModuleType]:
    """{name: module} for every benchmarks/bench_<name>.py (or just `only`, with or without
    its bench_ prefix)."""
    names = sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))
    if only is not None:
        wanted = only[len("bench_"):] if only.startswith("bench_") else only
        if wanted not in names:
            raise SystemExit(f"no benchmark named {only!r}; have: {', '.join(names)}")
        names = [wanted]
    modules = {name: importlib.import_module(f"benchmarks.bench_{name}") for name in names}
    for name, module in modules.items():
        if not callable(getattr(module, "run", None)):
            raise SystemExit(f"benchmarks/bench_{name}.py has no run(size) function")
    return modules


def make_row(benchmark: str, baseline: str, baseline_s: float, candidate: str, candidate_s: float,
             notes: str = "", **extra: Any) -> dict:
    """One table row; ratio = baseline_s / candidate_s (above 1: the candidate is faster)."""
    return {"benchmark": benchmark, "baseline": baseline, "candidate": candidate,
            "baseline_s": float(baseline_s), "candidate_s": float(candidate_s),
            "ratio": float(baseline_s) / float(candidate_s), "notes": notes, **extra}


def check_row(row: dict) -> None:
    """Raise ValueError unless the row has every required key and positive times."""
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        raise ValueError(f"benchmark row {row.get('benchmark', '?')!r} lacks {missing}")
    for key in ("baseline_s", "candidate_s", "ratio"):
        if not float(row[key]) > 0:
            raise ValueError(f"benchmark row {row['benchmark']!r}: {key}={row[key]} is not positive")


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """(last result, best wall-clock seconds over `repeat` calls)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this program's own memory.
    Not ru_maxrss: Linux carries the parent's peak across fork+exec into it, so a child
    started from a big benchmark process would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_in_subprocess(target: str, timeout: float | None = None, **kwargs: Any) -> dict:
    """Call `module:function(**kwargs)` in a fresh Python process, so its peak memory is its
    own. Returns the function's JSON-able result dict plus `seconds` (the call alone, not the
    interpreter start or imports) and `peak_rss_mb` (the whole child)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.common", target, json.dumps(kwargs)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {target} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_CHILD_MARKER):])


def _child_main(target: str, kwargs_json: str) -> None:
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result, seconds = timed(lambda: function(**json.loads(kwargs_json)))
    report = dict(result or {}, seconds=seconds, peak_rss_mb=peak_rss_mb())
    print(_CHILD_MARKER + json.dumps(report), flush=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine_description() -> dict[str, str]:
    """CPU, cores, RAM, GPU (via torch.cuda), library versions and the date, for the table."""
    info = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": _cpu_model(), "cores": str(os.cpu_count())}
    if hasattr(os, "sched_getaffinity"):
        info["cores usable"] = str(len(os.sched_getaffinity(0)))
    ram = _ram_gib()
    info["ram"] = f"{ram:.1f} GiB" if ram else "unknown"
    info["python"] = platform.python_version()
    info["platform"] = platform.platform()
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch threads"] = str(torch.get_num_threads())
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        else:
            info["gpu"] = "none"
    except ImportError:
        info["torch"] = "not installed"
    return info


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def results_markdown(rows: list[dict], size: str, machine: dict[str, str],
                     errors: dict[str, str] | None = None) -> str:
    columns = list(REQUIRED_KEYS[:1]) + ["baseline", "baseline_s", "candidate", "candidate_s", "ratio"]
    extra = [k for row in rows for k in row if k not in columns and k != "notes"]
    columns += list(dict.fromkeys(extra)) + ["notes"]
    lines = [f"# Benchmarks ({size}), {machine['date']}", "",
             "ratio = baseline_s / candidate_s (above 1: the candidate is faster).", "",
             "| machine | |", "| --- | --- |"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in machine.items()]
    lines += ["", "| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    for name, message in (errors or {}).items():
        lines += ["", f"**{name} failed:** {_cell(message)}"]
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], size: str, out_dir: str | Path, machine: dict[str, str],
                  errors: dict[str, str] | None = None, suffix: str = "") -> tuple[Path, Path]:
    """Write <out>/<YYYY-MM-DD>-<size><suffix>.md and .csv; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{machine['date'][:10]}-{size}{suffix}"
    md_path, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    md_path.write_text(results_markdown(rows, size, machine, errors), encoding="utf-8")
    fields = list(dict.fromkeys(k for row in rows for k in row)) or list(REQUIRED_KEYS)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return md_path, csv_path


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
