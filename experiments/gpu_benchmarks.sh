#!/usr/bin/env bash
# The GPU figures of the README in one go: sampler throughput against the memory roofline, a plain
# jitted JAX loop and transformers' `generate` (Qwen2.5-0.5B / 1.5B shapes, bf16, prompt 128,
# 512 new tokens, batch 1 / 32 / 256), and the training step's tokens/s and MFU.
#
#   bash experiments/gpu_benchmarks.sh LOG_DIR [sampler-0.5b] [sampler-1.5b] [train] ...
#
# Each part writes LOG_DIR/<part>.log and is bounded by PART_TIMEOUT seconds (default 280), so one
# slow part cannot hide the others' figures. JAX gets XLA_PYTHON_CLIENT_MEM_FRACTION of the GPU
# (default 0.6) so that transformers' `generate` in the same process has room.
set -u
out=${1:?usage: gpu_benchmarks.sh LOG_DIR [part ...]}
shift
parts=${*:-sampler-0.5b train sampler-1.5b}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
limit=${PART_TIMEOUT:-280}

run_part() {
  local name=$1; shift
  echo "== $name: $*"
  local start=$SECONDS
  timeout "$limit" "$py" "$@" 2>&1 | tee "$out/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

for part in $parts; do
  case $part in
    sampler-0.5b) run_part "$part" "$here/sampler_benchmark.py" --shape qwen2.5-0.5b \
        --dtype bfloat16 --batch 1,32,256 --prompt_len 128 --new_tokens 512 ;;
    sampler-1.5b) run_part "$part" "$here/sampler_benchmark.py" --shape qwen2.5-1.5b \
        --dtype bfloat16 --batch 1,32,256 --prompt_len 128 --new_tokens 512 ;;
    train) run_part "$part" "$here/train_step_benchmark.py" --shape qwen2.5-0.5b \
        --dtype bfloat16 --batch 16 --seq_len 640 --chunks 128 --measure --steps 10 ;;
    train-remat) run_part "$part" "$here/train_step_benchmark.py" --shape qwen2.5-0.5b \
        --dtype bfloat16 --batch 64 --seq_len 640 --chunks 128 --remat --measure --steps 10 ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
