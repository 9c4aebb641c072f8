"""The host-side schedule: periodic decisions, the authors' plateau rule, best-keeping (pure functions)."""
import math

import pytest

from jaxtag.training import schedule


def test_itstime_every_last_and_forced():
  due = [s for s in range(1, 11) if schedule.itstime(s, 4, 10)]
  assert due == [4, 8, 10]                                   # every 4, and the last step
  assert [s for s in range(1, 11) if schedule.itstime(s, 0, 10)] == [10]   # 0 = only at the end
  assert schedule.itstime(3, 4, 10, force=True)              # a stop request forces it


def test_plateau_counts_non_improvements_and_decays():
  host = schedule.initial(1e-3, ("missing",))
  assert host["best_val_loss"] == math.inf and host["bad"] == {"missing": 0}
  losses = [1.0, 0.9, 0.95, 0.92, 0.8, 0.85]
  lrs = []
  for loss in losses:
    host = schedule.plateau_update(host, loss, patience=2, factor=0.5)
    lrs.append(host["lr"])
  # 0.95 and 0.92 are not below 0.9: the second one reaches patience 2 and halves the rate; the count
  # is not reset by the improvement to 0.8 (the authors' rule), 0.85 starts a new count
  assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4])
  assert host["best_val_loss"] == 0.8 and host["plateau_count"] == 1


def test_plateau_update_does_not_mutate_its_input():
  host = schedule.initial(1.0, ())
  schedule.plateau_update(host, 2.0, patience=1, factor=0.1)
  assert host["lr"] == 1.0 and host["plateau_count"] == 0


@pytest.mark.parametrize("metric,values,expect", [
    ("loss", [0.5, 0.6, 0.4], [True, False, True]),
    ("roc_auc", [0.7, 0.65, 0.8], [True, False, True]),
])
def test_keep_best_by_metric(metric, values, expect):
  host = schedule.initial(1.0, ())
  got = []
  for step, v in enumerate(values, start=1):
    host, improved = schedule.keep_best(host, {metric: v}, metric, step * 10)
    got.append(improved)
  assert got == expect
  assert host["best"] == (min(values) if metric == "loss" else max(values))
  assert host["best_step"] == 30


def test_add_counts_accumulates_by_reason():
  totals = schedule.add_counts({"missing": 2}, [1, 3], ("missing", "corrupt"))
  assert totals == {"missing": 3, "corrupt": 3}


def test_warmup_is_linear_then_the_plateau_rate():
  lrs = [schedule.warmup_lr(4e-3, s, 4) for s in range(6)]
  assert lrs == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3, 4e-3, 4e-3])
  assert [schedule.warmup_lr(4e-3, s, 0) for s in range(3)] == [4e-3] * 3     # 0 = no warm-up
  assert schedule.warmup_lr(2e-3, 1, 4) == pytest.approx(1e-3)                # a decay mid-warm-up scales the rest


def test_batch_scaling_rule_and_the_private_slices():
  from configs import private_1m, private_100k
  from jaxtag.core import config as common
  assert common.scaled_lr(32) == 1e-3 and common.scaled_lr(512) == pytest.approx(4e-3)
  assert common.scaled_lr(256) == pytest.approx(2.828e-3, rel=1e-3)
  assert (common.warmup_for(32), common.warmup_for(256), common.warmup_for(512)) == (0, 2000, 1000)
  p = private_1m.get_config("waveform")
  # the authors' batch-32 schedule in chunks: 1M steps, evaluations every 5000, checkpoints every 2000
  assert (p.train.global_batch_size, p.train.learning_rate, p.train.warmup_steps) == (512, pytest.approx(4e-3), 1000)
  assert (p.train.steps, p.train.eval_every, p.train.checkpoint_every) == (62_500, 312, 125)
  q = private_100k.get_config("spectrogram")
  assert (q.train.global_batch_size, q.train.warmup_steps, q.train.steps) == (256, 2000, 125_000)
  r = private_1m.get_config("waveform,batch=32,steps=7")
  assert (r.train.global_batch_size, r.train.learning_rate, r.train.warmup_steps, r.train.steps) == (32, 1e-3, 0, 7)
  assert private_1m.get_config("smoke").train.warmup_steps == 0
