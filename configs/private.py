"""Shared body of the private-style scaling configs (100k / 500k / 1M training songs).

Like the paper's private data: 15-s chunks, graded targets trained with MSE, fixed valid/test sets,
a deterministic training subset of the train pool. Waveform = 9-layer x1 front-end (5,478,198 params),
spectrogram = k16 (5,926,198). Point ``--config.data.manifest`` at a JSONL/CSV manifest.

Each is set for the slice it is meant for (``batch``: its global batch; ``batch=N`` as a config argument moves it
to another): the authors' schedule, written for batch 32, goes through ``jaxtag.core.config.scale_to_batch`` (square-root
learning rate, linear warm-up, steps and intervals in chunks), see docs/guide/at_scale.md.
"""
from jaxtag.core import config as config_lib


def private_config(arg, train_size: int, name: str, batch: int):
  args, c = config_lib.new_config(arg, name, "manifest", "private-style corpus", chunk_seconds=15.0)
  batch = args.pop("batch", batch)
  c.data.train_size = train_size
  c.model.waveform_layers = 9
  c.model.waveform_width = 1
  c.model.spectrogram_k = 16
  c.data.graded = True             # the manifest's graded ``targets`` reach the MSE as they are (not cut at 0.5)
  c.train.loss = "mse"
  c.train.steps = 1_000_000
  c.train.eval_every = 5000
  c.train.checkpoint_every = 2000
  c.train.plateau_patience = 10
  config_lib.scale_to_batch(c, batch)   # before the arguments, so steps=N still means N steps
  return config_lib.apply_args(c, args, default_frontend="waveform")
