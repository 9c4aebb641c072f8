#!/usr/bin/env bash
# Runs N cooperating jaxtag processes on this machine, coordinated by jax.distributed (CPU testing).
#
# Usage: launch/local_multiprocess.sh [-n PROCESSES] [-d DEVICES_PER_PROCESS] [-p PORT] [-l LOG_DIR] \
#          [-m MODULE] -- JAXTAG_FLAGS...
#   -n  number of processes (default 2)
#   -d  fake CPU devices per process (default 4; sets --xla_force_host_platform_device_count)
#   -p  coordinator port on localhost (default 23456)
#   -l  directory for process_<i>.log, one file per process (default: LOG_DIR env or ./logs)
#   -m  python module to run (default jaxtag.main); PYTHON env: the interpreter (default python)
# Example:
#   launch/local_multiprocess.sh -n 2 -d 4 -- --config=configs/smoke.py --workdir=/tmp/run2
#
# Every process gets --coordinator_address=localhost:PORT --num_processes=N --process_id=i, so this is
# the same code path as a multi-node GPU cluster without Slurm. SIGTERM/SIGINT are forwarded to every
# process (each saves the agreed step and exits 0, as on a preempted slice); if one process fails, the
# others are stopped, since they would otherwise wait in a collective until the timeout. The exit status
# is the first non-zero status of any process, else 0.
set -euo pipefail

n=2 devices=4 port=23456 log_dir="${LOG_DIR:-logs}" module=jaxtag.main
while getopts "n:d:p:l:m:h" opt; do
  case "$opt" in
    n) n="$OPTARG" ;;
    d) devices="$OPTARG" ;;
    p) port="$OPTARG" ;;
    l) log_dir="$OPTARG" ;;
    m) module="$OPTARG" ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift

mkdir -p "$log_dir"
pids=()
stop_all() {
  local sig="$1"
  for pid in "${pids[@]}"; do kill -s "$sig" "$pid" 2>/dev/null || true; done
}
trap 'stop_all TERM' TERM
trap 'stop_all INT' INT

for ((i = 0; i < n; i++)); do
  XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$devices" JAX_PLATFORMS=cpu \
    "${PYTHON:-python}" -m "$module" --coordinator_address="localhost:$port" --num_processes="$n" --process_id="$i" "$@" \
    >"$log_dir/process_$i.log" 2>&1 &
  pids+=("$!")
done

status=0
declare -A running=()
for pid in "${pids[@]}"; do running[$pid]=1; done
while ((${#running[@]} > 0)); do
  rc=0 done_pid=""
  wait -n -p done_pid "${!running[@]}" || rc=$?
  [[ -z "${done_pid:-}" ]] && continue   # woken by a trapped signal (wait unsets done_pid), not by an exit
  unset "running[$done_pid]"
  if ((rc != 0 && status == 0)); then
    status=$rc
    echo "local_multiprocess: process $done_pid exited with status $rc; stopping the others" >&2
    stop_all TERM
  fi
done
exit "$status"
