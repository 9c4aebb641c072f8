"""The checkpoint policy (jaxtag.training.checkpoint): one manager keeping the latest N plus the best, fallback past an
unreadable newest step, and a failed save (disk full) that leaves earlier steps restorable."""
import logging
import os
import subprocess
import sys
import textwrap

import grain
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from jaxtag.training import checkpoint
from jaxtag.core import errors


def state(v: int) -> dict:
  rng = np.random.default_rng(v)   # random values: constant arrays compress to nothing
  return {"w": jnp.asarray(rng.standard_normal(4096).astype(np.float32)), "step": jnp.asarray(v)}


def data_iter():
  return iter(grain.MapDataset.range(1000).to_iter_dataset())


def truncate_data_files(step_dir) -> int:
  """Cuts every OCDBT data file of a step to half, as a bad disk or a copy cut short leaves them."""
  files = list(step_dir.glob("state/ocdbt.process_*/d/*"))
  for f in files:
    os.truncate(f, f.stat().st_size // 2)
  return len(files)


def save_steps(workdir, steps, keep=3, metrics=None):
  """Saves each step with the iterator having yielded ``step`` elements (0..step-1)."""
  ckpts, it, consumed = checkpoint.Checkpoints(workdir, keep=keep), data_iter(), 0
  for s in steps:
    while consumed < s:
      next(it)
      consumed += 1
    ckpts.save(s, state(s), it, {"lr": 0.1 * s}, metrics=(metrics or {}).get(s))
  ckpts.wait()
  ckpts.close()


def test_truncated_newest_falls_back_to_previous_step(tmp_path, caplog):
  save_steps(tmp_path, [1, 2])
  assert truncate_data_files(tmp_path / "checkpoints" / "2") > 0
  ckpts, it = checkpoint.Checkpoints(tmp_path, keep=3), data_iter()
  with caplog.at_level(logging.WARNING):
    step, restored, host = ckpts.restore_latest(state(0), it)
  ckpts.close()
  assert step == 1 and host == {"lr": 0.1}
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state(1)["w"]))
  assert next(it) == 1   # the iterator is at step 1's position
  warnings = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
  assert len(warnings) == 1 and "step 2" in warnings[0], warnings
  assert (tmp_path / "checkpoints" / "2.corrupt").is_dir() and not (tmp_path / "checkpoints" / "2").exists()
  again = checkpoint.Checkpoints(tmp_path, keep=3)   # the next start sees step 1 only, and no warning
  assert again.latest_step() == 1 and again.corrupt_steps() == ["2.corrupt"]
  again.close()


def test_bad_metadata_falls_back_too(tmp_path):
  save_steps(tmp_path, [1, 2])
  (tmp_path / "checkpoints" / "2" / "host" / "metadata").write_text("{not json")
  for f in (tmp_path / "checkpoints" / "2" / "state").glob("*metadata*"):
    f.write_text("{not json") if f.is_file() else None
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  step, _, _ = ckpts.restore_latest(state(0), data_iter())
  ckpts.close()
  assert step == 1


def test_no_readable_step_is_one_clear_error_and_renames_nothing(tmp_path):
  save_steps(tmp_path, [1, 2])
  for s in (1, 2):
    truncate_data_files(tmp_path / "checkpoints" / str(s))
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  with pytest.raises(errors.UserError, match=r"no checkpoint .* can be restored .*step 2: .*step 1: .*new --workdir"):
    ckpts.restore_latest(state(0), data_iter())
  ckpts.close()
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]


def test_one_manager_keeps_latest_n_plus_best(tmp_path):
  save_steps(tmp_path, [1, 2, 3, 4, 5], keep=2, metrics={2: {"loss": 0.5, "roc_auc": 0.7}})
  ckpts = checkpoint.Checkpoints(tmp_path, keep=2)
  assert sorted(ckpts.latest.all_steps()) == [2, 4, 5] and ckpts.best_step() == 2
  ckpts.close()
  assert not (tmp_path / "best").exists()


DISK_FULL = textwrap.dedent("""
  import resource, signal, sys
  sys.path.insert(0, {tests!r})
  from test_checkpoint_policy import state, data_iter
  from jaxtag.training import checkpoint
  from jaxtag.core import errors
  ckpts, it = checkpoint.Checkpoints({workdir!r}, keep=3), data_iter()
  import jax.numpy as jnp, numpy as np
  big = {{"w": jnp.asarray(np.random.default_rng(3).standard_normal(1 << 18).astype(np.float32)),
          "step": jnp.asarray(3)}}   # 1 MB of noise: over the file-size limit below
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG instead
  resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
  try:
    ckpts.save(3, big, it, {{"lr": 0.3}})
    ckpts.wait()
  except errors.CheckpointSaveError as e:
    print("SAVE FAILED:", e)
  resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
  ckpts.close()
""")


def test_failed_save_leaves_earlier_checkpoints_restorable(tmp_path):
  """Disk full simulated at the file layer: a file-size limit (RLIMIT_FSIZE, unprivileged) makes the data
  file write of step 3 fail inside tensorstore, as ENOSPC would."""
  save_steps(tmp_path, [1, 2])
  child = subprocess.run([sys.executable, "-c", DISK_FULL.format(tests=os.path.dirname(__file__),
                                                                 workdir=str(tmp_path))],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
  line = next((x for x in child.stdout.splitlines() if x.startswith("SAVE FAILED")), None)
  assert line, child.stdout + child.stderr[-3000:]
  assert "step 3 failed" in line and "File too large" in line and "newest: 2" in line and "run the same command" in line
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]   # no temporary left
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  step, restored, host = ckpts.restore_latest(state(0), data_iter())
  ckpts.close()
  assert step == 2 and host == {"lr": 0.2}
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state(2)["w"]))
