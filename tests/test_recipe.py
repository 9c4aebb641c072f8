"""Won et al.'s recipe (jaxtag.training.recipe): the phase switches and reloads on a hand-made validation sequence,
the optimizer's Adam and SGD updates by hand, and a run with augmentation on that is stopped and resumed
across the switches ending bit-identical to an uninterrupted one."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtag.core import choices, sharding
from jaxtag.core import config as config_lib
from jaxtag.training import checkpoint, recipe, schedule, train_state, trainable
from test_train import numpy_leaves, run_main


def _won_config(**train):
  c = config_lib.base_config()
  c.train.recipe, c.train.l2 = "won", 0.0
  c.train.update(train)
  return c


def test_switch_points_rates_and_reloads_on_a_hand_made_sequence():
  host = {**schedule.initial(1e-3, ()), **recipe.initial_host(_won_config(won_phase_steps=(3, 2, 2)), 100)}
  losses = {1: 5.0, 2: 4.0, 3: 6.0, 4: 3.0, 5: 7.0, 6: 8.0, 7: 2.0, 8: 9.0, 9: 1.0}   # validation after each step
  lrs, switches = {}, []
  for step in range(9):
    if recipe.switch_due(host, step):
      host, reload, reset = recipe.next_phase(host, step)
      switches.append((step, reload, reset))
    lrs[step + 1] = host["lr"]
    host, _ = schedule.keep_best(host, {"loss": losses[step + 1]}, "loss", step + 1)
  # phases of 3, 2 and 2 steps: switches before steps 4, 6 and 8, each reloading the best step so far
  assert switches == [(3, 2, True), (5, 4, False), (7, 7, False)]
  assert [lrs[s] for s in range(1, 10)] == [1e-4] * 3 + [1e-3] * 2 + [1e-4] * 2 + [1e-5] * 2
  assert host["reloads"] == [[3, 2], [5, 4], [7, 7]] and host["phase"] == 3
  assert not recipe.switch_due(host, 100)   # the last phase runs to the end
  assert not recipe.uses_plateau(host) and recipe.uses_plateau(schedule.initial(1e-3, ()))


def test_phase_lengths_in_epochs_and_config_checks():
  host = recipe.initial_host(_won_config(), recipe.steps_per_epoch(1000, 32))   # 32 steps per epoch
  assert host["phase_steps"] == [80 * 32, 20 * 32, 20 * 32] and host["lr"] == 1e-4
  assert recipe.initial_host(config_lib.base_config(), 32) == {}
  with pytest.raises(choices.ConfigError, match="train.l2=0"):
    config_lib.validate(_won_config(l2=1e-5))
  with pytest.raises(choices.ConfigError, match="train.won_phase_steps item=0 is out of range"):
    config_lib.validate(_won_config(won_phase_steps=(2, 0, 2)))
  with pytest.raises(choices.ConfigError, match="need three lengths"):
    config_lib.validate(_won_config(won_phase_steps=(2, 2)))


def test_adam_then_nesterov_sgd_updates_by_hand():
  tx = recipe.optimizer(0.1)
  params = {"w": jnp.array([1.0])}
  grads = {"w": jnp.array([0.5])}   # with weight decay: 0.5 + 0.1 * 1.0 = 0.6
  state = tx.init(params)
  u, state = tx.update(grads, state, params)
  np.testing.assert_allclose(u["w"], [0.6 / (0.6 + 1e-8)], rtol=1e-5)   # Adam's first step: m_hat / sqrt(v_hat)
  state = recipe.to_sgd(state)
  u, state = tx.update(grads, state, params)
  np.testing.assert_allclose(u["w"], [0.6 + 0.9 * 0.6], rtol=1e-6)      # buf = g; g + 0.9 buf
  u, state = tx.update(grads, state, params)
  np.testing.assert_allclose(u["w"], [0.6 + 0.9 * (0.9 * 0.6 + 0.6)], rtol=1e-6)


def final_state(workdir):
  """The newest checkpoint's full train state as numpy, restored with the run's own optimizer layout."""
  config, tags = checkpoint.read_run_info(workdir)
  like = train_state.abstract(config, len(tags), sharding.make_mesh(), tx=trainable.optimizer_for(config))
  ckpts = checkpoint.Checkpoints(workdir, keep=3)
  step = ckpts.latest_step()
  state = ckpts.restore_state(step, like)
  ckpts.close()
  return step, numpy_leaves(state)


AUGMENTED_WON = [
    "--config.train.recipe=won", "--config.train.l2=0", "--config.train.won_phase_steps=(2,2,2)",
    "--config.train.eval_every=1", "--config.train.checkpoint_every=1", "--config.train.log_every=1",
    "--config.train.metrics_every=1", "--config.augment.speed=0.05", "--config.augment.shift_seconds=0.05",
    "--config.augment.gain_db=6", "--config.augment.polarity=0.5", "--config.augment.mixup_alpha=0.4",
    "--config.augment.noise_prob=0.5", "--config.augment.time_masks=2", "--config.augment.time_mask_frames=4",
    "--config.augment.freq_masks=1", "--config.augment.freq_mask_bins=8"]


def test_augmented_won_run_resumed_across_switches_is_bitwise_exact(tmp_path, corpus_cache):
  straight, stopped = tmp_path / "straight", tmp_path / "stopped"
  out = run_main(straight, corpus_cache, *AUGMENTED_WON, "--config.train.steps=5")
  assert "step 2 -> sgd_1 at lr 0.001, reloaded best step" in out.stderr
  assert "step 4 -> sgd_2 at lr 0.0001, reloaded best step" in out.stderr
  run_main(stopped, corpus_cache, *AUGMENTED_WON, "--config.train.steps=2")   # its last checkpoint: before the switch
  resumed = run_main(stopped, corpus_cache, *AUGMENTED_WON, "--config.train.steps=5")
  assert "resumed from" in resumed.stderr and "step 2 -> sgd_1" in resumed.stderr
  step_a, leaves_a = final_state(straight)
  step_b, leaves_b = final_state(stopped)
  assert step_a == step_b == 5 and len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)
