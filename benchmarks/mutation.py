"""Mutation testing (mutmut) over the modules that decide results: `make mutation`.

    .venv/bin/python -m benchmarks.mutation                      # every module below
    .venv/bin/python -m benchmarks.mutation --only metrics splits runlock

mutmut mutates one function at a time (an operator, a constant, a comparison) and runs the tests
that cover that function; a mutant no test kills ("survived") marks behaviour no test pins.
The run happens in a copy under data/mutation/ (git-ignored) with a [tool.mutmut] section for
the chosen modules, so pyproject.toml carries no mutmut state. Writes
benchmarks/results/<date>-mutation.json (score, counts, every surviving mutant's diff).
Slow (minutes per module on two cores): not part of `make test`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# name -> (module to mutate, the fast tests that exercise it)
MODULES = {
    "metrics": ("src/koemo/modeling/metrics.py", ["tests/test_metrics.py", "tests/test_mutation_survivors.py"]),
    "splits": ("src/koemo/dataset/splits.py", ["tests/test_splits.py", "tests/test_mutation_survivors.py"]),
    "runlock": ("src/koemo/experiments/runlock.py", ["tests/test_runlock.py"]),
    "augment": ("src/koemo/dataset/augment.py", ["tests/test_augment.py"]),
    "kemdy20": ("src/koemo/dataset/kemdy20.py", ["tests/test_dataset.py"]),
    "prepare": ("src/koemo/dataset/prepare.py",
                ["tests/test_prepare.py", "tests/test_prepare_reported_drops.py"]),
    "models": ("src/koemo/modeling/models.py", ["tests/test_models.py", "tests/test_fix_reads.py"]),
    "checkpoint": ("src/koemo/modeling/checkpoint.py",
                   ["tests/test_checkpoint.py", "tests/test_fix_reads.py"]),
}
COPIED = ("src", "tests", "configs", "benchmarks", "pyproject.toml", "setup.py")


def mutmut_section(names: list[str]) -> str:
    files = [MODULES[n][0] for n in names]
    tests = sorted({t for n in names for t in MODULES[n][1]})
    quoted = lambda items: "[" + ", ".join(json.dumps(i) for i in items) + "]"  # noqa: E731
    return ("\n[tool.mutmut]\nsource_paths = [\"src\"]\n"
            f"only_mutate = {quoted(files)}\n"
            f"pytest_add_cli_args_test_selection = {quoted(tests + ['-m', 'not slow'])}\n"
            "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-x\"]\n"
            "also_copy = [\"configs\", \"benchmarks\", \"setup.py\"]\n"
            "process_isolation = \"forkserver\"\n")


def prepare_copy(work: Path, names: list[str]) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "_data", "results")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, work / name)
    with open(work / "pyproject.toml", "a", encoding="utf-8") as fh:
        fh.write(mutmut_section(names))


def mutmut(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env,
                          capture_output=True, text=True, check=check)


def survivors(work: Path) -> list[dict]:
    names = [line.split(":")[0].strip() for line in mutmut(work, "results").stdout.splitlines()
             if line.strip().endswith("survived")]
    return [{"mutant": name, "diff": mutmut(work, "show", name).stdout.strip()} for name in names]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(MODULES), default=sorted(MODULES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default=str(REPO / "data" / "mutation"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    prepare_copy(work, args.only)
    run = mutmut(work, "run", check=False)
    mutmut(work, "export-cicd-stats")
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text(encoding="utf-8"))
    from benchmarks.common import machine_description
    killed, total = stats.get("killed", 0), stats.get("total", 0)
    result = {"date": dt.date.today().isoformat(), "modules": {n: MODULES[n][0] for n in args.only},
              "tests": {n: MODULES[n][1] for n in args.only}, "machine": machine_description(),
              "mutmut_exit": run.returncode, "stats": stats,
              "score": round(killed / total, 4) if total else None,
              "survivors": survivors(work)}
    out = Path(args.out) / f"{result['date']}-mutation.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"mutation score {result['score']} ({killed} of {total} killed) -> {out}")


if __name__ == "__main__":
    main()
