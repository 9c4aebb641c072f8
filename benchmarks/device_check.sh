#!/usr/bin/env bash
# The GPU check in one call: installs the wheelhouse, checks the backend, then runs six phases, each writing its
# rows to OUT/rows.jsonl as soon as they exist, and ends with OUT/summary.md and OUT/summary.json.
#   1 env      versions, device, memory          4 kernels  fused CPU rewrites vs plain forms (model.kernels)
#   2 matmul   measured bf16 peak (MFU's base)    5 e2e      training from packed shards of the generated corpus
#   3 step     step-only chunks/s and MFU of the paper's models, float32 and bfloat16, batch sweep
#   6 smoke    a short training run on the generated corpus: test ROC-AUC and wall time
# Every phase has a time budget inside one global deadline (DEADLINE_S, default 450 s: the whole call stays under
# 8 minutes, under the device machine's 10-minute command limit); a phase past its budget starts nothing new and
# is killed a little later, keeping the rows it wrote. Corpora, packs and runs go to a temporary directory.
#
# Usage: benchmarks/device_check.sh [--dry-run] [OUT]
#   OUT        default: $OUT (the device machine's output folder), else benchmarks/results/device
#   --dry-run  every phase at toy sizes on the CPU, no backend check (tests/test_device_check.py runs it)
# Environment: PYTHON (default python3), WHEELS (default .whl, made by benchmarks/device_wheels.sh: installed
#   with no index into a temporary target when present), DEADLINE_S.
# On the device machine (the wheelhouse named in the call's carry):
#   benchmarks/device_check.sh 2>&1 | tee "$OUT/log.txt"
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi
out="${1:-${OUT:-benchmarks/results/device}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out/rows.jsonl" "$out/summary.md" "$out/summary.json"   # each call is one whole check
python="${PYTHON:-python3}"
wheels="${WHEELS:-.whl}"
work="$(mktemp -d "${TMPDIR:-/tmp}/jaxtag-device.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

if (( dry )); then
  deadline=${DEADLINE_S:-200}
  # XLA:CPU's cheap back-end mode: compiling is most of a dry run's time, and speed is not what it checks
  export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
else
  deadline=${DEADLINE_S:-450}
fi
# each phase's share (%) of the deadline, less 10 s kept for the summary; a phase that ends early leaves its
# time to the next ones (each budget is its share of the time left among the phases left)
shares="env:6 matmul:6 step:38 kernels:13 e2e:24 smoke:13"

if compgen -G "$wheels/*.whl" >/dev/null; then
  echo "== wheelhouse: $(ls "$wheels"/*.whl | wc -l) wheels from $wheels ($(elapsed) s)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
    "$wheels"/*.whl || { echo "device_check: the wheelhouse did not install"; exit 1; }
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "== no wheelhouse in $wheels: using $python's own packages"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# one XLA cache for the phases: the kernel A/B's plain (GPU) or fused (CPU) forms are the step phase's executables
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$work/xla-cache}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-1}"

if (( ! dry )); then
  backend="$("$python" -c 'import jax; print(jax.default_backend())' 2>/dev/null | tail -1)"
  if [[ "$backend" != gpu ]]; then
    echo "device_check: jax.default_backend() is '${backend:-unknown}', not 'gpu' (no GPU, or the driver does not run jax's CUDA plugin): stopping"
    exit 1
  fi
fi

commit=unknown
if git rev-parse --short HEAD >/dev/null 2>&1; then   # "+": the tree differs from that commit
  commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo +)"
fi
flags=(--out "$out" --work "$work" --commit "$commit")
(( dry )) && flags+=(--dry_run)
shares_left=100
for entry in $shares summary:0; do
  phase=${entry%%:*}; share=${entry##*:}
  left=$(( deadline - 10 - $(elapsed) ))
  # this phase's share of the time left, among the shares of the phases left
  phase_budget=$(( shares_left > 0 ? left * share / shares_left : 0 ))
  shares_left=$(( shares_left - share ))
  [[ $phase == summary ]] && phase_budget=10
  if [[ $phase != summary ]] && (( phase_budget < 5 )); then
    echo "== $phase: skipped, the deadline is near ($(elapsed) s)"; continue
  fi
  echo "== $phase (budget ${phase_budget} s, at $(elapsed) s)"
  # the phase stops starting new work at 80 % of its budget; the kill comes at the budget
  timeout -k 5 "$(( phase_budget > 5 ? phase_budget : 5 ))" "$python" -m benchmarks.device_phases "$phase" \
    "${flags[@]}" --budget_s "$(( phase_budget * 4 / 5 ))"
  status=$?
  (( status == 0 )) || echo "== $phase ended with status $status (124: its time limit)"
done
echo "== done in $(elapsed) s: $out/summary.md"
