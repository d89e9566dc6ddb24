"""Experiments: the plans of runs behind the paper's tables, run locks, worker processes,
scale-out (exported plans, SLURM) and the front-end study."""
