"""Mutation testing (mutmut) over the modules that decide results: `make mutation`.

    .venv/bin/python -m benchmarks.mutation                      # every module below
    .venv/bin/python -m benchmarks.mutation --only metrics splits runlock
    .venv/bin/python -m benchmarks.mutation --only models --work data/mutation-models
    .venv/bin/python -m benchmarks.mutation --only models --work data/mutation-models --rerun-survivors

mutmut mutates one function at a time (an operator, a constant, a comparison) and runs the tests
that cover that function; a mutant no test kills ("survived") marks behaviour no test pins.
The run happens in a copy under data/mutation/ (git-ignored) with a [tool.mutmut] section for
the chosen modules, so pyproject.toml carries no mutmut state. Writes
benchmarks/results/<date>-mutation.json: per module its score, counts, tests and every
surviving mutant's diff, under "modules". Runs of other modules on the same day merge into that
file (a module run again replaces its own entry), so modules can be run one at a time.
--rerun-survivors runs only the survivors of the run kept in --work again, against the tests of
today (after tests were added for them); the entry keeps the full run's wall time and counts
(`survivors_rerun.first_run_stats`) beside the re-run's.
Slow (minutes per module on two cores): not part of `make test`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
    "collector": ("src/koemo/dataset/collector.py",
                  ["tests/test_prepare.py", "tests/test_prepare_reported_drops.py"]),
    # Of tests/test_fix_reads.py only the tests of this module's reads: its other tests build a
    # tiny workdir and train a predictor (minutes per mutant on two cores).
    "models": ("src/koemo/modeling/models.py",
               ["tests/test_models.py", "tests/test_mutation_survivors.py",
                "tests/test_fix_reads.py::test_classifier_lstm_ignores_trailing_padding_only_with_last_valid_step",
                "tests/test_fix_reads.py::test_the_seven_label_policy_gives_seven_logits"]),
    "checkpoint": ("src/koemo/modeling/checkpoint.py",
                   ["tests/test_checkpoint.py", "tests/test_mutation_survivors.py",
                    "tests/test_fix_reads.py::test_checkpoints_record_and_check_their_own_label_policy"]),
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
            "process_isolation = \"forkserver\"\n"
            # mutmut's CPU limit per mutant is (the covering tests' own durations + this) x 30;
            # the durations leave out fixtures (test_prepare's builds a corpus, a table and
            # features: ~35 s on two busy cores), whose mutants then "time out" unkilled.
            "timeout_constant = 60\n")


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


def mutmut_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def mutmut(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=mutmut_env(),
                          capture_output=True, text=True, check=check)


def mutmut_run(work: Path, names: list[str], time_limit_s: float | None
               ) -> subprocess.CompletedProcess:
    """`mutmut run [names]`; past time_limit_s it is interrupted as by Ctrl-C (mutmut stops its
    workers and keeps every verdict so far; the rest stay "not checked")."""
    with subprocess.Popen([sys.executable, "-m", "mutmut", "run", *names], cwd=work,
                          env=mutmut_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def statuses(work: Path) -> dict[str, str]:
    """{mutant name: status} for every mutant of the run (`mutmut results --all true`)."""
    out = {}
    for line in mutmut(work, "results", "--all", "true").stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            out[name] = status
    return out


def module_of(mutant: str) -> str:
    """Dotted module of a mutant name: koemo.modeling.models.x_f__mutmut_3 -> koemo.modeling.models
    (a method's mutant, koemo.m.xǁClassǁf__mutmut_1, likewise)."""
    return mutant.rpartition(".")[0]


def dotted(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def module_entry(name: str, status_by_mutant: dict[str, str], work: Path) -> dict:
    """One module's counts (the keys of mutmut's export-cicd-stats), score and survivors."""
    mine = {m: s for m, s in status_by_mutant.items() if module_of(m) == dotted(MODULES[name][0])}
    stats = {key: 0 for key in ("killed", "survived", "total", "no_tests", "skipped", "suspicious",
                                "timeout", "check_was_interrupted_by_user", "segfault")}
    for status in mine.values():
        key = status.replace(" ", "_")
        stats[key] = stats.get(key, 0) + 1
    stats["total"] = len(mine)
    # A run limited by --mutants or --time-limit leaves mutants "not checked": the score is
    # then over the checked ones (stats.total - stats.not_checked), and says so.
    killed, checked = stats["killed"], stats["total"] - stats.get("not_checked", 0)
    return {"module": MODULES[name][0], "tests": MODULES[name][1], "stats": stats,
            "score": round(killed / checked, 4) if checked else None,
            "score_over": "all mutants" if checked == stats["total"] else "checked mutants",
            "survivors": [{"mutant": m, "diff": mutmut(work, "show", m).stdout.strip()}
                          for m, s in mine.items() if s == "survived"]}


def merge_day(out: Path, date: str, entries: dict[str, dict]) -> dict:
    """The day's file with these modules' entries added (or replacing their earlier ones)."""
    day = {"date": date, "modules": {}}
    if out.exists():
        old = json.loads(out.read_text(encoding="utf-8"))
        if all(isinstance(v, dict) for v in old.get("modules", {}).values()):
            day["modules"].update(old.get("modules", {}))
        else:  # the single-run layout of 2026-12-02 (modules: {name: path}): kept whole
            day["earlier_run"] = old
    day["modules"].update(entries)
    day["modules"] = dict(sorted(day["modules"].items()))
    return day


def rerun_survivors(work: Path, names: list[str], patterns: list[str], time_limit_s: float | None
                    ) -> tuple[subprocess.CompletedProcess, int]:
    """Run the surviving (or timed-out) mutants of an earlier run in `work` (those matching
    `patterns`, if any) again against today's tests (the tests folder is copied in afresh; mutmut collects
    coverage for new tests itself). One not reached within the time limit stays a survivor."""
    shutil.rmtree(work / "tests")
    shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    wanted = {dotted(MODULES[n][0]) for n in names}
    alive = [m for m, s in statuses(work).items()
             if s in ("survived", "timeout") and module_of(m) in wanted
             and (not patterns or any(fnmatch.fnmatchcase(m, p) for p in patterns))]
    if not alive:
        raise SystemExit(f"no surviving mutants of {', '.join(names)} in {work}")
    return mutmut_run(work, alive, time_limit_s), len(alive)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(MODULES), default=sorted(MODULES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default=str(REPO / "data" / "mutation"))
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="in --work, kept from an earlier run of the same modules, run only "
                             "its survivors again against the current tests (after adding tests)")
    parser.add_argument("--mutants", nargs="+", default=[], metavar="GLOB",
                        help="only these mutants (mutmut names, * allowed), e.g. "
                             "'koemo.dataset.prepare.x__check_row*'")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES",
                        help="stop mutmut after this long; unchecked mutants stay out of the score")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if not args.rerun_survivors:
        prepare_copy(work, args.only)
    from benchmarks.common import machine_description
    machine, load_before, started = machine_description(), os.getloadavg(), time.monotonic()
    time_limit_s = args.time_limit * 60 if args.time_limit is not None else None
    if args.rerun_survivors:
        run, n_rerun = rerun_survivors(work, args.only, args.mutants, time_limit_s)
    else:
        run = mutmut_run(work, args.mutants, time_limit_s)
    wall_s, load_after = round(time.monotonic() - started, 1), os.getloadavg()
    status_by_mutant = statuses(work)
    command = "python -m benchmarks.mutation --only " + " ".join(args.only)
    if args.mutants:
        command += " --mutants " + " ".join(f"'{m}'" for m in args.mutants)
    if args.time_limit is not None:
        command += f" --time-limit {args.time_limit:g}"
    run_info = {"command": command,
                "run_modules": args.only, "machine": machine, "mutmut_exit": run.returncode,
                "wall_s": wall_s, "load_1_5_15_before": [round(x, 2) for x in load_before],
                "load_1_5_15_after": [round(x, 2) for x in load_after]}
    date = dt.date.today().isoformat()
    out = Path(args.out) / f"{date}-mutation.json"
    earlier = merge_day(out, date, {})["modules"]
    entries = {}
    for n in args.only:
        entry = module_entry(n, status_by_mutant, work)
        if args.rerun_survivors:
            # The full run's facts stay; the re-run's are added beside them.
            first = {k: v for k, v in earlier.get(n, {}).items() if k in run_info}
            entry.update(first or run_info)
            entry["survivors_rerun"] = {**run_info, "command": run_info["command"]
                                        + " --rerun-survivors", "mutants_rerun": n_rerun,
                                        "first_run_stats": earlier.get(n, {}).get("stats")}
        else:
            entry.update(run_info)
        entries[n] = entry
    out.write_text(json.dumps(merge_day(out, date, entries), indent=2) + "\n", encoding="utf-8")
    for name, entry in entries.items():
        stats = entry["stats"]
        print(f"{name}: mutation score {entry['score']} ({stats['killed']} of {stats['total']} "
              f"killed, {stats['survived']} survived, {stats['no_tests']} no tests)")
    print(f"{wall_s:.0f} s -> {out}")


if __name__ == "__main__":
    main()
