"""jaxtag.serving.onnx_lowering on the layers the registry's next models are made of, each against JAX (<= 1e-5):
self-attention (batched products, softmax), layer norm and GELU, a filterbank computed from a learnable
parameter (sin/cos/exp folded into constants), average pooling, dilated and grouped convolutions, a residual
SE block; a dynamic batch axis; a primitive with no lowering fails in one line."""
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="the ONNX export extra is not installed: pip install -e '.[export]'")
pytest.importorskip("onnx", reason="the ONNX export extra is not installed: pip install -e '.[export]'")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from jaxtag.core import errors  # noqa: E402
from jaxtag.serving import onnx_lowering  # noqa: E402

SAMPLES = 1600


class HarmonicAttention(nnx.Module):
  """A toy model with the parts of Won et al.'s taggers: a harmonic filterbank whose centre frequencies
  come from a learnable bandwidth parameter, a dilated depthwise conv, an SE gate, average pooling, one
  self-attention layer with layer norm and GELU, mean over time."""

  def __init__(self, rngs):
    self.q = nnx.Param(jnp.asarray(0.7))
    self.conv = nnx.Conv(8, 8, (3,), kernel_dilation=2, feature_group_count=8, padding="SAME", rngs=rngs)
    self.se1, self.se2 = nnx.Linear(8, 4, rngs=rngs), nnx.Linear(4, 8, rngs=rngs)
    self.qkv = nnx.Linear(8, 24, rngs=rngs)
    self.norm = nnx.LayerNorm(8, rngs=rngs)
    self.out = nnx.Linear(8, 3, rngs=rngs)

  def __call__(self, wave):
    frames = wave.reshape(wave.shape[0], -1, 40)                                # (B, 40, 40)
    centres = 0.05 * jnp.exp(self.q[...] * jnp.arange(8.0))                     # from a learnable parameter
    t = jnp.arange(40.0)
    bank = jnp.cos(2 * jnp.pi * centres[None, :] * t[:, None]) * jnp.sin(jnp.pi * (t[:, None] + 0.5) / 40)
    x = jnp.log1p(jnp.square(frames @ bank))                                    # (B, 40, 8)
    x = jax.nn.relu(self.conv(x))
    gate = jax.nn.sigmoid(self.se2(jax.nn.relu(self.se1(x.mean(axis=1)))))
    x = x * gate[:, None, :] + x
    x = nnx.avg_pool(x, (2,), strides=(2,))                                     # (B, 20, 8)
    q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
    weights = jax.nn.softmax(jnp.einsum("btc,bsc->bts", q, k) / jnp.sqrt(8.0), axis=-1)
    x = self.norm(x + jax.nn.gelu(jnp.einsum("bts,bsc->btc", weights, v)))
    return jax.nn.sigmoid(self.out(jnp.concatenate([x.mean(axis=1), x.max(axis=1)], axis=-1)[:, :8]))


@pytest.fixture(scope="module")
def wave():
  return (0.3 * np.random.default_rng(0).standard_normal((3, SAMPLES))).astype(np.float32)


def _run(model, x):
  session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
  return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_attention_filterbank_and_pooling_layers_lower(wave):
  model = HarmonicAttention(nnx.Rngs(0))
  onnx_model = onnx_lowering.to_onnx(model, (SAMPLES,))
  ops = {n.op_type for n in onnx_model.graph.node}
  assert {"Einsum", "Softmax"} & ops or {"Einsum", "Exp"} <= ops          # batched products and the softmax
  assert not {"Sin", "Cos"} & ops                                          # the filterbank folded to a constant
  ours = np.asarray(jax.jit(model)(wave))
  for batch in (1, 3):                                                     # one graph, any batch size
    theirs = _run(onnx_model, wave[:batch])
    assert theirs.shape == (batch, 3)
    assert np.abs(theirs - ours[:batch]).max() <= 1e-5


def test_gather_slices_pads_and_argmax(wave):
  def fn(x):
    frames = x[:, np.arange(10)[:, None] * 100 + np.arange(200)[None, :]]  # (B, 10, 200): a take along time
    y = jnp.pad(frames[:, ::2, 5:-5], ((0, 0), (1, 2), (3, 0)))[:, ::-1]
    idx = jnp.argmax(y, axis=-1).astype(jnp.float32)
    return jnp.cumsum(y.sum(-1), axis=1) + idx + jnp.clip(y, -0.1, 0.1).mean(-1)
  theirs = _run(onnx_lowering.to_onnx(fn, (SAMPLES,)), wave)
  assert np.abs(theirs - np.asarray(jax.jit(fn)(wave))).max() <= 1e-5


def test_a_primitive_without_lowering_names_itself(wave):
  with pytest.raises(errors.UserError, match="cannot lower JAX primitive 'sort' to ONNX"):
    onnx_lowering.to_onnx(lambda x: jnp.sort(x, axis=-1), (SAMPLES,))
