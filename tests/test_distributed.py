"""Launcher detection and remote-path handling, without a cluster or a bucket: the pure parts of pod runs.

``gs://`` itself is not reachable here (no credentials, no network); these tests pin down the code paths
that differ for object-store paths (URL joins, whole-object rewrites instead of appends).
"""
import subprocess

import pytest

from conftest import ROOT
from jaxtag.core import distributed
from jaxtag.training import metrics
from jaxtag.data import index


def test_plan_single_process_needs_nothing():
  assert distributed.plan(None, None, None, environ={}) is None
  assert distributed.plan(None, None, None, environ={"SLURM_NTASKS": "1"}) is None


def test_plan_explicit_flags_all_or_none():
  assert distributed.plan("10.0.0.1:1234", 2, 1, environ={}) == {
      "coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}
  with pytest.raises(ValueError, match="give all of"):
    distributed.plan("10.0.0.1:1234", 2, None, environ={})


def test_plan_slurm_per_gpu_and_per_node():
  per_gpu = {"SLURM_NTASKS": "16", "SLURM_STEP_TASKS_PER_NODE": "8(x2)", "SLURM_GPUS_ON_NODE": "8"}
  assert distributed.plan(None, None, None, environ=per_gpu) == {}   # JAX: GPU = SLURM_LOCALID
  per_node = {"SLURM_NTASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURM_GPUS_ON_NODE": "8"}
  assert distributed.plan(None, None, None, environ=per_node) == {"local_device_ids": list(range(8))}


def test_plan_tpu_slice():
  assert distributed.plan(None, None, None, environ={"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) == {}
  assert distributed.plan(None, None, None, environ={"TPU_WORKER_HOSTNAMES": "w0"}) is None
  assert distributed.plan(None, None, None, environ={"JAXTAG_DISTRIBUTED": "1"}) == {}


def test_url_paths_are_joined_not_mangled():
  assert index.join("gs://bucket/corpus", "audio/a.flac") == "gs://bucket/corpus/audio/a.flac"
  assert index.join("gs://bucket/corpus", "gs://other/b.flac") == "gs://other/b.flac"
  assert index.join("/data", "/abs/c.flac") == "/abs/c.flac"
  assert index.parent("gs://bucket/corpus/manifest.jsonl") == "gs://bucket/corpus"


def test_object_store_metrics_rewrite_whole_file(tmp_path):
  """Object stores cannot append: the remote writer keeps the lines and rewrites, continuing a resumed file."""
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "loss": 2.0}\n')
  writer = metrics._RewrittenJsonl(metrics.epath.Path(path), every_s=3600)
  writer.write('{"step": 2, "loss": 1.0}\n')
  writer.flush()   # within every_s: nothing uploaded yet
  assert [r["step"] for r in metrics.read_jsonl(path)] == [1]
  writer.close()
  assert [r["step"] for r in metrics.read_jsonl(path)] == [1, 2]


@pytest.mark.parametrize("script", ["local_multiprocess.sh", "tpu_pod.sh", "slurm_gpu.sbatch"])
def test_launchers_parse_and_print_usage(script):
  path = f"{ROOT}/launch/{script}"
  subprocess.run(["bash", "-n", path], check=True)
  text = open(path).read()
  assert "set -euo pipefail" in text and "Usage:" in text
  if script != "slurm_gpu.sbatch":   # sbatch scripts run only under Slurm
    proc = subprocess.run(["bash", path, "-h"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Usage:" in proc.stdout
