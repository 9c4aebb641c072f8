"""Launchers install what a gs:// run needs (no network: the install lines and the extra are read, not run),
and a gs:// workdir without those packages fails at start with the one-line fix."""
import importlib.util
import os
import re
import signal
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
    ("launch/tpu_pod.sh", r"pip install [^\n]*\./jaxtag\[tpu,gcs\]"),
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


def extras() -> dict[str, list[Requirement]]:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  return {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()} | \
      {"": [Requirement(r) for r in project["dependencies"]]}


def test_cuda_extras_pin_jax_in_the_package_range():
  ex = extras()
  jax_range = next(r.specifier for r in ex[""] if r.name == "jax")
  for extra, cuda in (("cuda12", "cuda12"), ("cuda13", "cuda13"), ("tpu", "tpu")):
    (req,) = ex[extra]
    assert (req.name, req.extras, req.specifier) == ("jax", {cuda}, jax_range)
  assert [(r.name, r.extras) for r in ex["cuda"]] == [("jaxtag", {"cuda13"})]


def fake_tools(bin_dir, log, **scripts):
  """Executables on PATH that append their name and arguments to ``log`` (then run ``scripts[name]``)."""
  bin_dir.mkdir(exist_ok=True)
  for name, body in scripts.items():
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> {log}\n{body}\n')
    path.chmod(0o755)
  return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_tpu_worker_setup_brings_python_312_and_installs_once(tmp_path):
  """The script every TPU worker runs, with its tools faked: a 3.12 venv from uv, then one install that resolves
  jax[tpu] (with libtpu) and jaxtag together, and the venv's Python checks itself."""
  setup = subprocess.run(["bash", os.path.join(ROOT, "launch/tpu_pod.sh"), "--print-setup"], capture_output=True,
                         text=True, check=True).stdout
  log, home = tmp_path / "calls.log", tmp_path / "home"
  home.mkdir()
  venv_python = 'mkdir -p "$HOME/jaxtag-venv/bin"; printf \'#!/usr/bin/env bash\\necho "venv-python $*" >> %s\\n\' ' \
                f'"{log}" > "$HOME/jaxtag-venv/bin/python"; chmod +x "$HOME/jaxtag-venv/bin/python"'
  env = fake_tools(tmp_path / "bin", log, python3="", tar="", uv=f'[[ "$1" == venv ]] && {{ {venv_python}; }}; true')
  subprocess.run(["bash", "-c", setup], cwd=home, env={**env, "HOME": str(home)}, check=True, timeout=60)
  calls = log.read_text().splitlines()
  installs = [c for c in calls if " install " in f" {c} "]
  assert installs[0] == "python3 -m pip install -q --user --upgrade uv"
  assert installs[1:] == [f'uv pip install -q --python {home}/jaxtag-venv/bin/python -e ./jaxtag[tpu,gcs]'], calls
  assert f"uv venv -q --python 3.12 --allow-existing {home}/jaxtag-venv" in calls
  assert calls[-1].startswith("venv-python -c import sys, jax, jaxtag; assert sys.version_info >= (3, 12)")
  run_line = next(line for line in open(os.path.join(ROOT, "launch/tpu_pod.sh")) if line.startswith("cmd="))
  assert "$HOME/jaxtag-venv/bin/python -m jaxtag.main" in run_line


def test_slurm_time_limit_signal_saves_a_checkpoint_and_requeues(tmp_path, corpus_cache):
  """The sbatch script under Slurm's variables with srun and scontrol faked: USR1 (what --signal=B:USR1@300
  sends before the limit) makes the real training save its step and exit 0, and the job requeue itself."""
  from test_train import TINY, wait_for
  sbatch = open(os.path.join(ROOT, "launch/slurm_gpu.sbatch")).read()
  assert "#SBATCH --signal=B:USR1@300" in sbatch and "#SBATCH --requeue" in sbatch
  log, workdir = tmp_path / "calls.log", tmp_path / "run"
  env = fake_tools(tmp_path / "bin", log, srun='while [[ "$1" == --* ]]; do shift; done; exec "$@"', scontrol="")
  env.update(SLURM_JOB_ID="4242", SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1", PYTHON=sys.executable,
             PYTHONPATH=ROOT)
  proc = subprocess.Popen(["bash", "launch/slurm_gpu.sbatch", str(workdir), "configs/smoke.py", *TINY,
                           f"--config.data.cache_dir={corpus_cache}", "--config.train.steps=400",
                           "--config.train.checkpoint_every=1000", "--config.train.eval_every=1000"],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    wait_for(lambda: (workdir / "metrics.jsonl").exists() and (workdir / "metrics.jsonl").stat().st_size > 0, proc,
             timeout=600)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=300)
  finally:   # the script and the training it started, whatever happened
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  assert proc.returncode == 0, err[-3000:]
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert len(saved) == 1 and 0 < saved[0] < 400 and f"saved step {saved[0]}" in err
  assert log.read_text().splitlines()[-1] == "scontrol requeue 4242", err[-2000:]


def test_study_gpu_dry_run_runs_the_script_end_to_end_on_cpu(tmp_path):
  """``launch/study_gpu.sh --dry-run``: the GPU study's own script on CPU with tiny sizes (a 40-clip testbed
  with a one-piece-per-composer score table, 2 steps a cell, sizes 8 and the whole pool, both front-ends, the
  GBT in the background); finished cells land in $OUT as they finish, and the statistics are written."""
  import json
  import subprocess
  import sys
  out = tmp_path / "out"
  # one device, as on the lent GPU (the suite's other tests fake 8 CPU devices through XLA_FLAGS)
  xla = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
  env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, JAXTAG_CACHE=str(tmp_path / "cache"), XLA_FLAGS=xla)
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
