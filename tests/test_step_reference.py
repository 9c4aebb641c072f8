"""The layer rewrites for speed (arg-max pooling, reshape framing, ...) keep the math: train-step loss,
gradients, BatchNorm statistics and eval logits of one spectrogram and one waveform model equal those
recorded from the code before the rewrite (``tests/data/step_reference.npz``, see tests/step_reference.py)."""
import numpy as np
import pytest

import step_reference


@pytest.mark.parametrize("name", list(step_reference.MODELS))
def test_step_matches_reference(name):
  ref = np.load(step_reference.PATH)
  got = step_reference.compute(name)
  # inference in micro-batches of one row (step.in_microbatches) gives the one-pass logits to rounding
  np.testing.assert_allclose(got.pop(step_reference.MICRO), got["logits"], rtol=1e-5,
                             atol=1e-5 * np.abs(got["logits"]).max())
  keys = [k.split("|", 1)[1] for k in ref.files if k.startswith(name + "|")]
  assert set(keys) == set(got), set(keys) ^ set(got)
  for k in keys:
    want = ref[f"{name}|{k}"]
    # The reference is op by op (see step_reference.compute); the jitted program fuses and reorders float32
    # sums, which moves loss, logits and BN statistics by < 1e-5 and gradients, amplified through 7 BN
    # layers, by up to ~3e-3 of a leaf's scale. A changed formula moves them by far more (the old jitted
    # max-pool gradient was off by 4.7e-2).
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    tol = 5e-3 if "grad/" in k else 1e-4
    np.testing.assert_allclose(got[k], want, rtol=2e-4, atol=tol * scale + 1e-7, err_msg=k)


def test_pooling_equals_reduce_window_with_ties():
  """Values and gradients of the arg-max pools equal ``reduce_window`` max (``select_and_scatter``), ties
  (all-zero ReLU windows) included, for the time pools and a max over one and over two whole axes."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from jaxtag.models import layers
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(rng.standard_normal((2, 20, 6, 3)), 0.5).astype(np.float32))   # many ties
  def old_over(t, axes):
    window = tuple(t.shape[a] if a in axes else 1 for a in range(t.ndim))
    return jax.lax.reduce_window(t, -jnp.inf, jax.lax.max, window, (1,) * t.ndim, "VALID").squeeze(axes)
  cases = [(lambda t: layers.max_pool_time(t, 3), lambda t: nnx.max_pool(t, (3, 1), strides=(3, 1), padding="VALID")),
           (lambda t: layers.max_over(t, 2), lambda t: old_over(t, (2,))),
           (lambda t: layers.max_over(t, (1, 2)), lambda t: old_over(t, (1, 2)))]
  for new, old in cases:
    np.testing.assert_array_equal(new(x), old(x))
    w = jnp.asarray(rng.standard_normal(old(x).shape).astype(np.float32))
    g_new = jax.grad(lambda t: jnp.sum(new(t) * w))(x)
    g_old = jax.grad(lambda t: jnp.sum(old(t) * w))(x)
    np.testing.assert_array_equal(g_new, g_old)


def test_mel_branch_rewrite_equals_conv_relu_bn_max():
  """``MelConvReluBN.pooled`` (banded conv + fused BN/max) equals ``max_over(ConvReluBN(x), 2)`` built from
  ``nnx.Conv`` and ``nnx.BatchNorm``: output, running statistics and parameter gradients, in training mode
  (with negative BN scales, so the min branch is taken, and all-zero ReLU columns, i.e. ties) and in
  inference mode."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from jaxtag.models import layers
  hp = layers.Hyper(bn_momentum=0.9)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((4, 30, 24, 1)).astype(np.float32))
  x = x.at[:, :5].set(-1.0)                       # frames where every position is clipped by the ReLU
  for kt, h, filters in [(7, 21, 3), (3, 9, 5), (1, 9, 2)]:
    new = layers.MelConvReluBN(hp, 1, filters, (kt, h), rngs=nnx.Rngs(0))
    old = layers.ConvReluBN(hp, 1, filters, (kt, h), rngs=nnx.Rngs(0))
    scale = jnp.asarray(rng.standard_normal(filters).astype(np.float32))
    new.bn.scale[...] = scale
    old.bn.scale[...] = scale
    w = jnp.asarray(rng.standard_normal((4, 30 - kt + 1, filters)).astype(np.float32))

    def run(model, fused, train):
      graphdef, params, rest = nnx.split(model, nnx.Param, ...)
      def loss(p):
        m = nnx.merge(graphdef, p, rest, copy=True)
        out = m.pooled(x, train) if fused else layers.max_over(m(x, train), 2)
        return jnp.sum(out * w), (out, nnx.state(m, nnx.BatchStat))
      (_, (out, stats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
      return out, stats, grads

    for train in (True, False):
      got, want = run(new, True, train), run(old, False, train)
      np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
      for a, b in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(want[1:])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b))) + 1e-6)


def test_waveform_block_rewrite_equals_conv_relu_bn_pool():
  """``ConvReluBN.pooled`` (fused BN + max-pool 3) equals ``max_pool_time(ConvReluBN(x), 3)``, with a tail frame
  that only the BatchNorm statistics see, negative BN scales and tied (all-zero) windows; train and eval."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from jaxtag.models import layers
  hp = layers.Hyper(bn_momentum=0.9)
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((3, 36, 5)).astype(np.float32))      # 34 conv frames: 11 windows + 1 tail
  x = x.at[:, :6].set(0.0)
  new = layers.ConvReluBN(hp, 5, 4, (3,), rngs=nnx.Rngs(0))
  scale = jnp.asarray([1.5, -0.7, 0.3, -2.0], np.float32)
  new.bn.scale[...] = scale
  w = jnp.asarray(rng.standard_normal((3, 11, 4)).astype(np.float32))
  graphdef, params, rest = nnx.split(new, nnx.Param, ...)
  for train in (True, False):
    outs = []
    for fused in (True, False):
      def loss(p):
        m = nnx.merge(graphdef, p, rest, copy=True)
        out = m.pooled(x, train, 3) if fused else layers.max_pool_time(m(x, train), 3)
        return jnp.sum(out * w), (out, nnx.state(m, nnx.BatchStat))
      outs.append(jax.jit(jax.value_and_grad(loss, has_aux=True))(params))
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(b))) + 1e-6)


def test_microbatches_keep_rows_and_shards():
  """On the 8-device mesh: every row comes back in its place, tuple outputs included, no rows move between
  devices (no collective in the compiled program), and a batch too small to split runs in one pass."""
  import jax
  import jax.numpy as jnp
  from jaxtag.core import sharding
  from jaxtag.training import step as step_lib
  mesh = sharding.make_mesh()
  data = sharding.data_sharded(mesh)
  x = jax.device_put(np.arange(64 * 5, dtype=np.float32).reshape(64, 5), data)
  calls = []
  def fn(a):
    calls.append(a.shape)
    return a * 2.0, a.sum(1)
  f = jax.jit(lambda a: step_lib.in_microbatches(fn, a, shards=8, rows=2), out_shardings=(data, data))
  doubled, sums = f(x)
  np.testing.assert_array_equal(doubled, 2 * np.asarray(x))
  np.testing.assert_array_equal(sums, np.asarray(x).sum(1))
  assert calls == [(16, 5)]                 # 4 micro-batches of 2 rows on each of 8 devices
  hlo = f.lower(x).compile().as_text()
  assert not [op for op in ("all-gather", "all-to-all", "collective-permute", "all-reduce") if op in hlo]
  calls.clear()
  step_lib.in_microbatches(fn, jnp.zeros((8, 5)), shards=8, rows=2)
  assert calls == [(8, 5)]


def test_banded_mel_conv_in_groups_equals_the_conv():
  """Every grouping of the banded convolution (one band, groups that do and do not divide the positions, one
  position a group) gives ``nnx.Conv``'s output, bias included."""
  import jax
  from flax import nnx
  from jaxtag.models import layers
  conv = nnx.Conv(1, 5, (3, 7), padding="VALID", rngs=nnx.Rngs(0))
  conv.bias[...] = jax.numpy.arange(5.0)
  x = np.random.default_rng(4).standard_normal((2, 11, 20, 1)).astype(np.float32)   # 14 positions
  want = np.asarray(conv(x))
  for group in (None, 1, 2, 4, 5, 14, 30):
    np.testing.assert_allclose(layers.banded_mel_conv(conv, x, group), want, rtol=1e-5, atol=1e-5, err_msg=group)
