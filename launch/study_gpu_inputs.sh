#!/usr/bin/env bash
# Builds what launch/study_gpu.sh carries to a lent GPU machine without network access:
#   DIR/wheels/          wheels of jaxtag's dependencies the lent image lacks (benchmarks/device_wheels.sh when
#                        present, else pip download of the list below for the lent machine's Python)
#   DIR/scores-v1.json   the music21 score table (parsed here once, so music21 need not travel)
# Usage: bash launch/study_gpu_inputs.sh DIR [--python-version=3.12]
# Then:  bash launch/study_gpu.sh --wheels=DIR/wheels --scores=DIR/scores-v1.json
set -euo pipefail
DIR=${1:?usage: $0 DIR [--python-version=X.Y]}
PYVER=3.12
for arg in "${@:2}"; do
  case "$arg" in
    --python-version=*) PYVER=${arg#--python-version=} ;;
    *) echo "error: unknown option $arg" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
mkdir -p "$DIR/wheels"
# what jaxtag needs beyond the lent image (python3, jax, flax, optax, orbax-checkpoint, scikit-learn)
NEEDS="grain array-record ml-collections soundfile soxr tensorboardX midirenderer pretty_midi pedalboard mido etils absl-py"
if [[ -x benchmarks/device_wheels.sh ]]; then
  bash benchmarks/device_wheels.sh --out="$DIR/wheels"
else
  $PY -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any --no-deps -d "$DIR/wheels" $NEEDS
  # pretty_midi ships as an sdist only on some versions: build its wheel locally (pure Python)
fi
PYTHONPATH=$PWD $PY -c "
from jaxtag.data.render import scores
import os
scores.build(os.path.join('$DIR', 'scores-v1.json'), workers=os.cpu_count() or 1)
"
du -sh "$DIR/wheels" "$DIR/scores-v1.json"
