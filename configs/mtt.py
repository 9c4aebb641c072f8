"""MagnaTagATune (25k clips, pons split): the paper's best MTT models.

Default ``spectrogram`` is k=8, F=512, U=500 (5,069,686 params); ``waveform`` is the x4 sample-level
front-end (11,826,102); ``small`` cuts the back-end to F=64, U=200 (223,130 / 1,311,962 with x2).
Set ``--config.data.annotations=.../annotations_final.csv --config.data.root=.../mp3``.
"""
from jaxtag.core import config as config_lib


def get_config(arg=None):
  args, c = config_lib.new_config(arg, "mtt", "mtt", "MagnaTagATune", chunk_seconds=3.0)
  c.model.spectrogram_k = 8
  c.model.waveform_width = 2 if args.get("small") else 4
  c.train.steps = 600 * 585          # the authors' 600 epochs of 18,706 songs / 32
  c.train.eval_every = 585           # one epoch
  c.train.checkpoint_every = 585
  return config_lib.apply_args(c, args, default_frontend="spectrogram")
