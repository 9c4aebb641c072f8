"""``model.kernels``: the fused CPU rewrites and the plain forms compute the same function (outputs, gradients,
BatchNorm statistics) on the paper's tiny models, and each backend gets the default the docs name."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxtag.core import config as common
from jaxtag.core import choices
from jaxtag.models.registry import build_model
from jaxtag.models.layers import Hyper, max_over, max_pool_time, resolve_kernels

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@pytest.mark.parametrize("backend,expect", [("cpu", "fused"), ("gpu", "plain"), ("cuda", "plain"),
                                            ("rocm", "plain"), ("tpu", "plain")])
def test_auto_is_fused_on_cpu_only(backend, expect):
  assert resolve_kernels("auto", backend) == expect
  assert resolve_kernels("fused", backend) == "fused" and resolve_kernels("plain", backend) == "plain"


def test_kernels_key_is_declared_and_checked():
  c = common.base_config()
  assert c.model.kernels == "auto" and choices.KERNELS == ("auto", "fused", "plain")
  c.model.kernels = "cudnn"
  with pytest.raises(choices.ConfigError, match="model.kernels 'cudnn'; valid: 'auto', 'fused', 'plain'"):
    common.validate(c)
  with pytest.raises(choices.ConfigError, match="model.kernels"):
    Hyper.from_config(c.model)
  c.model.kernels = "plain"
  assert Hyper.from_config(c.model).fused is False
  c.model.kernels = "auto"
  assert Hyper.from_config(c.model).fused is (jax.default_backend() == "cpu")


def test_pools_agree_with_gradients():
  x = jax.random.normal(jax.random.key(0), (2, 10, 5, 3))
  for fn in (lambda x, f: max_pool_time(x, 3, fused=f), lambda x, f: max_over(x, 2, fused=f),
             lambda x, f: max_over(x, (1, 2), fused=f)):
    np.testing.assert_array_equal(fn(x, True), fn(x, False))
    grads = [jax.grad(lambda v: (fn(v, f) * jnp.arange(fn(v, f).size).reshape(fn(v, f).shape)).sum())(x)
             for f in (True, False)]
    np.testing.assert_array_equal(*grads)


def tiny(name: str, kernels: str):
  c = common.apply_smoke(common.base_config())
  c.model.name, c.model.kernels = name, kernels
  c.model.waveform_scale, c.model.spectrogram_k = 0.125, 2
  c.model.backend_filters, c.model.backend_units, c.model.logmel.n_mels = 16, 16, 32
  return c


@functools.lru_cache(maxsize=None)
def run(name: str, kernels: str):
  """(train logits, eval logits, parameter gradients, BN statistics after the step) of a tiny model."""
  c = tiny(name, kernels)
  model = build_model(c.model, 5, sample_rate=16000, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  wave = 0.3 * jax.random.normal(jax.random.key(1), (4, 24000))

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def step(params, rest):
    def loss(p, r):   # r is an argument so its Variables live at this trace level
      m = nnx.merge(graphdef, p, r, copy=True)
      logits = m(wave, train=True)
      weights = jnp.linspace(-1, 1, logits.size).reshape(logits.shape)
      return (logits * weights).sum(), (logits, nnx.state(m, nnx.BatchStat))
    (_, (logits, stats)), grads = jax.value_and_grad(loss, has_aux=True)(params, rest)
    eval_logits = nnx.merge(graphdef, params, rest, copy=True)(wave, train=False)
    return logits, eval_logits, grads, stats

  return jax.device_get(step(params, rest))


@pytest.mark.parametrize("name", ["spectrogram", "waveform"])
def test_fused_and_plain_give_the_same_outputs_and_gradients(name):
  fused, plain = run(name, "fused"), run(name, "plain")
  for what, a, b in zip(("train logits", "eval logits", "gradients", "BN statistics"), fused, plain):
    scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(a))   # float32 sums in another order
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4 * scale, err_msg=what)
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(fused[2]))
