"""Launchers install what a gs:// run needs (no network: the install lines and the extra are read, not run),
and a gs:// workdir without those packages fails at start with the one-line fix."""
import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from conftest import ROOT
from jaxtag.core import errors, remote


def gcs_extra() -> set[str]:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
  return {Requirement(r).name for r in extras["gcs"]}


def test_gcs_extra_names_the_packages_that_gs_paths_need():
  assert gcs_extra() == set(remote.GCS_MODULES.values()) == {"gcsfs", "google-cloud-storage"}


@pytest.mark.parametrize("script, pattern", [
    ("launch/tpu_pod.sh", r"pip install [^\n]*\./jaxtag\[gcs\]"),
    ("launch/slurm_gpu.sbatch", r"pip install [^\n]*\.\[gcs\]"),
])
def test_launcher_installs_the_gcs_extra(script, pattern):
  text = open(os.path.join(ROOT, script)).read()
  assert re.search(pattern, text), f"{script} does not install the [gcs] extra"
  assert subprocess.run(["bash", "-n", os.path.join(ROOT, script)]).returncode == 0


def test_require_gcs_names_the_fix(monkeypatch):
  remote.require_gcs(workdir="/local/run")   # local paths need nothing
  monkeypatch.setattr(remote, "_missing", lambda module: module == "gcsfs")
  with pytest.raises(errors.UserError, match=r"--workdir=gs://b/run needs gcsfs, which are not installed: "
                                             r"pip install 'jaxtag\[gcs\]'"):
    remote.require_gcs(workdir="gs://b/run")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs installed here")
def test_gs_workdir_without_the_extra_fails_at_start_in_one_line(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "jaxtag.main", f"--config={ROOT}/configs/smoke.py",
                         "--workdir=gs://no-such-bucket/run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == errors.EXIT_USER_ERROR
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines == [lines[-1]] and "pip install 'jaxtag[gcs]'" in lines[-1], proc.stderr[-2000:]


def test_study_gpu_dry_run_runs_the_script_end_to_end_on_cpu(tmp_path):
  """``launch/study_gpu.sh --dry-run``: the GPU study's own script on CPU with tiny sizes (a 40-clip testbed
  with a one-piece-per-composer score table, 2 steps a cell, sizes 8 and the whole pool, both front-ends, the
  GBT in the background); finished cells land in $OUT as they finish, and the statistics are written."""
  import json
  import subprocess
  import sys
  out = tmp_path / "out"
  env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, JAXTAG_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(["bash", "launch/study_gpu.sh", "--dry-run", str(tmp_path / "w")], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "[study_gpu] study done" in proc.stdout
  res = json.load(open(tmp_path / "w" / "study.json"))
  pool = res["train_pool"]
  assert sorted({c["n_train"] for c in res["cells"]}) == [8, pool]            # "all" = the whole pool
  assert {c["frontend"] for c in res["cells"]} == {"waveform", "spectrogram"}
  assert all(c["cap"] == 2 for c in res["cells"])
  assert res["per_size"][0]["sets"]["all"]["diff_ci"] is not None
  assert {r["model"] for r in res["rows"]} >= {"baseline"}                     # the background GBT was reported
  for c in res["cells"]:
    assert (out / "cells" / c["name"] / "study_cell.json").exists()
  assert (out / "study.md").exists() and (out / "study.png").exists()
  bad = subprocess.run(["bash", "launch/study_gpu.sh", "--wheels=/nonexistent"], cwd=ROOT, capture_output=True,
                       text=True, env=env)
  assert bad.returncode == 2 and bad.stderr.startswith("error:")
