#!/usr/bin/env bash
# Builds the wheelhouse that benchmarks/device_check.sh installs on the lent GPU machine, which reaches no
# package registry. That machine's python3 (CPython 3.12, x86-64) already holds jax, jaxlib, the CUDA plugin,
# numpy, tensorstore, etils, protobuf, cloudpickle, psutil, pyyaml, msgpack, rich, treescope and the other
# common packages; it lacks jaxtag's data and config stack. So this downloads, with no dependencies pulled in:
#   - what the machine lacks: grain, array-record, clu, ml-collections, soundfile, soxr, tensorboardX, orjson,
#     and their own needs it lacks too (cffi and pycparser for soundfile, portpicker for grain);
#   - jaxtag's tested versions of flax, optax and orbax-checkpoint, in case the machine's differ.
# Never jax, jaxlib, the CUDA plugin or numpy: those must stay the machine's own (its driver's CUDA).
# The versions are those this project's development environment runs, each inside pyproject.toml's range
# (tests/test_device_check.py checks the ranges, and that every listed wheel's needs are met, without downloading).
#
# Usage: benchmarks/device_wheels.sh [DIR]     (default DIR=.whl, ignored by git: pass it in the device call's carry)
#        benchmarks/device_wheels.sh --list    (print the requirement specs, one a line, and download nothing)
# Environment: PYTHON (default python3), used only for its pip.
set -euo pipefail

WHEELS=(
  grain==0.2.18
  array-record==0.8.6
  clu==0.0.12
  ml-collections==1.1.0
  soundfile==0.14.0
  soxr==1.1.0
  tensorboardX==2.6.5
  orjson==3.13.0
  flax==0.12.12
  optax==0.2.8
  orbax-checkpoint==0.12.8
  cffi==2.1.1
  pycparser==3.12
  portpicker==1.6.0
)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${WHEELS[@]}"
  exit 0
fi

dir="${1:-.whl}"
mkdir -p "$dir"
# pip matches manylinux_2_N tags exactly: name the ones these wheels are built for
platforms=()
for p in manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dir" "${WHEELS[@]}"
ls -1 "$dir"
echo "device_wheels: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sm "$dir" | cut -f1) MiB in $dir"
