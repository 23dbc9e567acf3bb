#!/usr/bin/env bash
# Take the GPU figures on a lent machine (the `device` tool), in the repo root there:
#   carry: [".whl"]   command: "bash benchmarks/device_run.sh"   timeout_s: 540
# Arguments go to end_to_end.py (e.g. --config benchmarks/end_to_end_quick.yaml); SPEED_ARGS
# to speed.py (e.g. "--only data"), SPEED_SECONDS and END_TO_END_SECONDS bound each stage
# (0 skips it).
# Installs the carried wheels (see benchmarks/README.md), then runs, each under its own time
# limit so one overrun cannot cost the other's figures:
#   1. speed.py at full scale (its measurements are saved as they come), profiled: eager,
#      sampling with the LoRA unmerged, then torch.compile (regional, then whole);
#   2. end_to_end.py: realfill.fit with configs/realfill.yaml, then 64 candidates ranked.
# Everything lands in $OUT, which comes back.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
out="${OUT:-/tmp/device-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
    | tee "$out/gpu.txt"
python3 -c "import torch, diffusers, peft, transformers; print(torch.__version__, \
diffusers.__version__, peft.__version__, transformers.__version__)" | tee -a "$out/gpu.txt"

if [ "${SPEED_SECONDS:-300}" != 0 ]; then
    timeout -k 20 "${SPEED_SECONDS:-300}" python3 benchmarks/speed.py --steps 6 --num_workers 8 \
        ${SPEED_ARGS:---only unmerged --compile regional whole --profile} --out "$out" \
        > "$out/speed.log" 2>&1
    echo "speed.py exit $?"; grep -v "^\[transformers\]" "$out/speed.log" | tail -n 25
fi

if [ "${END_TO_END_SECONDS:-200}" != 0 ]; then
    timeout -k 20 "${END_TO_END_SECONDS:-200}" python3 benchmarks/end_to_end.py \
        --trainer.default_root_dir=/tmp/end_to_end "$@" > "$out/end_to_end.log" 2>&1
    echo "end_to_end.py exit $?"
    tr '\r' '\n' < "$out/end_to_end.log" | grep -v "it/s\]\|s/it\]" | tail -n 30
fi
