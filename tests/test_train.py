"""The training system end to end: jaxtag.main on the smoke config, exact resume after kill -9, SIGTERM,
the NaN guard, and data-parallel equivalence of 1 and 8 devices."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxtag.training import checkpoint, metrics, train_state
from jaxtag.core import sharding
from jaxtag.training import step as step_lib

TINY = ["--config.data.dataset=generated", "--config.data.dataset_title=jaxtag generated corpus",
        "--config.data.generated_n=32",
        "--config.data.generated_clip_seconds=3", "--config.data.chunk_seconds=1",
        "--config.train.global_batch_size=16", "--config.eval.batch_size=16", "--config.eval.max_songs=6",
        "--config.train.log_every=2", "--config.train.metrics_every=2", "--config.train.learning_rate=0.003"]


def main_cmd(workdir, cache, *overrides, module="jaxtag.main"):
  """``python -m jaxtag.main`` (or ``tests.faults``, the same run with fault hooks) on the tiny smoke run."""
  return [sys.executable, "-m", module, f"--config={ROOT}/configs/smoke.py", f"--workdir={workdir}",
          f"--config.data.cache_dir={cache}", *TINY, *overrides]


def run_main(workdir, cache, *overrides, check=True, cwd=ROOT, module="jaxtag.main"):
  proc = subprocess.run(main_cmd(workdir, cache, *overrides, module=module), cwd=cwd, capture_output=True, text=True, timeout=600)
  if check and proc.returncode:
    raise AssertionError(f"jaxtag.main failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc


def final_state(workdir):
  """The newest checkpoint's full train state, as numpy (params, BN stats, RNG, Adam moments, step)."""
  config, tags = checkpoint.read_run_info(workdir)
  like = train_state.abstract(config, len(tags), sharding.make_mesh())
  ckpts = checkpoint.Checkpoints(workdir, keep=3)
  import orbax.checkpoint as ocp
  step = ckpts.latest_step()
  out = ckpts.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(like)))
  ckpts.close()
  return step, numpy_leaves(out["state"])


def numpy_leaves(tree):
  """Every leaf as numpy; PRNG keys as their raw key data."""
  return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
          for x in jax.tree.leaves(tree)]


def wait_for(predicate, proc, timeout=300):
  t0 = time.time()
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(f"process ended early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
    if time.time() - t0 > timeout:
      raise AssertionError("timed out")
    time.sleep(0.1)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, corpus_cache):
  """An uninterrupted run of 2N = 40 steps with validation every 20 (also the end-to-end test), given a relative
  workdir as in the README."""
  parent = tmp_path_factory.mktemp("full")
  run_main("runs/full", corpus_cache, *RESUME_ARGS, cwd=parent)
  return parent / "runs" / "full"


# A 24-step linear warm-up: the kill-9 resume at step 20 is mid-warm-up, so it also checks that the warm-up is
# exact across a resume (a function of the step and the checkpointed plateau rate).
RESUME_ARGS = ["--config.train.steps=40", "--config.train.checkpoint_every=20", "--config.train.eval_every=20",
               "--config.train.log_every=10", "--config.train.warmup_steps=24"]


def applied_rates(workdir) -> dict:
  """``{step: the learning rate applied at that step}`` from a run's metrics (one row per log interval)."""
  return {r["step"]: r["lr"] for r in metrics.read_jsonl(workdir / "metrics.jsonl") if "lr" in r}


def test_end_to_end_smoke_run(full_run):
  records = metrics.read_jsonl(full_run / "metrics.jsonl")
  losses = [r["loss"] for r in records if "loss" in r]   # means over 10 steps each
  assert len(losses) == 4 and losses[-1] < losses[0] - 0.05, losses
  vals = [r for r in records if "val/roc_auc" in r]
  assert [r["step"] for r in vals] == [20, 40]
  assert all(0.0 <= r["val/roc_auc"] <= 1.0 and 0.0 < r["val/pr_auc"] <= 1.0 for r in vals)
  assert sorted(int(p.name) for p in (full_run / "checkpoints").iterdir() if p.name.isdigit()) == [20, 40]
  ckpts = checkpoint.Checkpoints(full_run, keep=3)   # one manager: the latest steps, the best among them
  assert ckpts.best_step() in (20, 40) and ckpts.latest.metrics(ckpts.best_step())["loss"] > 0
  ckpts.close()
  assert not (full_run / "best").exists()
  assert (full_run / "config.json").exists() and (full_run / "tensorboard").is_dir()
  assert any(r.get("chunks_per_s", 0) > 0 for r in records)


def test_resume_after_kill9_is_bitwise_exact(full_run, tmp_path, corpus_cache):
  workdir = tmp_path / "killed"
  args = [*RESUME_ARGS, "--stall_after_save=20"]
  proc = subprocess.Popen(main_cmd(workdir, corpus_cache, *args, module="tests.faults"), cwd=ROOT, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    wait_for(lambda: (workdir / "checkpoints" / "20").is_dir(), proc)
    time.sleep(0.5)
  finally:   # the whole process group, grain's loader workers too, as when a machine is lost
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  resumed = run_main(workdir, corpus_cache, *args, module="tests.faults")
  assert "resumed from" in resumed.stderr and "checkpoints/20" in resumed.stderr
  whole = applied_rates(full_run)   # the warm-up's rates, before and after the resume, as the uninterrupted run's
  assert list(whole) == [10, 20, 30, 40] and applied_rates(workdir) == whole
  assert list(whole.values()) == pytest.approx([0.003 * min(1.0, s / 24) for s in (10, 20, 30, 40)])
  step_a, leaves_a = final_state(full_run)
  step_b, leaves_b = final_state(workdir)
  assert step_a == step_b == 40
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)


def sigterm_once_training(proc, workdir, steps: int = 400):
  """SIGTERM to ``proc`` once ``workdir`` has metrics; checks exit status 0 and exactly one checkpoint saved
  before ``steps``; returns ``(saved_step, stderr)`` (also used by the multi-process tests)."""
  wait_for(lambda: (workdir / "metrics.jsonl").exists() and (workdir / "metrics.jsonl").stat().st_size > 0, proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert len(saved) == 1 and 0 < saved[0] < steps
  return saved[0], err


def test_sigterm_saves_current_step_and_exits_zero(tmp_path, corpus_cache):
  workdir = tmp_path / "term"
  args = ["--config.train.steps=400", "--config.train.checkpoint_every=1000", "--config.train.eval_every=1000"]
  proc = subprocess.Popen(main_cmd(workdir, corpus_cache, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  step, err = sigterm_once_training(proc, workdir)
  assert f"saved step {step}" in err
  again = run_main(workdir, corpus_cache, f"--config.train.steps={step + 2}",
                   "--config.train.checkpoint_every=1000", "--config.train.eval_every=1000")
  assert f"checkpoints/{step}" in again.stderr
  assert final_state(workdir)[0] == step + 2


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, corpus_cache):
  workdir = tmp_path / "nan"
  proc = run_main(workdir, corpus_cache, "--config.train.steps=12", "--config.train.checkpoint_every=4",
                  "--config.train.eval_every=100", "--nan_at=5", check=False, module="tests.faults")
  assert proc.returncode != 0
  message = next(line for line in proc.stderr.splitlines() if "NaN guard: non-finite" in line)
  assert "loss" in message and "at step 6" in message and "last checkpoint (step 4) is intact" in message
  step, leaves = final_state(workdir)
  assert step == 4
  assert all(np.isfinite(x).all() for x in leaves if x.dtype.kind == "f")


def test_one_and_eight_devices_agree():
  """The same global batch on a 1-device and an 8-device mesh: same loss and gradients (float tolerance)."""
  from configs import smoke
  config = smoke.get_config()
  model = checkpoint.new_model(config, 12)
  graphdef, params, rest = step_lib.split_model(model)
  state = step_lib.init_state(params, rest, step_lib.optimizer())
  rng = np.random.default_rng(0)
  n = int(config.data.chunk_seconds * config.data.sample_rate)
  batch = {"audio": (0.3 * rng.standard_normal((16, n))).astype(np.float32),
           "targets": (rng.random((16, 12)) < 0.3).astype(np.float32)}
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(devices)
    fn = jax.jit(lambda s, b: step_lib.loss_and_grads(s, b, graphdef=graphdef, loss_kind="bce", l2=1e-5),
                 in_shardings=(sharding.replicated(mesh), sharding.data_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh))
    (total, (loss, new_rest)), grads = fn(jax.device_put(state, sharding.replicated(mesh)),
                                          jax.device_put(batch, sharding.data_sharded(mesh)))
    results.append((float(loss), numpy_leaves(grads), numpy_leaves(new_rest)))
  assert len(jax.devices()) == 8
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  # Summation order differs, so each gradient leaf is compared by its relative L2 error. Not elementwise: a
  # max over positions sends its gradient to one arg-max element, and where every position's pre-activation is
  # within rounding of 0 the other device layout's rounding can pick another element (seen: 2 of the 4 elements
  # of a 4-filter branch's leaf, 5e-5 apart). Measured after the banded timbral conv: most leaves < 1e-4, the
  # back-end's first kernel 5e-3, one 4-element front-end leaf 2.1e-2. A wrong all-reduce or per-device BN
  # statistics move a leaf by O(1) (and the loss, checked to 1e-5 above).
  for a, b in zip(results[0][1], results[1][1]):
    err = float(np.linalg.norm(a - b)) / (float(np.linalg.norm(b)) + 1e-12)
    assert err < 5e-2, (a.shape, err)
  for a, b in zip(results[0][2], results[1][2]):   # BN running statistics
    if a.dtype.kind == "f":
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
