"""``train.trainable`` and ``train.backbone_lr_scale`` on the pure step: frozen leaves (BatchNorm statistics
included) stay bitwise equal, take no optimizer state, and the backbone's update is scaled."""
import jax
import numpy as np
import pytest

from configs import smoke
from jaxtag.training import checkpoint, train_state, trainable
from jaxtag.core import sharding
from jaxtag.training import step as step_lib


def _keys(path):
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def flat(tree) -> dict:
  return {_keys(p): np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def setup():
  config = smoke.get_config(None)
  config.data.chunk_seconds = 0.5
  rng = np.random.default_rng(0)
  batch = {"audio": rng.standard_normal((8, 8000)).astype(np.float32),
           "targets": (rng.random((8, 6)) < 0.3).astype(np.float32)}
  return config, batch, sharding.make_mesh()


def train(config, batch, mesh, mode, scale=1.0, steps=2):
  config = config.copy_and_resolve_references()
  config.train.trainable, config.train.backbone_lr_scale = mode, scale
  model = checkpoint.new_model(config, 6, seed=0)
  trainable.freeze(model, mode)
  graphdef, params, rest = step_lib.split_model(model)
  tx = trainable.optimizer_for(config)
  state0 = step_lib.init_state(params, rest, tx)
  before = {"params": flat(params), "rest": flat(rest)}
  fn = step_lib.jit_train_step(graphdef, tx, mesh, loss_kind="bce", l2=1e-5,
                               frozen=trainable.frozen_mask(params, mode))
  state = train_state.on_mesh(state0, mesh)
  for _ in range(steps):
    state, _ = fn(state, sharding.to_global(batch, mesh), np.float32(1e-3))
  return before, {"params": flat(state["params"]), "rest": flat(state["rest"])}, state


def test_groups_name_head_and_dense_block():
  assert trainable.group(("backend", "out", "kernel")) == "head"
  assert trainable.group(("out", "bias")) == "head"
  assert trainable.group(("backend", "bn_dense", "mean")) == "top"
  assert trainable.group(("dense_bn", "scale")) == "top"
  assert trainable.group(("frontend", "out", "kernel")) == "rest"   # only the model's or back-end's own head
  with pytest.raises(ValueError, match="unknown train.trainable 'heads'; valid: 'all', 'top', 'head'"):
    trainable.check_mode("heads")


def test_head_leaves_everything_else_bitwise_equal(setup):
  before, after, state = train(*setup, "head")
  for part in ("params", "rest"):
    for k, v in before[part].items():
      if "/out/" in k:
        assert not np.array_equal(v, after[part][k]), k
      elif "rngs" not in k:
        np.testing.assert_array_equal(v, after[part][k], err_msg=k)   # BN statistics included
  # Adam moments only for the head: 2 x (kernel + bias), plus counters.
  opt_values = sum(int(np.size(x)) for x in jax.tree.leaves(state["opt"]))
  head = sum(v.size for k, v in before["params"].items() if "/out/" in k)
  assert head * 2 <= opt_values <= head * 2 + 8


def test_top_trains_the_dense_block_only(setup):
  before, after, _ = train(*setup, "top")
  for k, v in before["params"].items():
    changed = not np.array_equal(v, after["params"][k])
    assert changed == (k.startswith("backend/out/") or k.startswith("backend/dense/")
                       or k.startswith("backend/bn_dense/")), k
  assert not np.array_equal(before["rest"]["backend/bn_dense/mean/value"], after["rest"]["backend/bn_dense/mean/value"])
  np.testing.assert_array_equal(before["rest"]["backend/bn1/mean/value"], after["rest"]["backend/bn1/mean/value"])


def test_backbone_lr_scale_scales_the_update_below_the_head(setup):
  before, full, _ = train(*setup, "all", 1.0, steps=1)
  _, half, _ = train(*setup, "all", 0.5, steps=1)
  for k, v in before["params"].items():
    d_full, d_half = full["params"][k] - v, half["params"][k] - v
    ratio = 1.0 if k.startswith("backend/out/") else 0.5
    np.testing.assert_allclose(d_half, ratio * d_full, rtol=1e-4, atol=2e-7, err_msg=k)   # p - lr*u rounding near 1
