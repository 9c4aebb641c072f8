"""Smoke run: the embedded generated corpus (generated and cached on first use) and a small model.

``python -m jaxtag.main --config=configs/smoke.py --workdir=runs/smoke`` trains and evaluates in a few
minutes on a 2-core CPU. ``configs/smoke.py:waveform`` picks the waveform front-end.
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg)
  c = common.base_config()
  c.experiment = "smoke"
  args["smoke"] = True
  return common.apply_args(c, args, default_frontend="spectrogram")
