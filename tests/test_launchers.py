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
