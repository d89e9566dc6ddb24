"""Speed and memory benchmarks: `python -m benchmarks [--size tiny|full] [--only NAME]`.

Each `benchmarks/bench_<topic>.py` exposes `run(size: str) -> list[dict]`; see README.md."""
