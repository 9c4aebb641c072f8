#!/usr/bin/env bash
# The paper's-size study on one lent GPU (one H200 + 16 CPU cores, no network, <= 64 MiB of working tree):
# install the carried wheels, render the testbed corpus, then {waveform, spectrogram} x {225, 600, all} train
# songs x 3 seeds with the MTT-size models of configs/study.py:paper (early stopping under a step cap), the GBT
# baseline per size fitted on the CPU cores while the GPU trains, the table, the figures and the intervals.
#
# Usage: bash launch/study_gpu.sh [--dry-run] [--wheels=DIR] [--scores=FILE] [WORKDIR]
#   --wheels=DIR   wheels of what the lent image lacks (grain, array-record, ml-collections, soundfile, soxr,
#                  tensorboardX, midirenderer, pretty_midi, pedalboard, mido, ...), installed with
#                  pip install --no-index --find-links DIR --target WORKDIR/site  (no network needed)
#   --scores=FILE  the pre-built music21 score table (scores-v1.json), so music21 need not be on the machine
#   --dry-run      the same script end to end on CPU with tiny sizes (configs/study.py:paper,dry); the tests run it
# Both inputs are built here by  bash launch/study_gpu_inputs.sh DIR  (DIR/wheels, DIR/scores-v1.json).
# WORKDIR defaults to runs/study_gpu; rerun to resume. Each finished cell is copied to $OUT (if set) as it
# finishes, and the compile cache lives in $CACHE/xla (kept across reruns; copied to $OUT/xla at the end).
set -euo pipefail
DRY=0; WHEELS=""; SCORES=""; WORKDIR=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --wheels=*) WHEELS=${arg#--wheels=} ;;
    --scores=*) SCORES=${arg#--scores=} ;;
    -*) echo "error: unknown option $arg (see the header of $0)" >&2; exit 2 ;;
    *) WORKDIR=$arg ;;
  esac
done
WORKDIR=${WORKDIR:-runs/study_gpu}
CONFIG=configs/study.py:paper
PY=${PYTHON:-python3}
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
CACHE=${JAXTAG_CACHE:-$WORKDIR/cache}
WORKERS=$(nproc)
if [[ $DRY == 1 ]]; then
  CONFIG=configs/study.py:paper,dry
  export JAX_PLATFORMS=cpu
  WORKERS=1
fi
START=$(date +%s)
elapsed() { echo "[study_gpu] $1 at $(( $(date +%s) - START )) s"; }

if [[ -n "$WHEELS" ]]; then
  [[ -d "$WHEELS" ]] || { echo "error: --wheels=$WHEELS is not a folder" >&2; exit 2; }
  if [[ ! -f "$WORKDIR/site/.installed" ]]; then
    $PY -m pip install --quiet --no-index --find-links "$WHEELS" --target "$WORKDIR/site" \
      $(ls "$WHEELS"/*.whl)
    touch "$WORKDIR/site/.installed"
  fi
  export PYTHONPATH="$WORKDIR/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$CACHE/xla"
export JAX_COMPILATION_CACHE_DIR="$CACHE/xla" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
if [[ -n "$SCORES" ]]; then
  [[ -f "$SCORES" ]] || { echo "error: --scores=$SCORES is not a file" >&2; exit 2; }
  cp -n "$SCORES" "$CACHE/scores-v1.json"
fi
elapsed "installed"

$PY - <<EOF
import jax
devs = jax.devices()
print("[study_gpu] devices:", devs)
if devs[0].platform == "cpu" and not $DRY:
  raise SystemExit("[study_gpu] no GPU visible to JAX: pass --dry-run for the CPU rehearsal")
EOF

# 1. The score table (tiny in a dry run) and the testbed corpus (every core renders; cached under $CACHE).
$PY - <<EOF
import os, time
from jaxtag.data.render import scores, testbed
t = time.time()
if not os.path.exists(scores.table_path("$CACHE")):
  scores.build(scores.table_path("$CACHE"), workers=$WORKERS, count=1 if $DRY else 0)
import importlib.util
spec = importlib.util.spec_from_file_location("study_config", "configs/study.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
d = m.get_config("${CONFIG#*:}").data
print("[study_gpu]", testbed.ensure_corpus(d.generated_n, d.generated_seed, d.generated_clip_seconds,
                                           d.generated_format, "$CACHE", workers=$WORKERS), f"{time.time() - t:.0f} s")
EOF
elapsed "corpus ready"

# 2. The GBT baselines on the CPU cores, in the background while the GPU trains.
JAX_PLATFORMS=cpu $PY -c "
from jaxtag.analyze import study
study.run_baselines('${CONFIG%%:*}', '$WORKDIR', '${CONFIG#*:}', {'data.cache_dir': '$CACHE'})
" > "$WORKDIR/baseline.log" 2>&1 &
BASELINE=$!

# 3. The cells in sequence on the one GPU (finished cells are skipped; each is copied to $OUT when done).
$PY -m jaxtag.study --config="$CONFIG" --workdir="$WORKDIR" --set=data.cache_dir="$CACHE" --nobaseline
elapsed "cells done"
wait "$BASELINE" || { echo "error: the GBT baselines failed; see $WORKDIR/baseline.log" >&2; exit 1; }
elapsed "baselines done"

# 4. The final tables with the baselines (every cell is done: only the statistics run).
$PY -m jaxtag.study --config="$CONFIG" --workdir="$WORKDIR" --set=data.cache_dir="$CACHE"
if [[ -n "${OUT:-}" && $DRY == 0 ]]; then
  mkdir -p "$OUT/xla" && cp -r "$CACHE/xla/." "$OUT/xla/" || true
fi
elapsed "study done"
echo "[study_gpu] table: $WORKDIR/study.md  figure: $WORKDIR/study.png  curves: $WORKDIR/curves.png"
