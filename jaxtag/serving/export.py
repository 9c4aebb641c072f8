"""``python -m jaxtag.export --workdir=W --out=model.onnx [--checkpoint=best]``: a run as one portable ONNX file.

The graph takes raw mono waveform windows ``(batch, samples)`` float32 at the run's sample rate (dynamic
batch), computes the log-mel inside the graph for spectrogram models, and outputs sigmoid probabilities
``(batch, n_tags)``. The model's metadata (``metadata_props``) holds the tag list (``jaxtag.tags``), the
preprocessing contract (``jaxtag.models.contract``, as ``W/contract.json``) and how to cut a file into windows
(``jaxtag.windows``: pad ``pad_samples`` zeros at both ends, windows of ``window_samples`` every
``hop_samples``; the trailing partial window is dropped, a short file is zero-padded to one window), so an
application needs onnxruntime and NumPy only. For runs imported from musicnn the windows are exactly the
audio behind musicnn's 187-frame patches (the whole-file STFT padding is done once, outside), so the ONNX
model tags as musicnn does; for trained runs they are the training chunks.

Converter: this module lowers jaxtag's own layer set (conv / ReLU / BatchNorm / pooling / dense, the STFT
as a float64 DFT matmul) to standard ONNX operators with the ``onnx`` package, opset 17. Why not a general
converter (measured, see docs/notes_issue15x.md): ``jax2onnx`` 0.17.1, the only release on PyPI, pins
``orbax-checkpoint<0.11.37`` (jaxtag needs >=0.12.8, so ``pip`` cannot install both) and fails on jax 0.12
(``jax._src.core.ClosedJaxpr`` no longer exists); ``jax2tf`` in jax 0.12 only emits native serialization
(one ``XlaCallModule`` op), which ``tf2onnx`` cannot convert, and it would pull TensorFlow into the extra.
Every supported model is checked against jaxtag's own forward pass in the tests (<= 1e-5).
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
from absl import flags

from jaxtag.core import choices

OPSET = 17
IR_VERSION = 8        # the IR of opset 17: loadable by onnxruntime >= 1.12


class Graph:
  """A tiny ONNX graph builder: named nodes, numpy initializers, unique names."""

  def __init__(self):
    import onnx
    from onnx import helper, numpy_helper
    self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
    self.nodes, self.inits, self._n = [], [], 0

  def name(self, prefix: str) -> str:
    self._n += 1
    return f"{prefix}_{self._n}"

  def const(self, value, prefix: str = "c") -> str:
    name = self.name(prefix)
    self.inits.append(self.numpy_helper.from_array(np.asarray(value), name))
    return name

  def op(self, op_type: str, *inputs: str, **attrs) -> str:
    out = self.name(op_type.lower())
    self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
    return out

  def model(self, inp: str, out: str, samples: int, n_tags: int, metadata: dict):
    h, tp = self.helper, self.onnx.TensorProto
    graph = h.make_graph(self.nodes, "jaxtag", [h.make_tensor_value_info(inp, tp.FLOAT, ["batch", samples])],
                         [h.make_tensor_value_info(out, tp.FLOAT, ["batch", n_tags])], self.inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="jaxtag",
                     ir_version=IR_VERSION)
    h.set_model_props(m, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    self.onnx.checker.check_model(m)
    return m


def _np(v) -> np.ndarray:
  return np.asarray(v[...] if hasattr(v, "__getitem__") else v, np.float32)


# ---- layers (tensors are channels-first inside the graph: (B, C, T) or (B, C, T, F)) -------------------

def conv(g: Graph, x: str, layer, padding) -> str:
  """``nnx.Conv`` (kernel ``(k..., in, out)``, NHWC in flax) as an ONNX Conv on channels-first input."""
  kernel = _np(layer.kernel)
  k = kernel.shape[:-2]
  w = np.transpose(kernel, (kernel.ndim - 1, kernel.ndim - 2) + tuple(range(kernel.ndim - 2)))
  strides = layer.strides if isinstance(layer.strides, (tuple, list)) else (layer.strides or 1,) * len(k)
  if padding == "VALID":
    pads = [(0, 0)] * len(k)
  elif padding == "SAME":   # TF/flax split for stride 1: the extra padding goes after
    pads = [((n - 1) // 2, n - 1 - (n - 1) // 2) for n in k]
  else:
    pads = [tuple(p) for p in padding]
  inputs = [x, g.const(w, "w")] + ([g.const(_np(layer.bias), "b")] if layer.bias is not None else [])
  return g.op("Conv", *inputs, kernel_shape=list(k), strides=list(strides),
              pads=[p[0] for p in pads] + [p[1] for p in pads])


def batchnorm(g: Graph, x: str, bn, spatial: int) -> str:
  """Inference BatchNorm folded into ``x * mul + add`` per channel (axis 1); a 1-feature BN broadcasts."""
  mean, var = np.asarray(bn.mean[...], np.float64), np.asarray(bn.var[...], np.float64)
  mul = np.asarray(bn.scale[...], np.float64) / np.sqrt(var + bn.epsilon)
  add = np.asarray(bn.bias[...], np.float64) - mean * mul
  shape = (-1,) + (1,) * spatial
  return g.op("Add", g.op("Mul", x, g.const(mul.astype(np.float32).reshape(shape))),
              g.const(add.astype(np.float32).reshape(shape)))


def conv_relu_bn(g: Graph, x: str, block, spatial: int, padding=None) -> str:
  pad = padding if padding is not None else block.conv.padding
  return batchnorm(g, g.op("Relu", conv(g, x, block.conv, pad)), block.bn, spatial)


def dense(g: Graph, x: str, layer) -> str:
  return g.op("Add", g.op("MatMul", x, g.const(_np(layer.kernel))), g.const(_np(layer.bias)))


def pad_axis(g: Graph, x: str, rank: int, axis: int, before: int, after: int) -> str:
  pads = [0] * (2 * rank)
  pads[axis], pads[rank + axis] = before, after
  return g.op("Pad", x, g.const(np.asarray(pads, np.int64)))


def global_max_mean(g: Graph, x: str) -> str:
  """``(B, C, T)`` -> ``(B, 2C)`` interleaved ``[max_0, mean_0, max_1, ...]`` (``layers.global_max_mean``)."""
  mx = g.op("ReduceMax", x, axes=[2], keepdims=1)
  mean = g.op("ReduceMean", x, axes=[2], keepdims=1)
  return g.op("Reshape", g.op("Concat", mx, mean, axis=2), g.const(np.asarray([0, -1], np.int64)))


# ---- the log-mel (models/logmel.py) -------------------------------------------------------------------

def logmel(g: Graph, wave: str, mel, samples: int, centred: bool) -> tuple[str, int]:
  """``(B, samples)`` -> ``(B, frames, mels)`` log-mel: centred (zero padding inside) for chunks, or on
  windows whose padding was done outside (musicnn patches). The DFT is a float64 matmul with the
  periodic-Hann-windowed basis: more exact than a float32 FFT, so jaxtag's float32 result is matched."""
  from jaxtag.models.logmel import mel_filterbank
  n_fft, hop = mel.n_fft, mel.hop
  x = pad_axis(g, wave, 2, 1, n_fft // 2, n_fft // 2) if centred else wave
  length = samples + (n_fft if centred else 0)
  frames = 1 + (length - n_fft) // hop
  index = (np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]).astype(np.int64)
  framed = g.op("Cast", g.op("Gather", x, g.const(index, "frames"), axis=1), to=g.onnx.TensorProto.DOUBLE)
  n = np.arange(n_fft)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
  angle = 2 * np.pi * np.outer(n, np.arange(n_fft // 2 + 1)) / n_fft
  re = g.op("MatMul", framed, g.const(window[:, None] * np.cos(angle), "dft_re"))
  im = g.op("MatMul", framed, g.const(-window[:, None] * np.sin(angle), "dft_im"))
  power = g.op("Cast", g.op("Add", g.op("Mul", re, re), g.op("Mul", im, im)), to=g.onnx.TensorProto.FLOAT)
  fb = mel_filterbank(mel.sample_rate, n_fft, mel.n_mels, mel.fmin, mel.fmax)
  m = g.op("MatMul", power, g.const(fb, "mel"))
  if mel.musicnn_compat:
    m = g.op("Cast", g.op("Cast", m, to=g.onnx.TensorProto.FLOAT16), to=g.onnx.TensorProto.FLOAT)
  m = g.op("Add", g.op("Mul", m, g.const(np.float32(mel.log_scale))), g.const(np.float32(1.0)))
  return g.op("Mul", g.op("Log", m), g.const(np.float32(1.0 / math.log(10.0)))), frames


def _slice_time(g: Graph, x: str, frames: int) -> str:
  """First ``frames`` frames of ``(B, T, M)``."""
  return g.op("Slice", x, g.const(np.asarray([0], np.int64)), g.const(np.asarray([frames], np.int64)),
              g.const(np.asarray([1], np.int64)))


# ---- models -------------------------------------------------------------------------------------------

def _spectrogram_frontend(g: Graph, fe, spec: str) -> str:
  """``SpectrogramFrontend.from_logmel``: ``(B, T, M)`` -> ``(B, 29k, T)``."""
  x = g.op("Unsqueeze", spec, g.const(np.asarray([1], np.int64)))                  # (B, 1, T, M)
  outs = []
  for branch in fe.timbral:
    t = branch.conv.kernel_size[0]
    y = conv_relu_bn(g, pad_axis(g, x, 4, 2, (t - 1) // 2, (t - 1) // 2), branch, 2)
    outs.append(g.op("ReduceMax", y, axes=[3], keepdims=0))
  envelope = g.op("ReduceMean", x, axes=[3], keepdims=0)                            # (B, 1, T)
  outs += [conv_relu_bn(g, envelope, branch, 1) for branch in fe.temporal]
  return g.op("Concat", *outs, axis=1)


def _waveform_frontend(g: Graph, fe, wave: str) -> str:
  x = g.op("Unsqueeze", wave, g.const(np.asarray([1], np.int64)))                  # (B, 1, S)
  for n, block in enumerate(fe.blocks):
    x = conv_relu_bn(g, x, block, 1)
    if n > 0:
      x = g.op("MaxPool", x, kernel_shape=[3], strides=[3])
  return x


def _backend(g: Graph, be, x: str) -> str:
  """``Backend`` on ``(B, C, T)`` -> logits."""
  def bn(b, y):
    return batchnorm(g, y, b, 1)   # a scalar (quirk) BN broadcasts over all channels
  h1 = bn(be.bn1, g.op("Relu", conv(g, x, be.conv1, be.conv1.padding)))
  h2 = g.op("Add", bn(be.bn2, g.op("Relu", conv(g, h1, be.conv2, be.conv2.padding))), h1)
  p = g.op("MaxPool", h2, kernel_shape=[2], strides=[2])
  h3 = g.op("Add", bn(be.bn3, g.op("Relu", conv(g, p, be.conv3, be.conv3.padding))), p)
  emb = batchnorm(g, g.op("Relu", dense(g, global_max_mean(g, h3), be.dense)), be.bn_dense, 0)
  return dense(g, emb, be.out)


def _musicnn(g: Graph, model, spec: str) -> str:
  """``Musicnn.from_logmel`` on ``(B, 187, M)``."""
  x = batchnorm(g, g.op("Unsqueeze", spec, g.const(np.asarray([1], np.int64))), model.input_bn, 2)
  fe = [g.op("ReduceMax", conv_relu_bn(g, pad_axis(g, x, 4, 2, 3, 3), b, 2), axes=[3], keepdims=0)
        for b in model.timbral]
  fe += [g.op("ReduceMax", conv_relu_bn(g, x, b, 2), axes=[3], keepdims=0) for b in model.temporal]
  layers = [g.op("Concat", *fe, axis=1)]                                           # (B, 561, T)
  for n, block in enumerate(model.mid):
    y = conv_relu_bn(g, layers[-1], block, 1)
    layers.append(y if n == 0 else g.op("Add", y, layers[-1]))
  pooled = batchnorm(g, global_max_mean(g, g.op("Concat", *layers, axis=1)), model.pool_bn, 0)
  emb = batchnorm(g, g.op("Relu", dense(g, pooled, model.dense)), model.dense_bn, 0)
  return dense(g, emb, model.out)


def _musicnn_vgg(g: Graph, model, spec: str) -> str:
  """``MusicnnVGG`` on one 187-frame patch ``(B, 187, M)``."""
  from jaxtag.models.musicnn import VGG_POOLS
  x = batchnorm(g, g.op("Unsqueeze", spec, g.const(np.asarray([1], np.int64))), model.input_bn, 2)
  for block, (window, strides) in zip(model.blocks, VGG_POOLS):
    x = g.op("MaxPool", conv_relu_bn(g, x, block, 2), kernel_shape=list(window), strides=list(strides))
  x = g.op("Transpose", x, perm=[0, 2, 3, 1])                                       # flatten as NHWC (t, f, c)
  return dense(g, g.op("Reshape", x, g.const(np.asarray([0, -1], np.int64))), model.out)


def windows(c) -> dict:
  """How a file becomes the ONNX model's inputs (``jaxtag.windows`` metadata)."""
  if c.kind == "chunks":
    return {"sample_rate": c.sample_rate, "pad_samples": 0, "window_samples": c.chunk_samples,
            "hop_samples": c.chunk_samples, "min_samples": c.chunk_samples}
  n_fft, hop = int(c.logmel["n_fft"]), int(c.logmel["hop"])
  return {"sample_rate": c.sample_rate, "pad_samples": n_fft // 2,
          "window_samples": (c.patch_frames - 1) * hop + n_fft, "hop_samples": c.patch_hop * hop,
          "min_samples": c.chunk_samples}


def build(model, config, tags, c) -> "onnx.ModelProto":  # noqa: F821
  """The ONNX model of ``model`` under preprocessing contract ``c`` (probabilities out)."""
  from jaxtag.models.musicnn import Musicnn, MusicnnVGG, PATCH_FRAMES
  from jaxtag.models.spectrogram import SpectrogramFrontend
  from jaxtag.models.tagger import Tagger
  from jaxtag.models.waveform import WaveformFrontend
  if str(config.model.dtype) != "float32":
    raise choices.ConfigError(f"export supports float32 models; this run computes in {config.model.dtype}")
  win = windows(c)
  samples = win["window_samples"]
  g = Graph()
  wave = "waveform"
  if isinstance(model, Tagger) and isinstance(model.frontend, SpectrogramFrontend):
    spec, _ = logmel(g, wave, model.frontend.mel, samples, centred=True)
    logits = _backend(g, model.backend, _spectrogram_frontend(g, model.frontend, spec))
  elif isinstance(model, Tagger) and isinstance(model.frontend, WaveformFrontend):
    logits = _backend(g, model.backend, _waveform_frontend(g, model.frontend, wave))
  elif isinstance(model, (Musicnn, MusicnnVGG)):
    patches = c.kind == "musicnn_patches"
    spec, frames = logmel(g, wave, model.mel, samples, centred=not patches)
    if not patches:
      spec, frames = _slice_time(g, spec, samples // model.mel.hop), samples // model.mel.hop
    if isinstance(model, Musicnn):
      logits = _musicnn(g, model, spec)
    elif frames != PATCH_FRAMES:
      raise choices.ConfigError(f"musicnn_vgg exports 187-frame (3-s) inputs only; this run's chunk gives {frames}")
    else:
      logits = _musicnn_vgg(g, model, spec)
  else:
    raise choices.ConfigError(f"export does not support model {config.model.name!r} (supported: spectrogram, "
                     "waveform, musicnn, musicnn_vgg)")
  probs = g.op("Sigmoid", logits)
  metadata = {"jaxtag.tags": [str(t) for t in tags], "jaxtag.contract": c.to_dict(), "jaxtag.windows": win,
              "jaxtag.model": str(config.model.name), "jaxtag.output": "sigmoid probabilities (batch, n_tags)"}
  return g.model(wave, probs, samples, len(tags), metadata)


def export(workdir: str, out: str, which="best"):
  """Loads the run, writes ``out`` and returns ``(onnx model, contract, tags)``."""
  import onnx
  from jaxtag.training import checkpoint
  from jaxtag.models import contract
  config, tags, model, step = checkpoint.load_for_inference(workdir, which)
  c = contract.for_run(workdir, config)
  m = build(model, config, tags, c)
  m.metadata_props.add(key="jaxtag.step", value=str(step))
  try:   # the user's --out: a folder that cannot be made or a file that cannot be written is one line
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    onnx.save(m, out)
  except OSError as e:
    raise choices.ConfigError(f"--out={out}: cannot write it ({e.strerror or e})") from e
  return m, c, tags


def define_flags():
  flags.DEFINE_string("workdir", None, "Run directory (trained, or imported musicnn weights).")
  from jaxtag.core import cli
  flags.DEFINE_string("out", None, "ONNX file to write (its name ends in .onnx).")
  flags.register_validator("out", lambda v: v is None or v.lower().endswith(".onnx"),
                           "--out is the ONNX file to write: its name must end in .onnx")
  cli.checkpoint_flag()


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise choices.ConfigError(f"unexpected arguments {argv[1:]}; usage: python -m jaxtag.export --workdir=W "
                              "--out=model.onnx")
  try:
    import onnx  # noqa: F401
  except ImportError as e:
    raise choices.ConfigError("the ONNX export needs the export extra: pip install 'jaxtag[export]'") from e
  m, c, tags = export(FLAGS.workdir, FLAGS.out, FLAGS.checkpoint)   # not a run, no such step: one line
  w = windows(c)
  print(f"wrote {FLAGS.out}: {len(tags)} tags, input (batch, {w['window_samples']}) float32 at "
        f"{w['sample_rate']} Hz ({c.kind}), {len(m.graph.node)} nodes")


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("workdir", "out"))
