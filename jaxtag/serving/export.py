"""``python -m jaxtag.export --workdir=W --out=model.onnx [--checkpoint=best]``: a run as one portable ONNX file.

The graph takes raw mono waveform windows ``(batch, samples)`` float32 at the run's sample rate (dynamic
batch), computes the log-mel inside the graph for spectrogram models, and outputs sigmoid probabilities
``(batch, n_tags)``. The model's metadata (``metadata_props``) holds the tag list (``jaxtag.tags``), the
preprocessing contract (``jaxtag.contract``, as ``W/contract.json``) and how to cut a file into windows
(``jaxtag.windows``: pad ``pad_samples`` zeros at both ends, windows of ``window_samples`` every
``hop_samples``; the trailing partial window is dropped, a short file is zero-padded to one window), so an
application needs onnxruntime and NumPy only. For runs imported from musicnn the windows are exactly the
audio behind musicnn's 187-frame patches (the whole-file STFT padding is done once, outside), so the ONNX
model tags as musicnn does; for trained runs they are the training chunks.

Converter: the graph is lowered from the jaxpr of ``inference_fn`` (the model in eval mode, log-mel included)
by ``jaxtag.serving.onnx_lowering``, so a model added to the registry exports with no code of its own, and a model
using a primitive without an ONNX lowering fails in one ``error:`` line naming it. Why not ``jax2onnx``
(the maintained JAX -> ONNX converter): 0.17.1, the newest release, pins ``orbax-checkpoint<0.11.37`` (jaxtag
needs >=0.12.8, so ``pip`` cannot install both); measured beside jaxtag in docs/design.md ("ONNX export").
Every registry model is checked against jaxtag's own forward pass in the tests (<= 1e-5).
"""
from __future__ import annotations

import os

from absl import flags

from jaxtag.core import choices


def windows(c) -> dict:
  """How a file becomes the ONNX model's inputs (``jaxtag.windows`` metadata)."""
  if c.kind == "chunks":
    return {"sample_rate": c.sample_rate, "pad_samples": 0, "window_samples": c.chunk_samples,
            "hop_samples": c.chunk_samples, "min_samples": c.chunk_samples}
  n_fft, hop = int(c.logmel["n_fft"]), int(c.logmel["hop"])
  return {"sample_rate": c.sample_rate, "pad_samples": n_fft // 2,
          "window_samples": (c.patch_frames - 1) * hop + n_fft, "hop_samples": c.patch_hop * hop,
          "min_samples": c.chunk_samples}


def inference_fn(model, config, c):
  """The function the ONNX graph computes: waveform windows ``(batch, window_samples)`` -> sigmoid
  probabilities, the model in eval mode. For ``chunks`` that is the model itself (its log-mel, if any, runs
  inside); for ``musicnn_patches`` the windows carry musicnn's whole-file padding already, so the log-mel is
  taken uncentred and the model reads it as its patch."""
  import jax
  if c.kind == "chunks":
    return lambda wave: jax.nn.sigmoid(model(wave, train=False))
  from jaxtag.models.logmel import LogMelConfig, logmel
  mel = LogMelConfig.from_config(config.model.logmel, c.sample_rate)
  return lambda windows: jax.nn.sigmoid(model(logmel(windows, mel, centred=False), train=False))


def build(model, config, tags, c) -> "onnx.ModelProto":  # noqa: F821
  """The ONNX model of ``model`` under preprocessing contract ``c`` (probabilities out), lowered from the
  jaxpr of ``inference_fn``: no model-specific code, so every registry model exports the same way."""
  from jaxtag.serving import onnx_lowering
  if str(config.model.dtype) != "float32":
    raise choices.ConfigError(f"export supports float32 models; this run computes in {config.model.dtype}")
  win = windows(c)
  metadata = {"jaxtag.tags": [str(t) for t in tags], "jaxtag.contract": c.to_dict(), "jaxtag.windows": win,
              "jaxtag.model": str(config.model.name), "jaxtag.output": "sigmoid probabilities (batch, n_tags)"}
  try:
    return onnx_lowering.to_onnx(inference_fn(model, config, c), (win["window_samples"],), input_name="waveform",
                                 output_name="probabilities", metadata=metadata)
  except onnx_lowering.Unsupported as e:
    raise onnx_lowering.Unsupported(e.primitive, e.why, f"model {config.model.name!r} cannot export: ") from None


def export(workdir: str, out: str, which="best"):
  """Loads the run, writes ``out`` and returns ``(onnx model, contract, tags)``."""
  import onnx
  from jaxtag.models import contract
  from jaxtag.training import checkpoint
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
