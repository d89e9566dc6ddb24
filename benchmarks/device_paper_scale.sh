#!/usr/bin/env bash
# Paper scale on one GPU (issue #14, targets 1, 2 and 4), prepared to run once on a lent GPU
# machine with a Colab-like image (Python 3.12 with torch, transformers, pandas, scikit-learn).
#
#   bash benchmarks/device_paper_scale.sh wheels       # here, with network: .whl/ for the GPU box
#   bash benchmarks/device_paper_scale.sh run OUT_DIR  # there, from the repository root
#   bash benchmarks/device_paper_scale.sh run OUT_DIR tiny   # the same steps in seconds, any machine
#   bash benchmarks/device_paper_scale.sh run OUT_DIR paper packing   # issue #24: 1/2/4/8 runs
#                                      # at once per stage, trimmed vs whole batches (own call)
#
# `wheels` downloads the few packages such an image lacks that koemo's synth, prepare and train
# import (soundfile and its cffi, soxr), for CPython 3.12 on x86-64 Linux, into .whl/ (ignored
# by git). `run` installs them beside the image's own packages (its torch untouched), prints
# the card, and runs `python -m benchmarks.paper_scale --size paper` (benchmarks/paper_scale.py:
# a KEMDy20-sized synthetic corpus, two epochs of each stage, the projected paper-run and
# plan minutes, then loop vs model per stage over 150 steps) under a 9-minute limit; results land in OUT_DIR as
# paper_scale.json and paper_scale.md after every step, so a cut-short run keeps its figures.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS="soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0"

case "${1:-}" in
  wheels)
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    for wheel in $WHEELS; do
      python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$wheel"
    done
    ls .whl
    ;;
  run)
    out="${2:?usage: $0 run OUT_DIR [paper|tiny]}"
    size="${3:-paper}"
    parts="${4:-scale}"           # scale (issue #14's figures) | packing (issue #24) | scale,packing
    mkdir -p "$out"
    export PYTHONPATH="$PWD/src"
    if ls .whl/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/koemo-site .whl/*.whl
      export PYTHONPATH="/tmp/koemo-site:$PYTHONPATH"
    fi
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.csv" || true
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    timeout 540 python3 -m benchmarks.paper_scale --size "$size" --out "$out" --parts "$parts" --workdir-root "data/bench/paper-scale-$size" 2>&1 | tee "$out/log.txt"
    ;;
  *)
    sed -n "2,17p" "$0"
    exit 2
    ;;
esac
