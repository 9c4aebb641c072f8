"""Million Song Dataset (250k songs, Lee/Choi split with 50 Last.fm tags).

Default ``spectrogram`` is k=16, F=512, U=500 (5,926,198 params); ``waveform`` is x1, 7 layers
(5,379,126). Label files: ``--config.data.labels.train=ids.txt:y.npy`` (or a ``id<TAB>[0, 1, ...]`` tsv),
audio under ``--config.data.root`` following ``data.audio_pattern``.
"""
from jaxtag.core import config as config_lib


def get_config(arg=None):
  args, c = config_lib.new_config(arg, "msd", "msd", "Million Song Dataset", chunk_seconds=3.0)
  c.model.spectrogram_k = 16
  c.model.waveform_width = 1
  c.train.steps = 1000 * 6302        # ~1,000 epochs of 201,680 songs / 32, as MSD_musicnn trained
  c.train.eval_every = 6302
  c.train.checkpoint_every = 2000
  return config_lib.apply_args(c, args, default_frontend="spectrogram")
