#!/usr/bin/env bash
# The GPU benchmark in one command (one H200 + 16 CPU cores, < 8 minutes), everything as JSON in OUT:
#   machine.json        devices, driver, CPU count, jax version
#   train_step.jsonl    step-only chunks/s and MFU (XLA cost analysis / peak) of the six peer models and the two
#                       private-style models, float32 and bfloat16, at the best batch of a short doubling sweep
#   input_pipeline.jsonl  pipeline-only chunks/s from packed shards (and files) with 15 grain workers
#   end_to_end.jsonl    real training (train_and_evaluate) from packed shards: MSD spectrogram, MTT waveform
#   summary.json        the rows above in one object (benchmarks/gpu_summary.py), also printed as tables
# The generated corpus is made and packed here, on that machine (only the source tree travels there).
#
# Usage: benchmarks/gpu.sh [--cpu-smoke] [OUT]     (PY=python interpreter; default OUT=benchmarks/results/gpu)
# --cpu-smoke: the same phases at toy sizes on CPU (about 3 minutes on 2 cores), to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; shift; fi
OUT=${1:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
phase() { echo "== $1 ($(( $(date +%s) - T0 )) s)"; }

if [ $SMOKE = 1 ]; then
  export JAX_PLATFORMS=cpu
  STEP_MODELS=spec-k8-f64-u200; STEP_SWEEP=2,4; PRIV_MODELS=""; PRIV_SWEEP=""; STEP_ARGS="--steps=1 --repeats=1"
  STEP_LIMIT=600; PIPE_ARGS="--n=16 --clip_seconds=4 --batch=8 --batches=2 --repeats=1 --workers=2"
  E2E_MODELS=smoke; E2E_ARGS="--windows=1 --window_steps=2 --batch=4"; E2E_LIMIT=600
else
  # wave-x4 first: its bf16 MFU is a goal (>= 40 %); private-style (15-s chunks) sweep smaller batches
  STEP_MODELS=wave-x4-f512-u500,spec-k16-f512-u500,wave-x1-f512-u500,spec-k8-f512-u500,wave-x2-f64-u200,spec-k8-f64-u200
  STEP_SWEEP=128,512,2048; PRIV_MODELS=private_waveform,private_spectrogram; PRIV_SWEEP=32,128,512
  STEP_ARGS="--steps=10 --repeats=2"; STEP_LIMIT=300
  PIPE_ARGS="--n=480 --clip_seconds=30 --batch=256 --batches=40 --repeats=2 --workers=15"
  E2E_MODELS=""; E2E_ARGS="--windows=4 --window_steps=20"; E2E_LIMIT=150
fi

phase machine
$PY - "$OUT/machine.json" <<'PYEOF'
import json, os, subprocess, sys, jax
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip() if os.path.exists("/usr/bin/nvidia-smi") else ""
info = {"devices": [str(d) for d in jax.devices()], "device_kind": jax.devices()[0].device_kind,
        "platform": jax.devices()[0].platform, "nvidia_smi": gpu, "cpus": os.cpu_count(), "jax": jax.__version__,
        "load_avg_1m": os.getloadavg()[0]}
json.dump(info, open(sys.argv[1], "w"), indent=2); print(info)
PYEOF

phase "step-only sweep (limit ${STEP_LIMIT}s)"
timeout $STEP_LIMIT $PY benchmarks/train_step.py --models=$STEP_MODELS --dtypes=float32,bfloat16 \
  --batch_sweep=$STEP_SWEEP $STEP_ARGS --deadline_s=$(( STEP_LIMIT * 2 / 3 )) --json_out="$OUT/train_step.jsonl"
if [ -n "$PRIV_MODELS" ]; then
  timeout 120 $PY benchmarks/train_step.py --models=$PRIV_MODELS --dtypes=float32,bfloat16 \
    --batch_sweep=$PRIV_SWEEP $STEP_ARGS --deadline_s=90 --json_out="$OUT/train_step.jsonl"
fi

phase "pipeline-only from packed shards (generated + packed here)"
timeout 120 $PY -m benchmarks.input_pipeline $PIPE_ARGS --chunk_seconds=3 --encodings=auto \
  --pack_dir="$OUT/pack_pipeline" --cache_dir="$OUT/corpus" --json_out="$OUT/input_pipeline.jsonl"

phase "end-to-end from packed shards"
if [ $SMOKE = 1 ]; then
  timeout $E2E_LIMIT $PY -m benchmarks.end_to_end --models=$E2E_MODELS --sources=packed $E2E_ARGS \
    --pack_dir="$OUT/pack_e2e" --json_out="$OUT/end_to_end.jsonl"
else
  for pair in msd_spectrogram:spec-k16-f512-u500 mtt_waveform:wave-x4-f512-u500; do
    model=${pair%%:*}; peer=${pair##*:}   # the end-to-end batch: the best float32 step-only batch of that model
    batch=$($PY benchmarks/gpu_summary.py --best_batch "$peer" "$OUT/train_step.jsonl" 2>/dev/null || echo 256)
    timeout $E2E_LIMIT $PY -m benchmarks.end_to_end --models=$model --sources=packed --batch=$batch $E2E_ARGS \
      --pack_dir="$OUT/pack_e2e" --json_out="$OUT/end_to_end.jsonl"
  done
fi

phase summary
$PY benchmarks/gpu_summary.py "$OUT"
phase done
