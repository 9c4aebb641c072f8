#!/usr/bin/env bash
# The paper's-size study on one GPU (written for one H200 + 16 CPU cores; budget 9 minutes in all):
# render the corpus, pack it, then {waveform, spectrogram} x {600, 1200, 2400} train songs x 2 seeds with the
# MTT-size models of configs/study.py:paper, the GBT baseline per size, the table and the figure.
#
# Usage: bash launch/study_gpu.sh [WORKDIR]      (default runs/study_gpu; rerun to resume)
# Needs: the venv with jaxtag installed as  pip install -e '.[test,cuda]'  and activated, repo root as cwd.
# Budget (estimates, not measured: no GPU was lent when this was written): rendering 3,000 x 10 s at ~0.2
# CPU-s a clip on 16 processes ~40 s + the music21 score table ~40 s; packing ~30 s; 12 cells x 1,000 steps;
# the script prints the elapsed time after every phase and the study logs an ETA after every cell.
set -euo pipefail
WORKDIR=${1:-runs/study_gpu}
CONFIG=configs/study.py:paper
CACHE=${JAXTAG_CACHE:-$HOME/.cache/jaxtag}
PACKED=$WORKDIR/packed
mkdir -p "$WORKDIR"
START=$(date +%s)
elapsed() { echo "[study_gpu] $1 at $(( $(date +%s) - START )) s"; }

python - <<'EOF'
import jax
devs = jax.devices()
print("[study_gpu] devices:", devs)
if devs[0].platform == "cpu":
  raise SystemExit("[study_gpu] no GPU visible to JAX: install jax[cuda13] (pip install -e '.[cuda]')")
EOF

# 1. The corpus (cached under $CACHE; every core renders) and the score table (parsed once per machine).
python - <<EOF
import os, time
from jaxtag.data.render import corpus, scores
t = time.time()
if not os.path.exists(scores.table_path("$CACHE")):
  scores.build(scores.table_path("$CACHE"), workers=os.cpu_count())
print(corpus.ensure_corpus(3000, 0, 10.0, "flac", "$CACHE"), f"{time.time() - t:.0f} s")
EOF
elapsed "corpus ready"

# 2. Pack every split once (decoded, resampled chunks in ArrayRecord shards; resumable).
if [[ ! -f "$PACKED/test/pack.json" ]]; then
  python -m jaxtag.data.pack --config="$CONFIG" --config.data.cache_dir="$CACHE" --out="$PACKED" \
    --split=train,valid,test --workers=16
fi
elapsed "packed"

# 3. The study: cells in sequence on the one GPU (resumes: finished cells are skipped).
python -m jaxtag.study --config="$CONFIG" --workdir="$WORKDIR" \
  --set=data.cache_dir="$CACHE" --set=data.packed_dir="$PACKED" --set=data.num_workers=8
elapsed "study done"
echo "[study_gpu] table: $WORKDIR/study.md  figure: $WORKDIR/study.png  scaling: $WORKDIR/scaling/"
