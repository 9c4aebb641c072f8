"""Model registry: exact paper parameter counts, shapes for 3-s and 15-s inputs, train/eval behaviour and
one gradient step per registered model (tiny widths, so the whole file compiles in about a minute)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import msd, mtt, private_1m
from jaxtag.core import config as config_lib
from jaxtag.models.layers import count_params
from jaxtag.models.registry import MODELS, build_model

# XLA CPU spends most of these tests compiling; its cheap back-end mode cuts that 2-5x (26 s -> 5 s for
# musicnn_vgg's gradient) and does not change what is tested.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

PAPER_COUNTS = [  # (config module, argument, parameters with 50 tags): paper_and_models.md section 1.5
    (msd, "spectrogram", 5_926_198),          # k16 / F512 / U500
    (mtt, "spectrogram", 5_069_686),          # k8
    (mtt, "spectrogram,small", 223_130),      # k8 / F64 / U200
    (mtt, "waveform", 11_826_102),            # x4
    (mtt, "waveform,small", 1_311_962),       # x2 / F64 / U200
    (msd, "waveform", 5_379_126),             # x1
    (private_1m, "waveform", 5_478_198),      # 9 layers, x1, 15 s
    (private_1m, "spectrogram", 5_926_198),
]


def abstract_model(model_cfg, n_tags=50):
  return nnx.eval_shape(lambda: build_model(model_cfg, n_tags, sample_rate=16000, rngs=nnx.Rngs(0)))


def output_shapes(model, samples, batch=2):
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((batch, samples), jnp.float32)
  logits = jax.eval_shape(lambda s, w: nnx.merge(graphdef, s)(w, train=True), state, x)
  emb = jax.eval_shape(lambda s, w: nnx.merge(graphdef, s).embed(w, train=False), state, x)
  return logits, emb


@pytest.mark.parametrize("module,arg,count", PAPER_COUNTS, ids=[f"{m.__name__[8:]}:{a}" for m, a, _ in PAPER_COUNTS])
def test_paper_parameter_counts(module, arg, count):
  config = module.get_config(arg)
  model = abstract_model(config.model)
  assert count_params(model) == count
  logits, _ = output_shapes(model, int(config.data.chunk_seconds * config.data.sample_rate))
  assert logits.shape == (2, 50) and logits.dtype == jnp.float32


def test_scalar_bn_quirk_has_one_gamma_beta_per_residual_bn():
  config = msd.get_config("spectrogram")
  config.model.scalar_bn_quirk = True
  assert count_params(abstract_model(config.model)) == 5_926_198 - 2 * (2 * 512 - 2)


def test_unknown_name_lists_the_valid_ones():
  config = mtt.get_config("model=resnet")
  with pytest.raises(ValueError, match="valid: .*waveform.*spectrogram"):
    build_model(config.model, 50, sample_rate=16000, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", MODELS)
def test_full_size_shapes_for_3s_and_15s(name):
  model = abstract_model(mtt.get_config(f"model={name}").model)
  for seconds in (3, 15):
    logits, emb = output_shapes(model, seconds * 16000)
    assert logits.shape == (2, 50) and logits.dtype == jnp.float32
    assert emb.ndim == 2 and emb.shape[0] == 2


def test_nine_layer_waveform_on_15s():
  config = private_1m.get_config("waveform")
  logits, emb = output_shapes(abstract_model(config.model), 15 * 16000)
  assert logits.shape == (2, 50) and emb.shape == (2, 500)


def tiny_config(name):
  """Every model shrunk: widths /8, small back-end, k=2 (compile time dominates on a 2-core CPU)."""
  config = config_lib.base_config()
  config_lib.apply_args(config, {"model": name}, "spectrogram")
  m = config.model
  m.width, m.waveform_width, m.spectrogram_k, m.backend_filters, m.backend_units = 0.125, 1, 2, 16, 16
  return config


# Won et al.'s models compile 10-40 s each here (59,049-sample windows, 7-11 blocks); tests/test_won.py steps one
STEPPED = [m for m in MODELS if m not in ("short_chunk_cnn", "short_chunk_resnet", "harmonic_cnn", "samplecnn_se",
                                          "cnnsa")]


@pytest.mark.parametrize("name", STEPPED)
def test_one_gradient_step_lowers_the_loss(name):
  """A pure jitted step (split -> merge inside, as the trainer does) lowers the BCE on a fixed batch.

  The loss is evaluated twice with the same non-parameter state (BN statistics, dropout RNG), so the
  dropout masks are identical and the difference is the parameter update alone.
  """
  config = tiny_config(name)
  model = build_model(config.model, 8, sample_rate=16000, rngs=nnx.Rngs(params=0, dropout=1))
  rng = np.random.default_rng(0)
  wave = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 48000)).astype(np.float32))
  targets = jnp.asarray(rng.integers(0, 2, (2, 8)).astype(np.float32))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def step(params, rest):
    def loss_fn(p, rest):   # fresh Variables at this trace level, as jaxtag.training.step does
      logits = nnx.merge(graphdef, p, rest, copy=True)(wave, train=True)
      return optax.sigmoid_binary_cross_entropy(logits, targets).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params, rest)
    return loss, jax.tree.map(lambda p, g: p - 1e-2 * g, params, grads)

  loss0, params = step(params, rest)
  loss1, _ = step(params, rest)
  assert np.isfinite(loss0) and loss1 < loss0, (loss0, loss1)


def test_train_and_eval_modes():
  """Train mode updates BN statistics and draws fresh dropout masks; eval mode is deterministic and pure."""
  config = tiny_config("waveform")
  model = build_model(config.model, 8, sample_rate=16000, rngs=nnx.Rngs(params=0, dropout=1))
  wave = jnp.asarray(np.random.default_rng(1).uniform(-0.5, 0.5, (4, 24000)).astype(np.float32))
  stats0 = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  a, b = model(wave, train=False), model(wave, train=False)
  np.testing.assert_array_equal(a, b)
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(stats0),
                                                   jax.tree.leaves(nnx.state(model, nnx.BatchStat))))
  t1, t2 = model(wave, train=True), model(wave, train=True)
  assert not np.allclose(t1, t2)                                   # dropout differs between steps
  assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(stats0),
                                                       jax.tree.leaves(nnx.state(model, nnx.BatchStat))))
  assert any(isinstance(v, nnx.RngState) for _, v in nnx.iter_graph(model))   # RNG lives in the state


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_compute_keeps_float32_parameters_and_logits(name):
  config = tiny_config(name)
  config.model.dtype = "bfloat16"
  model = abstract_model(config.model, 8)
  assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
  logits, emb = output_shapes(model, 48000)
  assert logits.dtype == emb.dtype == jnp.float32


def test_compute_dtype_is_checked():
  config = tiny_config("waveform")
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match="bfloat16"):   # the config schema, at start
    config_lib.validate(config)
