#!/usr/bin/env bash
# Run the speed benchmark on a lent GPU machine (the `device` tool), in the repo root there:
#   carry: [".whl"]   command: "bash benchmarks/device_run.sh"   timeout_s: 540
# Installs the carried wheels (see benchmarks/README.md), runs benchmarks/speed.py at full
# scale and copies its log and results to $OUT, which comes back.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-/tmp/speed-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 benchmarks/speed.py --steps 10 --num_workers 8 2>&1 | tee "$out/speed.log"
cp benchmarks/results/*.json benchmarks/results/*.md "$out/"
