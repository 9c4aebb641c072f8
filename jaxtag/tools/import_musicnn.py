"""Imports the authors' pretrained musicnn weights as a normal jaxtag run directory.

  python -m jaxtag.tools.import_musicnn --weights=MTT_musicnn_weights.npz --out=runs/MTT_musicnn

``--weights`` is an npz of TF variable name -> array (``../shared/musicnn_ref/*_weights.npz``) or a TF
checkpoint directory of the ``musicnn`` PyPI package (``.../site-packages/musicnn/MTT_musicnn``), read without
TensorFlow (``jaxtag.tools.tf_checkpoint``). The model (MTT/MSD x musicnn/vgg) is read from the name
unless ``--model`` is given. The output directory holds ``config.json``, ``tags.json`` and a checkpoint
that ``jaxtag.evaluation.evaluate`` / ``jaxtag.serving.predict`` load like a trained run.
"""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from jaxtag.core import config as config_lib, errors
from jaxtag.models import registry
from jaxtag.training import checkpoint
from jaxtag.models.musicnn import Musicnn, MusicnnVGG
from jaxtag.models.musicnn_tags import MSD_LABELS, MTT_LABELS

MUSICNN_MODELS = ("MTT_musicnn", "MSD_musicnn", "MSD_musicnn_big", "MTT_vgg", "MSD_vgg")


def _bn_names(prefix: str, bn: nnx.BatchNorm):
  return [(f"{prefix}/gamma", bn.scale), (f"{prefix}/beta", bn.bias),
          (f"{prefix}/moving_mean", bn.mean), (f"{prefix}/moving_variance", bn.var)]


def _layer_names(prefix: str, layer):
  return [(f"{prefix}/kernel", layer.kernel), (f"{prefix}/bias", layer.bias)]


def variable_map(model) -> list:
  """``[(tf_variable_name, nnx.Variable)]`` for every variable of a musicnn or musicnn-VGG model."""
  if isinstance(model, Musicnn):
    out = _bn_names("batch_normalization", model.input_bn)
    blocks = list(model.timbral) + list(model.temporal) + list(model.mid)
    for i, block in enumerate(blocks):                 # conv2d, conv2d_1..7 with batch_normalization_1..8
      out += _layer_names("conv2d" + (f"_{i}" if i else ""), block.conv)
      out += _bn_names(f"batch_normalization_{i + 1}", block.bn)
    out += _bn_names("batch_normalization_9", model.pool_bn)
    out += _layer_names("dense", model.dense) + _bn_names("batch_normalization_10", model.dense_bn)
    return out + _layer_names("dense_1", model.out)
  if isinstance(model, MusicnnVGG):
    out = _bn_names("batch_normalization", model.input_bn)
    for i, block in enumerate(model.blocks, 1):
      out += _layer_names(f"{i}CNN", block.conv) + _bn_names(f"batch_normalization_{i}", block.bn)
    return out + _layer_names("dense", model.out)
  raise TypeError(f"not a musicnn model: {type(model).__name__}")


def read_weights(path: str) -> dict[str, np.ndarray]:
  """TF variable name -> float32 array, from an npz or a TF checkpoint (directory, prefix or ``.index``); the
  optimizer's slots (``*/Adam``, ``*/Adam_1``, ``beta*_power``) and step counters are not weights."""
  if os.path.isdir(path) or str(path).endswith(".index") or os.path.exists(f"{path}.index"):
    from jaxtag.tools import tf_checkpoint
    tensors = tf_checkpoint.read_checkpoint(str(path))
    return {n: np.asarray(v, np.float32) for n, v in tensors.items()
            if not (n.endswith("/Adam") or n.endswith("/Adam_1") or n.startswith("beta") or n == "global_step")}
  with np.load(path) as data:
    return {k: np.asarray(data[k], np.float32) for k in data.files}


def load_into_model(weights, model) -> None:
  """Fills ``model`` (a ``Musicnn`` or ``MusicnnVGG``) in place from an npz path, checkpoint dir or dict.

  Every model variable must be found and every weight used; shapes must agree up to the size-1 axes
  TF's 2-D convs add (the mid-end's ``[7, 561, 1, 64]`` is our 1-D ``[7, 561, 64]``).
  """
  weights = read_weights(weights) if isinstance(weights, (str, os.PathLike)) else dict(weights)
  pairs = variable_map(model)
  missing = [n for n, _ in pairs if n not in weights]
  unused = sorted(set(weights) - {n for n, _ in pairs})
  if missing or unused:
    raise ValueError(f"weights do not match {type(model).__name__}: missing {missing}, unused {unused}")
  for name, var in pairs:
    w = weights[name]
    if w.size != var.size or [d for d in w.shape if d != 1] != [d for d in var.shape if d != 1]:
      raise ValueError(f"{name}: shape {w.shape} does not fit {var.shape}")
    var.set_value(jnp.asarray(np.reshape(w, var.shape), var.dtype))


def guess_model(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  for name in sorted(MUSICNN_MODELS, key=len, reverse=True):
    if base.startswith(name):
      return name
  raise errors.UserError(f"cannot tell the model from {base!r}; pass --model (one of {MUSICNN_MODELS})")


def musicnn_config(name: str):
  """The jaxtag config of a musicnn checkpoint: the package defaults for its data set (MTT or MSD, 3-s chunks at
  16 kHz), with the matching model and musicnn's own preprocessing."""
  dataset, arch = name.split("_", 1)
  title = {"MTT": "MagnaTagATune", "MSD": "Million Song Dataset"}[dataset]
  args, config = config_lib.new_config(
      {"musicnn": "model=musicnn,small", "musicnn_big": "model=musicnn", "vgg": "model=musicnn_vgg"}[arch],
      dataset.lower(), dataset.lower(), title, chunk_seconds=3.0)
  config = config_lib.apply_args(config, args, default_frontend="spectrogram")
  config.model.logmel.musicnn_compat = True      # the float16 rounding the weights were trained with
  config.data.input_pipeline = "musicnn_patches"   # musicnn's own input: patches of one whole-file log-mel
  config.model.width = 1.0
  return config


def import_musicnn(weights: str, out: str, name: str | None = None):
  """Builds the model, loads ``weights`` and writes the run directory ``out``; returns ``(config, model)``."""
  name = name or guess_model(weights)
  config = musicnn_config(name)
  tags = list(MTT_LABELS if name.startswith("MTT") else MSD_LABELS)
  model = registry.new_model(config, len(tags))
  load_into_model(weights, model)
  checkpoint.save_inference_checkpoint(out, config, model, tags)
  return config, model


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  flags.DEFINE_string("weights", None, "musicnn *_weights.npz, or a musicnn TF checkpoint directory.")
  flags.DEFINE_string("out", None, "Run directory to write.")
  flags.DEFINE_enum("model", None, MUSICNN_MODELS, "Which musicnn model (default: from the weights' name).")


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  errors.require(FLAGS.weights, "--weights", "give musicnn's *_weights.npz or a TF checkpoint directory")
  if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
    raise errors.UserError(f"--out={FLAGS.out} is a file; give a directory for the run")
  config, _ = import_musicnn(FLAGS.weights, FLAGS.out, FLAGS.model)
  print(f"wrote {FLAGS.out}: model={config.model.name}")


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("weights", "out"))
