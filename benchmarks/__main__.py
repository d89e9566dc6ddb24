"""python -m benchmarks [--size tiny|full] [--only NAME] [--out benchmarks/results]"""
from __future__ import annotations

import argparse
import sys
import traceback

from benchmarks.common import SIZES, check_row, discover, machine_description, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="full",
                        help="tiny: seconds (what the test runs); full: paper-sized, minutes")
    parser.add_argument("--only", help="run one benchmark, e.g. features (bench_features.py)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the .md/.csv table")
    args = parser.parse_args(argv)

    rows, errors = [], {}
    for name, module in discover(args.only).items():
        print(f"[benchmarks] {name} ({args.size}) ...", flush=True)
        try:
            new_rows = module.run(args.size)
            for row in new_rows:
                check_row(row)
            rows += new_rows
        except Exception as err:  # one broken benchmark must not lose the others' numbers
            traceback.print_exc()
            errors[name] = f"{type(err).__name__}: {err}"
    md_path, csv_path = write_results(rows, args.size, args.out, machine_description(), errors,
                                      suffix=f"-{args.only}" if args.only else "")
    print(md_path.read_text(encoding="utf-8"))
    print(f"[benchmarks] wrote {md_path} and {csv_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
