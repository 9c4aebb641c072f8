"""The trainer's step-time breakdown (data wait / step / host sync per logged window) and the
``train.profile_steps`` jax.profiler trace, on one tiny smoke run; plus the parsing and timer units."""
import glob
import os
import time

import jax
import pytest

from jaxtag.training import metrics, profiling
from test_train import run_main


def test_short_run_writes_breakdown_and_trace(tmp_path, corpus_cache):
  workdir = tmp_path / "run"
  proc = run_main(workdir, corpus_cache, "--config.train.steps=6", "--config.train.eval_every=100",
                  "--config.train.checkpoint_every=100", "--config.train.profile_steps=2:4")
  records = [r for r in metrics.read_jsonl(workdir / "metrics.jsonl") if "time/step_s" in r]
  assert [r["step"] for r in records] == [2, 4, 6]
  for r in records:
    parts = [r[f"time/{k}_s"] for k in ("data_wait", "step", "host_sync", "other")]
    assert all(p >= 0 for p in parts) and sum(parts) > 0, r
    assert 0.0 <= sum(r[f"time/{k}_frac"] for k in profiling.PHASES) <= 1.0 + 1e-6
  assert "data_wait" in proc.stderr and "host_sync" in proc.stderr     # the progress line shows the split
  traces = glob.glob(str(workdir / "profile" / "**" / "*.xplane.pb"), recursive=True)
  assert len(traces) == 1 and os.path.getsize(traces[0]) > 0
  steps = [e for p in jax.profiler.ProfileData.from_file(traces[0]).planes for line in p.lines
           for e in line.events if "train_step" in e.name]
  assert steps, "the trace holds no train step"


def test_parse_steps():
  assert profiling.parse_steps("") is None
  assert profiling.parse_steps("10:20") == (10, 20)
  for bad in ("10", "a:b", "5:5", "-1:3"):
    with pytest.raises(ValueError, match="profile_steps"):
      profiling.parse_steps(bad)


def test_step_timer_shares_and_input_bound():
  timer = profiling.StepTimer()
  with timer.phase("data_wait"):
    time.sleep(0.05)
  with timer.phase("step"):
    time.sleep(0.01)
  timer.count_step()
  w = timer.window()
  assert w["time/data_wait_s"] >= 0.05 and w["time/step_s"] >= 0.01 and w["time/data_wait_frac"] > 0.5
  assert profiling.input_bound(w) and "INPUT-BOUND" in profiling.progress_suffix(w)
  assert timer.window()["time/data_wait_s"] == 0.0   # the window was reset
