#!/usr/bin/env bash
# Trains jaxtag on a Cloud TPU VM slice: creates (or reuses) the slice, installs this checkout on every
# worker, runs the same python -m jaxtag.main command on all workers, and after a preemption recreates
# the slice and runs the same command again (it resumes from the newest checkpoint in the gs:// workdir).
#
# Usage: launch/tpu_pod.sh -n NAME -z ZONE -w gs://BUCKET/RUN [-t ACCELERATOR] [-v RUNTIME] [-c CONFIG]
#          [-s] [-r MAX_ATTEMPTS] [-- EXTRA_JAXTAG_FLAGS...]
#   -n  TPU VM name                       -z  zone, e.g. us-west4-a
#   -w  workdir (must be gs://: every worker writes the one collective checkpoint there)
#   -t  accelerator type (default v5litepod-64)     -v  runtime version (default v2-alpha-tpuv5-lite)
#   -c  config (default configs/private_1m.py:waveform)
#   -s  spot capacity (preemptible; the loop below recreates the slice)
#   -r  attempts before giving up (default 20)
# Environment: PROJECT (default: gcloud's configured project), DATA_FLAGS (e.g.
#   "--config.data.manifest=gs://bucket/private/manifest.jsonl").
# launch/tpu_pod.sh --print-setup prints the script each worker runs once (Python 3.12 venv, one install).
# Example:
#   launch/tpu_pod.sh -n jaxtag-v5e64 -z us-west4-a -w gs://my-bucket/runs/private_1m_wave -s \
#     -- --config.data.manifest=gs://my-bucket/private/manifest.jsonl
#
# Needs: gcloud authenticated for the project, a TPU quota in the zone, and a bucket the TPU VM's service
# account can write. Done means: the run wrote summary.json with "stopped_by": null (a SIGTERM'd run also
# exits 0 after saving, so the exit status alone cannot tell a finished run from a preempted one).
set -euo pipefail

name="" zone="" workdir="" accel=v5litepod-64 runtime=v2-alpha-tpuv5-lite config=configs/private_1m.py:waveform
spot=() attempts=20
if [[ "${1:-}" == "--print-setup" ]]; then print_setup=1; shift; else print_setup=0; fi
while getopts "n:z:w:t:v:c:sr:h" opt; do
  case "$opt" in
    n) name="$OPTARG" ;;       z) zone="$OPTARG" ;;     w) workdir="$OPTARG" ;;
    t) accel="$OPTARG" ;;      v) runtime="$OPTARG" ;;  c) config="$OPTARG" ;;
    s) spot=(--spot) ;;        r) attempts="$OPTARG" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
if (( ! print_setup )) && [[ -z "$name" || -z "$zone" || "$workdir" != gs://* ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2
fi
project=(); [[ -n "${PROJECT:-}" ]] && project=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm "${project[@]}")
repo="$(cd "$(dirname "$0")/.." && pwd)"

state() { "${tpu[@]}" describe "$name" --zone="$zone" --format='value(state)' 2>/dev/null || echo MISSING; }

ensure_slice() {
  local s; s="$(state)"
  if [[ "$s" == PREEMPTED || "$s" == TERMINATED || "$s" == FAILED ]]; then
    echo "tpu_pod: $name is $s; deleting it" >&2
    "${tpu[@]}" delete "$name" --zone="$zone" --quiet
    s=MISSING
  fi
  if [[ "$s" == MISSING ]]; then
    echo "tpu_pod: creating $name ($accel, $runtime${spot:+, spot})" >&2
    "${tpu[@]}" create "$name" --zone="$zone" --accelerator-type="$accel" --version="$runtime" "${spot[@]}"
    installed=0
  fi
}

# The worker setup, as one script (tpu_pod.sh --print-setup prints it): TPU VM runtimes ship an older system
# Python than jaxtag's >= 3.12 (v2-alpha-tpuv5-lite: Ubuntu 22.04's 3.10), so uv (a PyPI wheel, installed with
# the system pip) brings CPython 3.12 into a venv, and ONE install resolves jax, its libtpu and jaxtag together
# (the [tpu] extra is jax[tpu] in jaxtag's jax range; [gcs]: the gs:// workdir needs it).
setup_script() {
  cat <<'SETUP'
set -e
rm -rf jaxtag; tar xzf jaxtag.tar.gz
python3 -m pip install -q --user --upgrade uv
export PATH="$HOME/.local/bin:$PATH"
uv venv -q --python 3.12 --allow-existing "$HOME/jaxtag-venv"
uv pip install -q --python "$HOME/jaxtag-venv/bin/python" -e "./jaxtag[tpu,gcs]"
"$HOME/jaxtag-venv/bin/python" -c 'import sys, jax, jaxtag; assert sys.version_info >= (3, 12); print("tpu_pod: python", sys.version.split()[0], "jax", jax.__version__)'
SETUP
}

install() {   # the committed tree of this checkout, the same on every worker
  local tarball; tarball="$(mktemp --suffix=.tar.gz)"
  git -C "$repo" archive --format=tar.gz --prefix=jaxtag/ HEAD >"$tarball"
  "${tpu[@]}" scp "$tarball" "$name":jaxtag.tar.gz --zone="$zone" --worker=all
  rm -f "$tarball"
  "${tpu[@]}" ssh "$name" --zone="$zone" --worker=all --command="$(setup_script)"
  installed=1
}

if (( print_setup )); then setup_script; exit 0; fi

finished() {
  gcloud storage cat "$workdir/summary.json" 2>/dev/null | python3 -c \
    'import json, sys; sys.exit(0 if json.load(sys.stdin).get("stopped_by") is None else 1)' 2>/dev/null
}

# JAXTAG_DISTRIBUTED=1: call jax.distributed.initialize() even where TPU_WORKER_HOSTNAMES is not exported.
cmd="cd jaxtag && JAXTAG_DISTRIBUTED=1 \$HOME/jaxtag-venv/bin/python -m jaxtag.main --config=$config --workdir=$workdir ${DATA_FLAGS:-}"
for arg in "$@"; do cmd+=" $(printf '%q' "$arg")"; done

installed=0
for ((attempt = 1; attempt <= attempts; attempt++)); do
  ensure_slice
  ((installed)) || install
  echo "tpu_pod: attempt $attempt: $cmd" >&2
  if "${tpu[@]}" ssh "$name" --zone="$zone" --worker=all --command="$cmd" && finished; then
    echo "tpu_pod: $workdir finished" >&2
    exit 0
  fi
  echo "tpu_pod: run interrupted (state $(state)); resuming from the newest checkpoint" >&2
  sleep 30
done
echo "tpu_pod: gave up after $attempts attempts" >&2
exit 1
